@testable import AnyIRDemo
import AnyIRCoreML
import AnyIRKit
import XCTest

/// `xcodebuild test -scheme AnyIRBenchmark` (what `anyir profile BUNDLE --target ios` runs): each
/// artifact of the app's bundle timed with XCTClockMetric and XCTMemoryMetric (ExecuTorch; Core ML once
/// per compute-units choice), then one whole photo through the tiled path; the last test attaches the
/// profile-1 result as `anyir-profile.json`. Test methods run in name order; ids appear in test names
/// with '-' as '_' so the harness can match the log's `measured [...]` lines to results.
/// Settings (xcodebuild passes TEST_RUNNER_<name> through as <name>): ANYIR_RUNS, ANYIR_WARMUP,
/// ANYIR_ARTIFACTS (comma-separated ids), ANYIR_PHOTO (WxH, default 4032x3024), ANYIR_PHOTO_ARTIFACT.
final class AnyIRBenchmarkTests: XCTestCase {
    static var results: [[String: Any]] = []
    static var opened: LoadedBundle?

    var env: [String: String] { ProcessInfo.processInfo.environment }
    var runs: Int { max(1, Int(env["ANYIR_RUNS"] ?? "") ?? 20) }
    var warmup: Int { max(0, Int(env["ANYIR_WARMUP"] ?? "") ?? 3) }

    func bundle() throws -> LoadedBundle {
        if let b = Self.opened { return b }
        let b = try BundleStore.open()
        Self.opened = b
        return b
    }

    /// The artifact with this id, or a skip when the bundle lacks it or ANYIR_ARTIFACTS leaves it out.
    func chosen(_ id: String) throws -> ManifestArtifact {
        if let only = env["ANYIR_ARTIFACTS"], !only.isEmpty, !only.split(separator: ",").map(String.init).contains(id) {
            throw XCTSkip("\(id) not in ANYIR_ARTIFACTS")
        }
        guard let a = try bundle().runnable.first(where: { $0.id == id }) else { throw XCTSkip("the bundle has no \(id)") }
        return a
    }

    func test1_executorch_fp32() throws { try bench(try chosen("executorch-fp32"), units: nil, metrics: true) }
    func test1_executorch_int8() throws { try bench(try chosen("executorch-int8"), units: nil, metrics: true) }
    func test2_coreml_fp16_all() throws { try bench(try chosen("coreml-fp16"), units: .all, metrics: true) }
    func test2_coreml_fp16_cpuAndGPU() throws { try bench(try chosen("coreml-fp16"), units: .cpuAndGPU, metrics: true) }
    func test2_coreml_fp16_cpuAndNeuralEngine() throws { try bench(try chosen("coreml-fp16"), units: .cpuAndNeuralEngine, metrics: true) }
    func test2_coreml_fp16_cpuOnly() throws { try bench(try chosen("coreml-fp16"), units: .cpuOnly, metrics: true) }
    func test2_coreml_int8_all() throws { try bench(try chosen("coreml-int8"), units: .all, metrics: true) }
    func test2_coreml_int8_cpuAndGPU() throws { try bench(try chosen("coreml-int8"), units: .cpuAndGPU, metrics: true) }
    func test2_coreml_int8_cpuAndNeuralEngine() throws { try bench(try chosen("coreml-int8"), units: .cpuAndNeuralEngine, metrics: true) }
    func test2_coreml_int8_cpuOnly() throws { try bench(try chosen("coreml-int8"), units: .cpuOnly, metrics: true) }

    static let named: Set<String> = ["executorch-fp32", "executorch-int8", "coreml-fp16", "coreml-int8"]

    /// Artifacts without a test of their own (other precisions, layouts): timed by hand, no XCTest metric
    /// (XCTest allows one measure per test method).
    func test4_other_artifacts() throws {
        let only = Set((env["ANYIR_ARTIFACTS"] ?? "").split(separator: ",").map(String.init))
        let others = try bundle().runnable.filter { !Self.named.contains($0.id) && (only.isEmpty || only.contains($0.id)) }
        if others.isEmpty { throw XCTSkip("no further iOS artifacts") }
        for a in others {
            let choices: [CoreMLRunner.Units?] = a.backend == "coreml" ? CoreMLRunner.Units.allCases.map { $0 } : [nil]
            for units in choices { try bench(a, units: units, metrics: false) }
        }
    }

