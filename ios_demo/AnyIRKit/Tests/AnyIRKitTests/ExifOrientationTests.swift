import AnyIRKit
import XCTest

final class ExifOrientationTests: XCTestCase {
    func testEveryOrientationMatchesPIL() throws {
        let v = try Vectors.load()
        let exif = try v.index.obj("exif")
        let (src, s) = try v.u8(try exif.obj("source"))
        let table = try exif.obj("orientations")
        for o in 1...8 {
            let (ref, rs) = try v.u8(try table.obj(String(o)))
            let got = ExifOrientation.transpose(src, width: s[1], height: s[0], channels: s[2], o)
            XCTAssertEqual([got.height, got.width, s[2]], rs, "orientation \(o)")
            XCTAssertEqual(got.pixels, ref, "orientation \(o)")
            // the RGBA path the app uses gives the same pixels
            var rgba = [UInt8](repeating: 255, count: s[0] * s[1] * 4)
            for i in 0..<(s[0] * s[1]) { for c in 0..<3 { rgba[i * 4 + c] = src[i * 3 + c] } }
            let up = ExifOrientation.transpose(try RGBA8Image(width: s[1], height: s[0], data: rgba), o)
            XCTAssertEqual([up.height, up.width], [rs[0], rs[1]], "orientation \(o)")
            for i in 0..<(up.width * up.height) {
                for c in 0..<3 { XCTAssertEqual(up.data[i * 4 + c], ref[i * 3 + c], "orientation \(o) pixel \(i)") }
            }
        }
    }

    func testUnknownOrientationIsIgnored() throws {
        let img = try RGBA8Image(width: 2, height: 1, data: [1, 2, 3, 255, 4, 5, 6, 255])
        XCTAssertEqual(ExifOrientation.transpose(img, 0), img)
        XCTAssertEqual(ExifOrientation.transpose(img, 9), img)
    }
}
