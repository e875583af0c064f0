import AnyIRKit
import Foundation
import XCTest
#if canImport(ImageIO)
import CoreGraphics
import ImageIO
#endif

/// The test vectors `anyir build` writes into a bundle's testvectors/ (format 2, mobile/vectors.py),
/// located by the environment variable ANYIR_TESTVECTORS; the Kotlin tests read the same folder.
struct Vectors {
    static let format = Rules.vectorsFormat
    let dir: URL
    let index: Fields

    static func load() throws -> Vectors {
        guard let path = ProcessInfo.processInfo.environment["ANYIR_TESTVECTORS"], !path.isEmpty else {
            throw XCTSkip("set ANYIR_TESTVECTORS to a bundle's testvectors/ folder (written by `anyir build`)")
        }
        let dir = URL(fileURLWithPath: path, isDirectory: true)
        let index = try Fields.root(try Data(contentsOf: dir.appendingPathComponent("vectors.json")), what: "vectors.json")
        let format = try index.string("format")
        guard format == Vectors.format else {
            throw AnyIRError("vectors.json is \(format); these tests read \(Vectors.format)")
        }
        return Vectors(dir: dir, index: index)
    }

    func bytes(_ spec: Fields, dtype: String, size: Int) throws -> (data: Data, shape: [Int]) {
        let got = try spec.string("dtype")
        guard got == dtype else { throw AnyIRError("\(spec.fieldPath): dtype \(got), expected \(dtype)") }
        let shape = try spec.intList("shape")
        let data = try Data(contentsOf: dir.appendingPathComponent(try spec.string("file")))
        guard data.count == shape.reduce(1, *) * size else {
            throw AnyIRError("\(spec.fieldPath): \(data.count) bytes for shape \(shape)")
        }
        return (data, shape)
    }

    /// float32-le arrays (every host these tests run on is little-endian).
    func f32(_ spec: Fields) throws -> (values: [Float], shape: [Int]) {
        let (data, shape) = try bytes(spec, dtype: "float32-le", size: 4)
        var out = [Float](repeating: 0, count: data.count / 4)
        _ = out.withUnsafeMutableBytes { data.copyBytes(to: $0) }
        return (out, shape)
    }

    func u8(_ spec: Fields) throws -> (values: [UInt8], shape: [Int]) {
        let (data, shape) = try bytes(spec, dtype: "uint8", size: 1)
        return ([UInt8](data), shape)
    }

    func i8(_ spec: Fields) throws -> (values: [Int8], shape: [Int]) {
        let (data, shape) = try bytes(spec, dtype: "int8", size: 1)
        return (data.map { Int8(bitPattern: $0) }, shape)
    }

    /// The photo as the app holds it: RGBA8 rebuilt from photo_input.f32 (exactly v / 255 of the PNG's
    /// 8-bit values, so round(v * 255) gives them back).
    func photo() throws -> RGBA8Image {
        let (v, shape) = try f32(try index.obj("photo").obj("input"))
        let h = shape[0], w = shape[1]
        var img = RGBA8Image(width: w, height: h)
        for i in 0..<(h * w) {
            for c in 0..<3 { img.data[i * 4 + c] = UInt8((v[i * 3 + c] * 255).rounded()) }
        }
        return img
    }

    /// An 8-bit RGB PNG of the vectors as H x W x 3 bytes: from `<name>.rgb` beside it when present
    /// (tests/test_ios_sources.py writes those for Linux, which has no PNG decoder), else through ImageIO.
    func rgbOfPNG(_ name: String, width: Int, height: Int) throws -> [UInt8] {
        let raw = dir.appendingPathComponent(URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent + ".rgb")
        if FileManager.default.fileExists(atPath: raw.path) {
            let d = try Data(contentsOf: raw)
            guard d.count == width * height * 3 else { throw AnyIRError("\(raw.lastPathComponent): \(d.count) bytes for \(width)x\(height)x3") }
            return [UInt8](d)
        }
        #if canImport(ImageIO)
        return try decodePNG(dir.appendingPathComponent(name), width: width, height: height)
        #else
        throw XCTSkip("no ImageIO on this platform and no \(raw.lastPathComponent) beside \(name)")
        #endif
    }

    #if canImport(ImageIO)
    /// The PNG's stored 8-bit samples, read from the decoded bitmap as is (no color conversion).
    private func decodePNG(_ url: URL, width: Int, height: Int) throws -> [UInt8] {
        guard let src = CGImageSourceCreateWithURL(url as CFURL, nil),
              let img = CGImageSourceCreateImageAtIndex(src, 0, nil),
              let cf = img.dataProvider?.data else {
            throw AnyIRError("\(url.lastPathComponent): ImageIO could not decode it")
        }
        guard img.width == width, img.height == height, img.bitsPerComponent == 8,
              img.bitsPerPixel == 24 || img.bitsPerPixel == 32 else {
            throw AnyIRError("\(url.lastPathComponent): \(img.width)x\(img.height), \(img.bitsPerPixel) bits per pixel; expected 8-bit RGB(A)")
        }
        let alpha = img.alphaInfo
        guard img.bitsPerPixel == 24 || [.last, .premultipliedLast, .noneSkipLast].contains(alpha) else {
            throw AnyIRError("\(url.lastPathComponent): alpha first (\(alpha.rawValue)); expected RGB or RGBA order")
        }
        let data = cf as Data
        let step = img.bitsPerPixel / 8
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let s = y * img.bytesPerRow + x * step
                for c in 0..<3 { out[(y * width + x) * 3 + c] = data[s + c] }
            }
        }
        return out
    }
    #endif
}

/// Max |a - b| over two arrays of equal length (fails the test when the lengths differ).
func maxAbsDiff(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(a.count, b.count, "array lengths", file: file, line: line)
    var m: Float = 0
    for i in 0..<min(a.count, b.count) { m = max(m, abs(a[i] - b[i])) }
    return m
}