    /// Runs async work (Core ML compile/load) to completion from a synchronous test: XCTest's measure
    /// blocks are synchronous and belong on the test's own thread.
    func sync<T>(_ body: @escaping () async throws -> T) throws -> T {
        let box = AsyncBox<T>()
        let done = expectation(description: "async work")
        Task.detached {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.fulfill()
        }
        wait(for: [done], timeout: 1800)
        guard let r = box.result else { throw AnyIRError("async work did not finish in 30 minutes") }
        return try r.get()
    }

    func bench(_ a: ManifestArtifact, units: CoreMLRunner.Units?, metrics: Bool) throws {
        let b = try bundle()
        var result: [String: Any] = ["artifact": ProfileResult.artifact(a), "runner": "ios demo (XCTest)",
                                     "is_device_timing": !ProfileResult.isSimulator, "ops": NSNull(), "ops_source": NSNull(),
                                     "photo": NSNull(), "error": NSNull()]
        result["runtime"] = a.backend == "executorch"
            ? ["name": "ExecuTorch", "version": ExecuTorchVersion.linked, "delegate": "XNNPACK", "compute_units": NSNull(), "threads": NSNull()] as [String: Any]
            : ["name": "Core ML", "version": ProfileResult.osVersion, "delegate": NSNull(),
               "compute_units": units?.rawValue ?? "all", "threads": NSNull()] as [String: Any]
        var note: [String] = []
        if ProfileResult.isSimulator { note.append("simulator: not device timing") }
        do {
            if a.backend == "coreml", let rel = a.iosPath {  // compile once (cached by sha256), outside load_ms
                try BundleStore.verify(a, in: b)
                let t = ProcessInfo.processInfo.systemUptime
                let package = b.root.appendingPathComponent(rel)
                _ = try sync { try await CoreMLRunner.compiledModel(package: package, sha256: a.sha256, cacheDir: BundleStore.modelCache) }
                note.append(String(format: "on-device compile or cache hit %.0f ms (not in load_ms)", (ProcessInfo.processInfo.systemUptime - t) * 1000))
            }
            let t0 = ProcessInfo.processInfo.systemUptime
            let runner = try sync { try await BundleStore.runner(for: a, in: b, units: units ?? .all) }
            defer { runner.close() }
            result["load_ms"] = (ProcessInfo.processInfo.systemUptime - t0) * 1000
            let tile = TileInput.floats(Self.tile(runner))
            let t1 = ProcessInfo.processInfo.systemUptime
            _ = try runner.run(tile)
            result["first_inference_ms"] = (ProcessInfo.processInfo.systemUptime - t1) * 1000
            for _ in 0..<warmup { _ = try runner.run(tile) }
            var times: [Double] = []
            var failure: Error?
            let once = {
                let t = ProcessInfo.processInfo.systemUptime
                do { _ = try runner.run(tile) } catch { failure = failure ?? error }
                times.append((ProcessInfo.processInfo.systemUptime - t) * 1000)
            }
            if metrics {
                let options = XCTMeasureOptions()
                options.iterationCount = runs
                measure(metrics: [XCTClockMetric(), XCTMemoryMetric()], options: options, block: once)
            } else {
                for _ in 0..<runs { once() }
            }
            if let failure { throw failure }
            result["latency"] = ProfileResult.latency(times, warmup: warmup).map { $0 as Any } ?? NSNull()
            result["memory"] = ProfileResult.memory()
            result["status"] = "ok"
        } catch {
            result["status"] = "failed"
            result["error"] = "\(error)"
            result["latency"] = NSNull()
            result["memory"] = NSNull()
        }
        result["note"] = note.isEmpty ? NSNull() as Any : note.joined(separator: "; ") as Any
        Self.results.append(result)
        if result["status"] as? String == "failed" { XCTFail("\(a.id): \(result["error"] as? String ?? "")") }
    }

