import Foundation

// Mirrors android_demo/core Manifest.kt. The bundle's manifest.json (schema anyir-mobile/manifest/1,
// mobile/schema/manifest-1.schema.json), read for what an app needs: the app never guesses a size,
// range, layout or file name. A manifest this reader does not understand is refused by name, never
// half-read. iOS reads two things more than Android: the files table (the app checks every sha256
// before it loads a file) and a Core ML artifact's runtime.minimum_deployment_target.

/// manifest.input: how every artifact of the bundle is fed.
public struct ManifestInput: Equatable {
    public let tileH: Int
    public let tileW: Int
    public let overlap: Int
    public let valueLow: Double
    public let valueHigh: Double
    public let colorOrder: String
}

/// artifact.input: the one tile shape this file was exported for.
public struct ArtifactInput: Equatable {
    public let height: Int
    public let width: Int
    public let layout: String
    public let shape: [Int]
    public let dtype: String
}

/// manifest.files[path]: what the bundle builder wrote.
public struct FileEntry: Equatable {
    public let bytes: Int
    public let sha256: String
}

public struct ManifestArtifact {
    public let id: String
    public let backend: String
    public let precision: String
    public let paths: [String: String]  // platform -> path relative to the bundle folder
    public let bytes: Int
    public let sha256: String
    public let input: ArtifactInput
    public let tools: [String: String]  // package -> version that wrote (and verified) the file
    public let status: String
    public let numericsPassed: Bool
    public let hostMsMedian: Double?
    /// Core ML: "iOS17 / macOS14" (runtime.minimum_deployment_target); nil for other backends.
    public let minimumDeploymentTarget: String?

    /// Passed its numeric check against the PyTorch reference.
    public var usable: Bool { status == "ok" && numericsPassed }

    /// What the tiled path feeds it. The iOS runtimes (ExecuTorch .pte, Core ML) take float tiles, int8
    /// models quantize inside; full-integer I/O exists only for Android's .tflite (details.io there).
    public var inputType: TensorType { .float32 }

    public var iosPath: String? { paths["ios"] }
}

public struct Manifest {
    public static let schema = "anyir-mobile/manifest/1"

    // mobile/bundle.py PREFERENCE: the order `anyir restore` picks in when no artifact is named
    public static let preference: [(String, String)] = [
        ("executorch", "int8"), ("tflite", "int8"), ("executorch", "fp32"), ("tflite", "fp32"),
        ("tflite", "fp16"), ("coreml", "int8"), ("coreml", "fp16"), ("coreml", "fp32")]

    public let name: String
    public let version: String
    public let input: ManifestInput
    public let artifacts: [ManifestArtifact]
    public let defaultArtifact: String?
    /// The build's order per platform (manifest "ranking"); the host's default is not a phone's choice.
    public let ranking: [String: [String]]
    public let files: [String: FileEntry]

    public func artifact(_ id: String) throws -> ManifestArtifact {
        guard let a = artifacts.first(where: { $0.id == id }) else {
            throw ManifestError("the bundle has no artifact \"\(id)\" (it has: \(artifacts.map { $0.id }.joined(separator: ", ")))")
        }
        return a
    }

    public static func preferenceRank(_ backend: String, _ precision: String) -> Int {
        return preference.firstIndex(where: { $0.0 == backend && $0.1 == precision }) ?? preference.count
    }

    /// The artifacts an app on `platform` ("android", "ios") can load, best first: those that passed
    /// their numeric check before those that did not, then the manifest's ranking for that platform
    /// (default_artifact is the build host's fastest and is not used), then PREFERENCE for artifacts the
    /// ranking does not name, then the manifest's order.
    public func artifactsFor(_ platform: String) -> [ManifestArtifact] {
        let ranked = ranking[platform] ?? []
        let indexed = artifacts.enumerated().filter { $0.element.paths[platform] != nil }
        func key(_ e: (offset: Int, element: ManifestArtifact)) -> [Int] {
            let a = e.element
            return [a.usable ? 0 : 1, ranked.firstIndex(of: a.id) ?? ranked.count,
                    Manifest.preferenceRank(a.backend, a.precision), e.offset]
        }
        return indexed.sorted { key($0).lexicographicallyPrecedes(key($1)) }.map { $0.element }
    }

