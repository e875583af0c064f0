import AnyIRKit
import Foundation
import XCTest

final class ManifestTests: XCTestCase {
    /// The smallest manifest the schema accepts with one ExecuTorch and one Core ML artifact.
    static func sample() -> [String: Any] {
        func artifact(_ id: String, _ backend: String, _ path: String, _ tools: [String: Any], _ runtime: [String: Any]) -> [String: Any] {
            return ["id": id, "backend": backend, "precision": "fp32", "paths": ["ios": path], "bytes": 10,
                    "sha256": String(repeating: "a", count: 64), "runtime": runtime, "tools": tools, "status": "ok",
                    "input": ["height": 64, "width": 64, "layout": "NCHW", "shape": [1, 3, 64, 64],
                              "value_range": [0.0, 1.0], "color_order": "RGB"] as [String: Any],
                    "numerics": ["passed": true] as [String: Any], "quality": [:] as [String: Any],
                    "latency": ["host_ms_median": NSNull()] as [String: Any]]
        }
        return [
            "schema": "anyir-mobile/manifest/1", "name": "anyir", "version": "0.1.0", "created": "2026-01-01T00:00:00Z",
            "builder": [:] as [String: Any], "model": [:] as [String: Any], "failed": [] as [Any], "build": [:] as [String: Any],
            "default_artifact": "executorch-fp32",
            "input": ["tile": [64, 64], "overlap": 16, "value_range": [0.0, 1.0], "color_order": "RGB", "dtype": "float32",
                      "padding": "reflect", "blend": "sin^2", "plan": "even"] as [String: Any],
            "artifacts": [
                artifact("executorch-fp32", "executorch", "ios/m.pte", ["executorch": "1.5.1"], ["delegate": "XNNPACK"]),
                artifact("coreml-fp16", "coreml", "ios/m.mlpackage", ["coremltools": "9.0"],
                         ["minimum_deployment_target": "iOS17 / macOS14"]),
            ],
            "files": ["ios/m.pte": ["bytes": 10, "sha256": String(repeating: "b", count: 64)] as [String: Any],
                      "ios/m.mlpackage/Manifest.json": ["bytes": 3, "sha256": String(repeating: "c", count: 64)] as [String: Any],
                      "ios/m.mlpackage.json": ["bytes": 3, "sha256": String(repeating: "d", count: 64)] as [String: Any]],
        ]
    }