    /// A fixed, photo-like tile (smooth gradients plus texture) in the runner's layout, the same every run.
    static func tile(_ r: Runner) -> [Float] {
        let h = r.tileH, w = r.tileW
        var x = [Float](repeating: 0, count: 3 * h * w)
        for c in 0..<3 {
            for y in 0..<h {
                for i in 0..<w {
                    let wave: Float = 0.3 * sin(Float(i + 7 * c) / 9) * cos(Float(y) / 13)
                    let grain: Float = 0.1 * Float((i * 31 + y * 17 + c * 7) % 23) / 23
                    let v: Float = 0.5 + wave + grain
                    let k = r.layout == .nchw ? (c * h + y) * w + i : (y * w + i) * 3 + c
                    x[k] = min(max(v, 0), 1)
                }
            }
        }
        return x
    }

    /// The whole-photo tiled path (banded restore) on a 12-megapixel photo-like image, one pass.
    func test3_photo() throws {
        let b = try bundle()
        let id = env["ANYIR_PHOTO_ARTIFACT"] ?? b.defaultArtifact?.id ?? ""
        let a = try chosen(id)
        let size = (env["ANYIR_PHOTO"] ?? "4032x3024").split(separator: "x").compactMap { Int($0) }
        guard size.count == 2, size[0] > 0, size[1] > 0 else { throw AnyIRError("ANYIR_PHOTO must be WxH, e.g. 4032x3024") }
        var img = RGBA8Image(width: size[0], height: size[1])
        for y in 0..<img.height {
            for x in 0..<img.width {
                let o = img.offset(x, y)
                img.data[o] = UInt8((x * 255) / img.width)
                img.data[o + 1] = UInt8((y * 255) / img.height)
                img.data[o + 2] = UInt8((x * 7 + y * 13) % 256)
            }
        }
        let loaded = try sync { try await BundleStore.runner(for: a, in: b, units: .all) }
        let runner = TimedRunner(loaded)
        defer { runner.close() }
        let restore = TiledRestore(runner: runner, overlap: b.manifest.input.overlap)
        let tiles = try restore.plan(width: img.width, height: img.height).tiles
        var totalMs = 0.0
        var failure: Error?
        let options = XCTMeasureOptions()
        options.iterationCount = 1
        measure(metrics: [XCTClockMetric(), XCTMemoryMetric()], options: options) {
            let t0 = ProcessInfo.processInfo.systemUptime
            do {
                _ = try restore.restore(img)
            } catch { failure = error }
            totalMs = (ProcessInfo.processInfo.systemUptime - t0) * 1000
        }
        if let failure { throw failure }
        var result: [String: Any] = ["artifact": ProfileResult.artifact(a), "runner": "ios demo (XCTest)", "status": "ok",
                                     "is_device_timing": !ProfileResult.isSimulator, "error": NSNull(), "latency": NSNull(),
                                     "memory": ProfileResult.memory()]
        result["runtime"] = ["name": a.backend == "executorch" ? "ExecuTorch" : "Core ML",
                             "version": a.backend == "executorch" ? ExecuTorchVersion.linked : ProfileResult.osVersion,
                             "compute_units": a.backend == "coreml" ? "all" as Any : NSNull() as Any] as [String: Any]
        result["photo"] = ["width": img.width, "height": img.height, "tiles": tiles, "total_ms": totalMs,
                           "ms_per_tile": runner.times.isEmpty ? totalMs / Double(tiles) : runner.times.reduce(0, +) / Double(runner.times.count),
                           "peak_mb": ProfileResult.peakMB().map { $0 as Any } ?? NSNull()] as [String: Any]
        result["note"] = "whole photo, banded tiled restore (pre/post-processing and blend included in total_ms)"
        Self.results.append(result)
    }

    /// Last by name: the profile-1 result as an attachment the harness exports from the .xcresult.
    func test9_write_profile() throws {
        let doc = ProfileResult.document(bundle: Self.opened, runs: runs, warmup: warmup, results: Self.results)
        let data = try Json.write(doc)
        let attachment = XCTAttachment(data: data, uniformTypeIdentifier: "public.json")
        attachment.name = ProfileResult.attachmentName
        attachment.lifetime = .keepAlways
        add(attachment)
        XCTAssertFalse(Self.results.isEmpty, "no artifact was profiled (ANYIR_ARTIFACTS? an empty bundle?)")
    }
}

/// Carries an async result back to the waiting test thread (written once, read after the wait).
final class AsyncBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}