    /// Every file of an artifact as the files table lists it (a .mlpackage is a folder of files).
    public func artifactFiles(_ artifact: ManifestArtifact, platform: String = "ios") -> [String] {
        guard let p = artifact.paths[platform] else { return [] }
        return files.keys.filter { $0 == p || $0.hasPrefix(p + "/") }.sorted()
    }

    /// Parses manifest.json; a ManifestError names the problem (JSON, schema, field).
    public static func parse(_ data: Data) throws -> Manifest {
        let top = try Fields.root(data, what: "manifest.json")
        // the schema first: a newer manifest may have moved any other field
        guard let schemaValue = top.opt("schema") else {
            throw ManifestError("manifest.json has no \"schema\": not an AnyIR bundle manifest")
        }
        guard let found = schemaValue as? String, found == schema else {
            throw ManifestError("manifest schema \"\(schemaValue)\" is not understood: this app reads \"\(schema)\" "
                + "(use an app built for that bundle, or rebuild the bundle with a matching anyir)")
        }
        let inp = try top.obj("input")
        let tile = try inp.intList("tile")
        if tile.count != 2 || tile.contains(where: { $0 < 1 }) { throw ManifestError("manifest field \"input.tile\" must be [height, width]") }
        let range = try inp.doubleList("value_range")
        if range.count != 2 { throw ManifestError("manifest field \"input.value_range\" must be [low, high]") }
        let input = ManifestInput(tileH: tile[0], tileW: tile[1], overlap: try inp.int("overlap"), valueLow: range[0],
                                  valueHigh: range[1], colorOrder: try inp.string("color_order"))
        // the pre-processing (Pixels) feeds RGB in [0, 1] as the reference does; anything else would be fed
        // wrongly without an error, so it is refused here
        if input.colorOrder != "RGB" || input.valueLow != 0.0 || input.valueHigh != 1.0 {
            throw ManifestError("manifest input is \(input.colorOrder) in [\(input.valueLow), \(input.valueHigh)]: "
                + "this app feeds RGB in [0, 1] (fields \"input.color_order\", \"input.value_range\")")
        }
        let arts = try top.objList("artifacts").map { try readArtifact($0) }
        let def = try top.nullableString("default_artifact")
        if let def, !arts.contains(where: { $0.id == def }) {
            throw ManifestError("manifest field \"default_artifact\" names \"\(def)\", which is not among the artifacts")
        }
        var ranking: [String: [String]] = [:]
        if let r = try top.optObj("ranking") {
            for platform in r.keys() { ranking[platform] = try r.stringList(platform) }
        }
        var files: [String: FileEntry] = [:]
        let table = try top.obj("files")
        for path in table.keys() {
            let f = try table.obj(path)
            files[path] = FileEntry(bytes: try f.long("bytes"), sha256: try f.string("sha256"))
        }
        return Manifest(name: try top.string("name"), version: try top.string("version"), input: input,
                        artifacts: arts, defaultArtifact: def, ranking: ranking, files: files)
    }

    static func readArtifact(_ a: Fields) throws -> ManifestArtifact {
        let inp = try a.obj("input")
        let paths = try a.obj("paths")
        var pathMap: [String: String] = [:]
        for k in paths.keys() { pathMap[k] = try paths.string(k) }
        var toolMap: [String: String] = [:]
        if let t = try a.optObj("tools") {
            for k in t.keys() { toolMap[k] = try t.optString(k) }  // a package the builder lacked is null: skipped
        }
        return ManifestArtifact(
            id: try a.string("id"), backend: try a.string("backend"), precision: try a.string("precision"),
            paths: pathMap, bytes: try a.long("bytes"), sha256: try a.string("sha256"),
            input: ArtifactInput(height: try inp.int("height"), width: try inp.int("width"), layout: try inp.string("layout"),
                                 shape: try inp.intList("shape"), dtype: try inp.optString("dtype") ?? "float32"),
            tools: toolMap, status: try a.string("status"),
            numericsPassed: try a.obj("numerics").bool("passed"),
            hostMsMedian: try a.obj("latency").nullableDouble("host_ms_median"),
            minimumDeploymentTarget: try a.obj("runtime").optString("minimum_deployment_target"))
    }
}