    static func read(_ dict: [String: Any]) throws -> Manifest {
        return try Manifest.parse(try JSONSerialization.data(withJSONObject: dict))
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
        } catch {
            return "\(error)"
        }
        XCTFail("nothing was refused")
        return ""
    }

    func testReadsTheSample() throws {
        let m = try ManifestTests.read(ManifestTests.sample())
        XCTAssertEqual(m.input.tileH, 64)
        XCTAssertEqual(m.input.overlap, 16)
        XCTAssertEqual(m.artifactsFor("ios").map { $0.id }, ["executorch-fp32", "coreml-fp16"])
        XCTAssertEqual(m.artifactsFor("android").map { $0.id }, [])
        XCTAssertEqual(try m.artifact("executorch-fp32").tools["executorch"], "1.5.1")
        XCTAssertEqual(RuntimeCheck.minimumIOS(try m.artifact("coreml-fp16")), 17)
        XCTAssertEqual(m.artifactFiles(try m.artifact("coreml-fp16")), ["ios/m.mlpackage/Manifest.json"])
        XCTAssertEqual(m.artifactFiles(try m.artifact("executorch-fp32")), ["ios/m.pte"])
    }

    func testThePlatformRankingOrdersArtifactsNotTheHostDefault() throws {
        var d = ManifestTests.sample()
        d["ranking"] = ["ios": ["coreml-fp16", "executorch-fp32"], "host": ["executorch-fp32"]]
        let m = try ManifestTests.read(d)
        XCTAssertEqual(m.defaultArtifact, "executorch-fp32")  // the build host's pick
        XCTAssertEqual(m.artifactsFor("ios").map { $0.id }, ["coreml-fp16", "executorch-fp32"])
        d["ranking"] = ["ios": "coreml-fp16"]
        XCTAssertTrue(message { _ = try ManifestTests.read(d) }.contains("\"ranking.ios\""))
    }

    func testUnknownSchemaIsRefusedByName() {
        var d = ManifestTests.sample()
        d["schema"] = "anyir-mobile/manifest/2"
        let msg = message { _ = try ManifestTests.read(d) }
        XCTAssertTrue(msg.contains("anyir-mobile/manifest/2"), msg)
        XCTAssertTrue(msg.contains("anyir-mobile/manifest/1"), msg)
        d.removeValue(forKey: "schema")
        XCTAssertTrue(message { _ = try ManifestTests.read(d) }.contains("\"schema\""))
    }

    func testMissingFieldsAreRefusedByName() {
        var d = ManifestTests.sample()
        d.removeValue(forKey: "input")
        XCTAssertTrue(message { _ = try ManifestTests.read(d) }.contains("\"input\""))
        d = ManifestTests.sample()
        var arts = d["artifacts"] as! [[String: Any]]
        arts[1].removeValue(forKey: "sha256")
        d["artifacts"] = arts
        let msg = message { _ = try ManifestTests.read(d) }
        XCTAssertTrue(msg.contains("\"artifacts[1].sha256\""), msg)
        d = ManifestTests.sample()
        var input = d["input"] as! [String: Any]
        input["overlap"] = "16"
        d["input"] = input
        let typed = message { _ = try ManifestTests.read(d) }
        XCTAssertTrue(typed.contains("\"input.overlap\"") && typed.contains("an integer"), typed)
        d = ManifestTests.sample()
        var range = d["input"] as! [String: Any]
        range["value_range"] = [0.0, 255.0]
        d["input"] = range
        XCTAssertTrue(message { _ = try ManifestTests.read(d) }.contains("\"input.value_range\""))
        d = ManifestTests.sample()
        d["default_artifact"] = "tflite-fp32"
        XCTAssertTrue(message { _ = try ManifestTests.read(d) }.contains("tflite-fp32"))
    }

    func testExecuTorchVersionMismatchIsRefused() throws {
        let m = try ManifestTests.read(ManifestTests.sample())
        let a = try m.artifact("executorch-fp32")
        XCTAssertTrue(RuntimeCheck.check(a, AppRuntimes(executorch: "1.5.1", iosMajor: 17)).ok)
        XCTAssertTrue(RuntimeCheck.check(a, AppRuntimes(executorch: "1.5.0", iosMajor: 17)).ok, "patch releases may differ")
        let refused = RuntimeCheck.check(a, AppRuntimes(executorch: "1.4.1", iosMajor: 17))
        XCTAssertFalse(refused.ok)
        XCTAssertTrue(refused.message.contains("1.5.1") && refused.message.contains("1.4.1"), refused.message)
        XCTAssertFalse(RuntimeCheck.check(a, AppRuntimes(executorch: nil, iosMajor: 17)).ok)
        XCTAssertEqual(RuntimeCheck.parseVersion("1.5.1+cpu"), [1, 5, 1])
        XCTAssertEqual(RuntimeCheck.parseVersion("2.3"), [2, 3, 0])
        XCTAssertNil(RuntimeCheck.parseVersion("dev"))
        let coreml = try m.artifact("coreml-fp16")
        XCTAssertFalse(RuntimeCheck.check(coreml, AppRuntimes(executorch: "1.5.1", iosMajor: 16)).ok)
        XCTAssertTrue(RuntimeCheck.check(coreml, AppRuntimes(executorch: "1.5.1", iosMajor: 17)).ok)
    }

    /// A real bundle's manifest, when the vectors sit in one (ANYIR_TESTVECTORS=<bundle>/testvectors).
    func testTheBundlesManifestReads() throws {
        let v = try Vectors.load()
        let url = v.dir.deletingLastPathComponent().appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("the vectors are not inside a bundle") }
        let m = try Manifest.parse(try Data(contentsOf: url))
        XCTAssertEqual([m.input.tileH, m.input.tileW], try v.index.intList("tile"))
        XCTAssertEqual(m.input.overlap, try v.index.int("overlap"))
        for a in m.artifactsFor("ios") { XCTAssertFalse(m.artifactFiles(a).isEmpty, a.id) }
    }
}
