import AnyIRKit
import XCTest

final class PixelsTests: XCTestCase {
    func testPhotoToFloatMatchesTheReference() throws {
        let v = try Vectors.load()
        let img = try v.photo()
        let (ref, shape) = try v.f32(try v.index.obj("photo").obj("input"))
        XCTAssertEqual(shape, [img.height, img.width, 3])
        XCTAssertLessThanOrEqual(maxAbsDiff(Pixels.toFloatRgb(img), ref), 1e-6)
    }

    func testPhotoPNGIsWhatTheInputSays() throws {
        let v = try Vectors.load()
        let img = try v.photo()
        let png = try v.rgbOfPNG(try v.index.obj("photo").string("png"), width: img.width, height: img.height)
        for i in 0..<(img.width * img.height) {
            for c in 0..<3 where png[i * 3 + c] != img.data[i * 4 + c] {
                return XCTFail("photo.png differs from photo_input.f32 at pixel \(i)")
            }
        }
    }

    func testEveryTileFedIsTheReferences() throws {
        let v = try Vectors.load()
        let img = try v.photo()
        let photo = try v.index.obj("photo")
        let p = try photo.obj("plan")
        let tile = try p.intList("tile")
        let plan = try TilePlan(height: img.height, width: img.width, tileH: tile[0], tileW: tile[1], overlap: try p.int("overlap"))
        XCTAssertEqual(plan.ys, try p.intList("ys"))
        XCTAssertEqual(plan.xs, try p.intList("xs"))
        let (ref, shape) = try v.f32(try photo.obj("tile_inputs"))
        XCTAssertEqual(shape, [plan.tiles, 3, tile[0], tile[1]])
        var fed: [Float] = []
        for y in plan.ys {  // plan order: row-major
            for x in plan.xs { fed += Pixels.tile(img, y0: y, x0: x, tileH: tile[0], tileW: tile[1]) }
        }
        XCTAssertLessThanOrEqual(maxAbsDiff(fed, ref), 1e-6)
        let (first, firstShape) = try v.f32(try v.index.obj("tile_input"))
        XCTAssertEqual(firstShape, [1, 3, tile[0], tile[1]])
        XCTAssertLessThanOrEqual(maxAbsDiff(Array(fed[0..<first.count]), first), 1e-6)
    }

    func testReflectPaddingMatchesTheReference() throws {
        let v = try Vectors.load()
        let cases = try v.index.objList("padding")
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let (img, s) = try v.f32(try c.obj("image"))
            let (ref, ps) = try v.f32(try c.obj("padded"))
            let got = Pixels.padReflect(img, height: s[0], width: s[1], channels: s[2], paddedH: ps[0], paddedW: ps[1])
            XCTAssertLessThanOrEqual(maxAbsDiff(got, ref), 1e-6, c.fieldPath)
        }
    }

    func testInt8IOMatchesTheReference() throws {
        let v = try Vectors.load()
        let q = try v.index.obj("int8_io")
        let scale = Float(try q.double("scale"))
        let zp = try q.int("zero_point")
        XCTAssertEqual(scale, Pixels.int8Scale)
        XCTAssertEqual(zp, Pixels.int8ZeroPoint)
        let (x, _) = try v.f32(try q.obj("input"))
        let (qref, _) = try v.i8(try q.obj("quantized"))
        let (dref, _) = try v.f32(try q.obj("dequantized"))
        let got = Pixels.quantizeInt8(x, scale: scale, zeroPoint: zp)
        XCTAssertEqual(got, qref)
        XCTAssertLessThanOrEqual(maxAbsDiff(Pixels.dequantizeInt8(got, scale: scale, zeroPoint: zp), dref), 1e-6)
    }

    func testInt8TieVectorsMatchTheReference() throws {
        let v = try Vectors.load()
        let t = try v.index.obj("int8_ties")
        let (x, _) = try v.f32(try t.obj("input"))
        let (q, _) = try v.i8(try t.obj("quantized"))
        XCTAssertEqual(Pixels.quantizeInt8(x, scale: Float(try t.double("scale")), zeroPoint: try t.int("zero_point")), q)
    }

    /// Ties round half to even and the range clips, as mobile.vectors.quantize_int8 (numpy) gives for these
    /// values; the vectors' k/255 tile never hits a tie.
    func testInt8TiesAndClipping() {
        let x: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.5, -128.5, 1000, -1000, 3.4999]
        XCTAssertEqual(Pixels.quantizeInt8(x, scale: 1, zeroPoint: 0), [0, 2, 2, 0, -2, 126, 127, -128, 127, -128, 3])
        XCTAssertEqual(Pixels.quantizeInt8(x, scale: 1, zeroPoint: -128), [-128, -126, -126, -128, -128, -2, 0, -128, 127, -128, -125])
        XCTAssertEqual(Pixels.quantizeInt8(x, scale: 0.5, zeroPoint: 3), [4, 6, 8, 2, 0, 127, 127, -128, 127, -128, 10])
    }

    func testTo8bitRoundsHalfUpAndClips() {
        XCTAssertEqual(Pixels.to8bit(-0.2), 0)
        XCTAssertEqual(Pixels.to8bit(1.7), 255)
        XCTAssertEqual(Pixels.to8bit(Float(128) / 255), 128)
        XCTAssertEqual(Pixels.to8bit(0.5), 128)  // 127.5 + 0.5 floors to 128
        XCTAssertEqual(Pixels.reflectIndex(5, 5), 3)
        XCTAssertEqual(Pixels.reflectIndex(9, 1), 0)
    }
}
