import AnyIRKit
import Foundation

/// The benchmark's result in the profile-1 schema (mobile/schema/profile-1.schema.json), the same file
/// `anyir profile --target host|android` writes. Times are milliseconds.
enum ProfileResult {
    static let schema = "anyir-mobile/profile/1"
    static let writer = "AnyIR iOS demo 0.1.0 (AnyIRBenchmark XCTest)"
    static let attachmentName = "anyir-profile.json"

    /// "iOS 17.5.1" (ProcessInfo: UIDevice is main-actor bound).
    static var osVersion: String {
        let v = ProcessInfo.processInfo.operatingSystemVersion
        return "iOS \(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"
    }

    static var isSimulator: Bool { ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] != nil }

    /// The utsname machine ("iPhone16,1"); the simulated model's on a simulator.
    static var deviceModel: String {
        if let sim = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] { return "\(sim) (simulator)" }
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func target() -> [String: Any] {
        let os = ProfileResult.osVersion
        return ["kind": "ios", "reached_by": "xcodebuild", "device_model": deviceModel, "os": os,
                "cpu": "Apple SoC of \(deviceModel)", "soc": NSNull(),
                "cores": ProcessInfo.processInfo.activeProcessorCount, "abi": "arm64"]
    }

    static func bundleInfo(_ b: LoadedBundle) -> [String: Any] {
        ["name": b.manifest.name, "version": b.manifest.version, "manifest_sha256": b.manifestSHA256]
    }

    static func artifact(_ a: ManifestArtifact) -> [String: Any] {
        ["id": a.id, "file": a.iosPath.map { URL(fileURLWithPath: $0).lastPathComponent } ?? a.id, "sha256": a.sha256,
         "backend": a.backend, "precision": a.precision, "bytes": a.bytes, "input_shape": a.input.shape]
    }

    /// numpy's default (linear) percentile, so the numbers compare with the host's.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard sorted.count > 1 else { return sorted.first ?? 0 }
        let pos = q / 100 * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }

    static func latency(_ ms: [Double], warmup: Int) -> [String: Any]? {
        guard !ms.isEmpty else { return nil }
        let s = ms.sorted()
        let mean = s.reduce(0, +) / Double(s.count)
        let std = (s.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(s.count)).squareRoot()
        return ["count": s.count, "warmup": warmup, "min": s[0], "max": s[s.count - 1], "median": percentile(s, 50),
                "p90": percentile(s, 90), "mean": mean, "std": std]
    }

    /// The process's peak physical footprint so far (task_vm_info), in MB.
    static func peakMB() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        guard kr == KERN_SUCCESS else { return nil }
        return Double(info.ledger_phys_footprint_peak) / 1_048_576
    }

    static func memory() -> Any {
        guard let mb = peakMB() else { return NSNull() }
        return ["peak_mb": mb, "source": "task_vm_info ledger_phys_footprint_peak (the test process's peak so far; XCTMemoryMetric in the log)"]
    }

    static func document(bundle: LoadedBundle?, runs: Int, warmup: Int, results: [[String: Any]]) -> [String: Any] {
        let created = ISO8601DateFormatter().string(from: Date())
        return ["schema": schema, "created": created, "writer": writer, "target": target(),
                "bundle": bundle.map { bundleInfo($0) as Any } ?? NSNull(),
                "settings": ["runs": runs, "warmup": warmup, "threads": NSNull()] as [String: Any],
                "results": results]
    }
}
