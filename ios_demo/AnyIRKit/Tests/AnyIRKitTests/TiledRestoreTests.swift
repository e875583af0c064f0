import AnyIRKit
import XCTest

/// Returns every tile as it came in: the blend of identical values must give the photo back.
final class IdentityRunner: Runner {
    let tileH: Int
    let tileW: Int
    let layout: Layout
    let inputType = TensorType.float32
    let label = "identity"
    init(tileH: Int, tileW: Int, layout: Layout = .nchw) { self.tileH = tileH; self.tileW = tileW; self.layout = layout }
    func run(_ input: TileInput) throws -> [Float] {
        guard case .floats(let v) = input else { throw AnyIRError("identity: float tiles only") }
        return v
    }
    func close() {}
}

/// Quantizes like a full-integer model's input and hands the dequantized tile back.
final class Int8EchoRunner: Runner {
    let tileH = 16, tileW = 16
    let layout = Layout.nchw
    let inputType = TensorType.int8(scale: Pixels.int8Scale, zeroPoint: Pixels.int8ZeroPoint)
    let label = "int8 echo"
    func run(_ input: TileInput) throws -> [Float] {
        guard case .int8s(let q) = input else { throw AnyIRError("int8 echo: int8 tiles only") }
        return Pixels.dequantizeInt8(q, scale: Pixels.int8Scale, zeroPoint: Pixels.int8ZeroPoint)
    }
    func close() {}
}

final class TiledRestoreTests: XCTestCase {
    /// The recorded outputs of each artifact, replayed through the banded blend, land exactly on the
    /// reference's photo_restored_<id>.png (same Float operations in the same order: bit-identical).
    func testReplayedTilesGiveTheRestoredPhoto() throws {
        let v = try Vectors.load()
        let img = try v.photo()
        let tile = try v.index.intList("tile")
        let overlap = try v.index.int("overlap")
        let (inputs, _) = try v.f32(try v.index.obj("photo").obj("tile_inputs"))
        let outputs = try v.index.obj("outputs")
        XCTAssertFalse(outputs.keys().isEmpty, "the vectors hold no artifact outputs")
        for id in outputs.keys() {
            let o = try outputs.obj(id)
            let (recorded, shape) = try v.f32(try o.obj("tile_outputs"))
            let replay = ReplayRunner(tileH: tile[0], tileW: tile[1], outputs: recorded, expectedInputs: inputs)
            XCTAssertEqual(shape[0], replay.tiles, id)
            let restored = try TiledRestore(runner: replay, overlap: overlap).restore(img)
            XCTAssertEqual(replay.calls, shape[0], "\(id): every recorded tile used once")
            let (first, _) = try v.f32(try o.obj("tile_output"))
            XCTAssertEqual(Array(recorded[0..<first.count]), first, id)
            let ref = try v.rgbOfPNG(try o.string("photo_restored"), width: img.width, height: img.height)
            var mismatches = 0
            for i in 0..<(img.width * img.height) {
                for c in 0..<3 where restored.data[i * 4 + c] != ref[i * 3 + c] { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(id): restored samples that differ from photo_restored_\(id).png")
            XCTAssertEqual(restored.width, img.width)
            XCTAssertEqual(restored.height, img.height)
        }
    }

    func testIdentityRunnerGivesThePhotoBack() throws {
        let v = try Vectors.load()
        let img = try v.photo()
        let tile = try v.index.intList("tile")
        let restored = try TiledRestore(runner: IdentityRunner(tileH: tile[0], tileW: tile[1]), overlap: try v.index.int("overlap")).restore(img)
        XCTAssertEqual(restored, img)
    }

    func testProgressInPlanOrderAndCancel() throws {
        var img = RGBA8Image(width: 150, height: 70)
        for i in 0..<img.data.count where i % 4 != 3 { img.data[i] = UInt8((i * 7) % 256) }
        let runner = IdentityRunner(tileH: 64, tileW: 64)
        let restore = TiledRestore(runner: runner, overlap: 16)
        let plan = try restore.plan(width: img.width, height: img.height)
        XCTAssertEqual(plan.tiles, 6)  // 2 rows x 3 columns: the banded ring carries rows across bands
        var seen: [Int] = []
        let out = try restore.restore(img, progress: { done, total in
            XCTAssertEqual(total, plan.tiles)
            seen.append(done)
        })
        XCTAssertEqual(seen, Array(1...plan.tiles))
        XCTAssertEqual(out, img)
        var done = 0
        XCTAssertThrowsError(try restore.restore(img, progress: { d, _ in done = d }, isCancelled: { done >= 2 })) { error in
            XCTAssertEqual((error as? RestoreCancelled)?.tilesDone, 2)
        }
        XCTAssertEqual(done, 2)
    }

    func testNHWCRunnersAndInt8InputBlendAlike() throws {
        var img = RGBA8Image(width: 40, height: 23)
        for i in 0..<img.data.count where i % 4 != 3 { img.data[i] = UInt8((i * 13) % 256) }
        XCTAssertEqual(try TiledRestore(runner: IdentityRunner(tileH: 16, tileW: 16, layout: .nhwc), overlap: 4).restore(img), img)
        // v / 255 quantized with scale 1/255 and zero point -128 and back is v again: the photo comes back
        XCTAssertEqual(try TiledRestore(runner: Int8EchoRunner(), overlap: 4).restore(img), img)
    }

    /// Many bands: the ring of tileH accumulator rows is reused 20 times over and still gives every row back.
    func testATallPhotoPassesThroughTheRing() throws {
        var img = RGBA8Image(width: 70, height: 1000)
        for i in 0..<img.data.count where i % 4 != 3 { img.data[i] = UInt8((i * 29 + i / 280) % 256) }
        let restore = TiledRestore(runner: IdentityRunner(tileH: 64, tileW: 64), overlap: 16)
        XCTAssertGreaterThan(try restore.plan(width: 70, height: 1000).ys.count, 20)
        XCTAssertEqual(try restore.restore(img), img)
    }

    func testAlphaIsKeptAndTinyImagesArePadded() throws {
        var img = RGBA8Image(width: 3, height: 2)
        for i in 0..<6 { img.data[i * 4] = UInt8(40 * i); img.data[i * 4 + 3] = UInt8(100 + i) }
        let out = try TiledRestore(runner: IdentityRunner(tileH: 16, tileW: 16), overlap: 4).restore(img)
        XCTAssertEqual(out, img)
    }

    func testWrongOutputSizeIsRefused() {
        final class Short: Runner {
            let tileH = 16, tileW = 16, label = "short"
            let layout = Layout.nchw, inputType = TensorType.float32
            func run(_ input: TileInput) throws -> [Float] {
                guard case .floats(let v) = input else { return [] }
                return Array(v.dropLast())
            }
            func close() {}
        }
        XCTAssertThrowsError(try TiledRestore(runner: Short(), overlap: 4).restore(RGBA8Image(width: 20, height: 20)))
    }
}
