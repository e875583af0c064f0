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

/// The vectors' stand-in model (rule "standin"): tile i in plan order returns x when i is even, else
/// 0.5 * (1 - x), in Float, so neighbouring tiles disagree and the blend decides every overlapped pixel.
final class Alternating: Runner {
    let tileH: Int
    let tileW: Int
    let layout = Layout.nchw
    let inputType = TensorType.float32
    let label = "alternating"
    private(set) var calls = 0
    init(tileH: Int, tileW: Int) { self.tileH = tileH; self.tileW = tileW }
    func run(_ input: TileInput) throws -> [Float] {
        guard case .floats(let v) = input else { throw AnyIRError("alternating: float tiles only") }
        let odd = calls % 2 == 1
        calls += 1
        return odd ? v.map { 0.5 * (1 - $0) } : v
    }
    func close() {}
}

/// Presents an NCHW runner as an NHWC one, so the blend's NHWC indexing is checked by the same replay.
final class NhwcView: Runner {
    let inner: Runner
    init(_ inner: Runner) { self.inner = inner }
    var tileH: Int { inner.tileH }
    var tileW: Int { inner.tileW }
    let layout = Layout.nhwc
    var inputType: TensorType { inner.inputType }
    var label: String { "NHWC view of \(inner.label)" }
    func run(_ input: TileInput) throws -> [Float] {
        guard case .floats(let v) = input else { throw AnyIRError("NHWC view: float tiles only") }
        let out = try inner.run(.floats(Pixels.nhwcToNchw(v, height: tileH, width: tileW)))
        return Pixels.nchwToNhwc(out, height: tileH, width: tileW)
    }
    func close() { inner.close() }
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
    /// reference's photo_restored_<id>.png (same Float operations in the same order: bit-identical), for an
    /// NCHW runner and the same runner seen as NHWC; a varying source alpha comes back untouched.
    func testReplayedTilesGiveTheRestoredPhoto() throws {
        let v = try Vectors.load()
        let tile = try v.index.intList("tile")
        let overlap = try v.index.int("overlap")
        let (inputs, _) = try v.f32(try v.index.obj("photo").obj("tile_inputs"))
        let outputs = try v.index.obj("outputs")
        XCTAssertFalse(outputs.keys().isEmpty, "the vectors hold no artifact outputs")
        for id in outputs.keys() {
            let o = try outputs.obj(id)
            let (recorded, shape) = try v.f32(try o.obj("tile_outputs"))
            let (first, _) = try v.f32(try o.obj("tile_output"))
            XCTAssertEqual(Array(recorded[0..<first.count]), first, id)
            for layout in [Layout.nchw, Layout.nhwc] {
                var img = try v.photo()
                for k in 0..<(img.width * img.height) { img.data[k * 4 + 3] = UInt8((k * 7) & 0xFF) }
                let replay = ReplayRunner(tileH: tile[0], tileW: tile[1], outputs: recorded, expectedInputs: inputs)
                XCTAssertEqual(shape[0], replay.tiles, id)
                let runner: Runner = layout == .nchw ? replay : NhwcView(replay)
                var progress: [(Int, Int)] = []
                let restored = try TiledRestore(runner: runner, overlap: overlap).restore(img, progress: { progress.append(($0, $1)) })
                XCTAssertEqual(replay.calls, shape[0], "\(id) \(layout): every recorded tile used once")
                XCTAssertEqual(progress.count, shape[0])
                XCTAssertTrue(progress.last.map { $0 == (shape[0], shape[0]) } ?? false)
                XCTAssertEqual([restored.width, restored.height], [img.width, img.height])
                let want = try v.rgbOfPNG(try o.string("photo_restored"), width: img.width, height: img.height)
                var differing = 0, alphaKept = true
                for k in 0..<(img.width * img.height) {
                    for c in 0..<3 where restored.data[k * 4 + c] != want[k * 3 + c] { differing += 1 }
                    if restored.data[k * 4 + 3] != UInt8((k * 7) & 0xFF) { alphaKept = false }
                }
                XCTAssertEqual(differing, 0, "\(id) \(layout): samples that differ from photo_restored_\(id).png")
                XCTAssertTrue(alphaKept, "\(id) \(layout): alpha changed")
            }
        }
    }

    /// The seeded 301 x 451 photo through the stand-in model: several bands and columns of disagreeing
    /// tiles, equal byte for byte to the reference's standin_restored.png (rule "exactness").
    func testTheStandInModelGivesTheReferencesBytes() throws {
        let v = try Vectors.load()
        let standin = try v.index.obj("standin")
        let size = try standin.intList("size")
        let src = try v.rgbOfPNG(try standin.string("photo"), width: size[1], height: size[0])
        var img = RGBA8Image(width: size[1], height: size[0])
        for k in 0..<(size[0] * size[1]) { for c in 0..<3 { img.data[k * 4 + c] = src[k * 3 + c] } }
        let tile = try v.index.intList("tile")
        let runner = Alternating(tileH: tile[0], tileW: tile[1])
        let out = try TiledRestore(runner: runner, overlap: try v.index.int("overlap")).restore(img)
        XCTAssertEqual(runner.calls, try standin.int("tiles"))
        let want = try v.rgbOfPNG(try standin.string("restored"), width: size[1], height: size[0])
        var differing = 0
        for k in 0..<(size[0] * size[1]) { for c in 0..<3 where out.data[k * 4 + c] != want[k * 3 + c] { differing += 1 } }
        XCTAssertEqual(differing, 0, "samples that differ from standin_restored.png")
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

    /// Kotlin's synthetic check: a stand-in model that inverts each tile, so every byte must come back as 255 - v.
    func testAnInvertingModelInvertsEveryPixel() throws {
        final class Invert: Runner {
            let tileH = 64, tileW = 64, label = "invert"
            let layout = Layout.nchw, inputType = TensorType.float32
            func run(_ input: TileInput) throws -> [Float] {
                guard case .floats(let v) = input else { return [] }
                return v.map { 1 - $0 }
            }
            func close() {}
        }
        var img = RGBA8Image(width: 301, height: 451)
        for y in 0..<img.height {
            for x in 0..<img.width {
                let o = img.offset(x, y)
                img.data[o] = UInt8((x * 7 + y * 3) & 0xFF); img.data[o + 1] = UInt8((x * 5 + y * 13) & 0xFF)
                img.data[o + 2] = UInt8((x * 11 + y) & 0xFF); img.data[o + 3] = UInt8((x * 37 + y * 11) & 0xFF)
            }
        }
        let out = try TiledRestore(runner: Invert(), overlap: 16).restore(img)
        var wrong = 0
        for i in 0..<img.data.count {
            let want = i % 4 == 3 ? img.data[i] : 255 - img.data[i]
            if out.data[i] != want { wrong += 1 }
        }
        XCTAssertEqual(wrong, 0)
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
