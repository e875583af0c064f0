import AnyIRCoreML
import AnyIRExecuTorch
import AnyIRKit
import CryptoKit
import Foundation

/// The AnyIR bundle the build phase copied into the app (Scripts/copy_bundle.sh -> AnyIRBundle/):
/// its manifest, checksums checked against the manifest before a file is used, and the runners.
struct LoadedBundle {
    let root: URL
    let manifest: Manifest
    let manifestSHA256: String

    /// The iOS artifacts this app can run (ExecuTorch .pte and Core ML .mlpackage), best first.
    var runnable: [ManifestArtifact] {
        manifest.artifactsFor("ios").filter { $0.backend == "executorch" || $0.backend == "coreml" }
    }

    var defaultArtifact: ManifestArtifact? { runnable.first }
}

/// The ExecuTorch release linked into this app (the swiftpm-<version> branch in project.yml).
enum ExecuTorchVersion {
    static let linked = ExecuTorchRunner.linkedVersion
}

enum BundleStore {
    static let folderName = "AnyIRBundle"

    static func locate(in bundle: Bundle = .main) throws -> URL {
        guard let url = bundle.url(forResource: folderName, withExtension: nil) else {
            throw AnyIRError("no AnyIR bundle inside the app: build with ANYIR_BUNDLE=<dist/name-version> (see ios_demo/README.md)")
        }
        return url
    }

    /// Reads the manifest and refuses the bundle where this app cannot run it as built: a .pte written
    /// by another ExecuTorch than the one linked, a Core ML package for a newer iOS.
    static func open(_ root: URL? = nil, osMajor: Int = ProcessInfo.processInfo.operatingSystemVersion.majorVersion) throws -> LoadedBundle {
        let root = try root ?? locate()
        let data = try Data(contentsOf: root.appendingPathComponent("manifest.json"))
        let manifest = try Manifest.parse(data)
        let app = AppRuntimes(executorch: ExecuTorchVersion.linked, iosMajor: osMajor)
        for a in manifest.artifactsFor("ios") where a.backend == "executorch" || a.backend == "coreml" {
            let verdict = RuntimeCheck.check(a, app)
            if !verdict.ok { throw AnyIRError("This bundle cannot run in this app: \(verdict.message)") }
        }
        let loaded = LoadedBundle(root: root, manifest: manifest, manifestSHA256: hex(SHA256.hash(data: data)))
        guard !loaded.runnable.isEmpty else { throw AnyIRError("the bundle has no iOS artifact (no ios/ paths in its manifest)") }
        return loaded
    }

    /// Every file of the artifact (a .mlpackage is a folder) against the manifest's files table.
    static func verify(_ artifact: ManifestArtifact, in b: LoadedBundle) throws {
        let files = b.manifest.artifactFiles(artifact)
        guard !files.isEmpty else { throw AnyIRError("\(artifact.id): the manifest lists no files for \(artifact.iosPath ?? "?")") }
        for rel in files {
            guard let entry = b.manifest.files[rel] else { continue }
            let url = b.root.appendingPathComponent(rel)
            let got = try sha256(of: url)
            guard got == entry.sha256 else {
                throw AnyIRError("\(rel): sha256 \(got.prefix(12))... differs from the manifest's \(entry.sha256.prefix(12))...: "
                    + "the bundle in the app is damaged or mixed with another build; rebuild the app with ANYIR_BUNDLE")
            }
        }
    }

    static func sha256(of url: URL) throws -> String {
        guard let h = FileHandle(forReadingAtPath: url.path) else { throw AnyIRError("\(url.lastPathComponent): missing from the app's bundle copy") }
        defer { try? h.close() }
        var hasher = SHA256()
        while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    static var modelCache: URL {
        FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("AnyIRCompiledModels", isDirectory: true)
    }

    /// A checked, loaded runner for one artifact (Core ML: on the chosen compute units).
    static func runner(for artifact: ManifestArtifact, in b: LoadedBundle, units: CoreMLRunner.Units) async throws -> Runner {
        try verify(artifact, in: b)
        guard let rel = artifact.iosPath else { throw AnyIRError("\(artifact.id) has no iOS file") }
        let url = b.root.appendingPathComponent(rel)
        switch artifact.backend {
        case "executorch":
            return try ExecuTorchRunner(pte: url, artifact: artifact)
        case "coreml":
            return try await CoreMLRunner.load(package: url, artifact: artifact, units: units, cacheDir: modelCache)
        default:
            throw AnyIRError("\(artifact.id): backend \(artifact.backend) does not run on iOS")
        }
    }
}
