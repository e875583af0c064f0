import Foundation

// Mirrors android_demo/core RuntimeCheck.kt: an artifact's `tools` record (the versions that wrote and
// verified it) against the app's runtimes, so a mismatched bundle is refused with a sentence instead of
// failing inside native code.
// - ExecuTorch ("executorch"): the same major.minor. A .pte is a flatbuffer of the runtime's program
//   schema plus delegate blobs; a minor release may change either. Patch releases may differ.
// - Core ML: the device's iOS at least the package's minimum deployment target (iOS-only check).
// - LiteRT (.tflite) runs only in the Android app.

/// The runtimes this app was built with (nil: not in this app). `iosMajor`: the OS a Core ML model loads on.
public struct AppRuntimes {
    public let executorch: String?
    public let iosMajor: Int?
    public init(executorch: String?, iosMajor: Int?) {
        self.executorch = executorch
        self.iosMajor = iosMajor
    }
}

/// Whether the app can run an artifact; `message` is the one line the app shows when it cannot.
public struct RuntimeVerdict: Equatable {
    public let ok: Bool
    public let message: String
}

public enum RuntimeCheck {
    public static func check(_ artifact: ManifestArtifact, _ app: AppRuntimes) -> RuntimeVerdict {
        switch artifact.backend {
        case "executorch": return checkExecuTorch(artifact, app.executorch)
        case "coreml": return checkCoreML(artifact, app.iosMajor)
        case "tflite": return RuntimeVerdict(ok: false, message: "\(artifact.id): LiteRT models run in the Android app")
        default: return RuntimeVerdict(ok: false, message: "\(artifact.id): this app has no runtime for backend \"\(artifact.backend)\"")
        }
    }

    static func checkExecuTorch(_ a: ManifestArtifact, _ appVersion: String?) -> RuntimeVerdict {
        guard let appVersion else { return RuntimeVerdict(ok: false, message: "\(a.id): this app is built without ExecuTorch") }
        guard let made = a.tools["executorch"] else {
            return RuntimeVerdict(ok: false, message: "\(a.id): the artifact does not record its ExecuTorch version (tools.executorch); rebuild the bundle")
        }
        guard let m = parseVersion(made) else {
            return RuntimeVerdict(ok: false, message: "\(a.id): unreadable ExecuTorch version \"\(made)\" in tools.executorch")
        }
        guard let r = parseVersion(appVersion) else {
            return RuntimeVerdict(ok: false, message: "unreadable app ExecuTorch version \"\(appVersion)\"")
        }
        if m[0] == r[0] && m[1] == r[1] {
            return RuntimeVerdict(ok: true, message: "\(a.id): made with ExecuTorch \(made), runs on the app's \(appVersion)")
        }
        return RuntimeVerdict(ok: false, message: "\(a.id): made with ExecuTorch \(made), but this app links ExecuTorch \(appVersion) "
            + "(swiftpm-\(appVersion)); ExecuTorch needs the same major.minor (\(m[0]).\(m[1]).x): use an app built with "
            + "ExecuTorch \(m[0]).\(m[1]).x, or rebuild the bundle with executorch \(r[0]).\(r[1]).x")
    }

    static func checkCoreML(_ a: ManifestArtifact, _ iosMajor: Int?) -> RuntimeVerdict {
        guard let iosMajor else { return RuntimeVerdict(ok: false, message: "\(a.id): Core ML models run only on iOS/macOS") }
        guard let need = minimumIOS(a) else {
            return RuntimeVerdict(ok: true, message: "\(a.id): no minimum iOS recorded; trying Core ML on iOS \(iosMajor)")
        }
        if iosMajor >= need {
            return RuntimeVerdict(ok: true, message: "\(a.id): needs iOS \(need), runs on iOS \(iosMajor)")
        }
        return RuntimeVerdict(ok: false, message: "\(a.id): the Core ML package needs iOS \(need) or newer; this device runs iOS \(iosMajor)")
    }

    /// The iOS major version a Core ML artifact needs ("iOS17 / macOS14" -> 17), nil when unstated.
    public static func minimumIOS(_ a: ManifestArtifact) -> Int? {
        guard let t = a.minimumDeploymentTarget, let r = t.range(of: "iOS") else { return nil }
        return Int(t[r.upperBound...].prefix(while: { $0.isNumber }))
    }

    /// [major, minor, patch] of "1.5.1", "2.13.0+cpu", "1.0.0rc2", "2.3"; nil when it starts with no number.
    public static func parseVersion(_ v: String) -> [Int]? {
        let parts = v.trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false)
        var out = [0, 0, 0]
        for i in 0..<3 {
            let digits = i < parts.count ? String(parts[i].prefix(while: { $0.isASCII && $0.isNumber })) : ""
            if digits.isEmpty {
                if i < 2 { return nil }  // a version needs at least major.minor
                break
            }
            guard let n = Int(digits) else { return nil }
            out[i] = n
        }
        return out
    }
}
