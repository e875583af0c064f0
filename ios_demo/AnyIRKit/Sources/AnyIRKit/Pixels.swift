import Foundation

// Mirrors android_demo/core Pixels.kt. Android hands a photo over as packed 0xAARRGGBB Ints
// (Bitmap.getPixels); iOS as the bytes of an RGBA8 bitmap (what CGImage / vImage draw into), so the
// image type differs and every rule stays the same.

/// An 8-bit RGBA image in the layout CGContext / vImage use (kCGImageAlphaPremultipliedLast or
/// noneSkipLast: bytes R, G, B, A per pixel, rows `bytesPerRow` apart). Alpha is carried, never fed.
public struct RGBA8Image: Equatable {
    public let width: Int
    public let height: Int
    public let bytesPerRow: Int
    public var data: [UInt8]

    public init(width: Int, height: Int, bytesPerRow: Int? = nil, data: [UInt8]) throws {
        let stride = bytesPerRow ?? width * 4
        if width < 1 || height < 1 { throw ImageError("cannot use an empty \(width)x\(height) image") }
        if stride < width * 4 || data.count < stride * (height - 1) + width * 4 {
            throw ImageError("a \(width)x\(height) RGBA image needs rows of at least \(width * 4) bytes; got \(data.count) bytes")
        }
        self.width = width
        self.height = height
        self.bytesPerRow = stride
        self.data = data
    }

    /// An opaque black image.
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
        self.bytesPerRow = width * 4
        var d = [UInt8](repeating: 0, count: width * height * 4)
        for i in 0..<(width * height) { d[i * 4 + 3] = 255 }
        self.data = d
    }

    /// Byte offset of pixel (x, y): R, G, B, A follow.
    @inline(__always) public func offset(_ x: Int, _ y: Int) -> Int { y * bytesPerRow + x * 4 }
}

/// Pre- and post-processing, the rules `to_float`, `padding`, `to_8bit` and `quantize` of
/// mobile/vectors.py (RULES). Every Float operation is the one numpy does in float32, in the same order,
/// so a tile fed to a model here equals the Python tile bit for bit.
public enum Pixels {
    /// Full-integer int8 I/O as the vectors' int8_io holds it (`--float-levels 0` .tflite): the 8-bit
    /// pixel minus 128. A model's own scale and zero point come from its record; these are the vectors'.
    public static let int8Scale: Float = 1.0 / 255.0
    public static let int8ZeroPoint = -128

    /// to_float: an 8-bit channel as float32 v / 255 (numpy: uint8 array / np.float32(255)).
    @inline(__always) public static func toFloat(_ channel8: UInt8) -> Float { Float(channel8) / 255 }

    /// to_8bit: floor(clip(v, 0, 1) * 255 + 0.5) in Float (numpy: (clip(rgb) * 255.0 + 0.5).astype(uint8)).
    @inline(__always) public static func to8bit(_ v: Float) -> UInt8 {
        if v.isNaN { return 0 }  // as Kotlin's NaN.toInt(); UInt8(Float.nan) would trap
        let c: Float = v < 0 ? 0 : (v > 1 ? 1 : v)
        return UInt8(c * 255 + 0.5)  // non-negative, so truncation is floor, as astype(uint8) does
    }

    /// Where pixel i of an axis reflect-padded past its `length` comes from: np.pad(mode="reflect"),
    /// which mirrors without repeating the edge pixel and mirrors again while still short, i.e. a
    /// period of 2 * (length - 1); an axis of 1 px repeats its one pixel.
    @inline(__always) public static func reflectIndex(_ i: Int, _ length: Int) -> Int {
        if i < length { return i }
        if length == 1 { return 0 }
        let period = 2 * (length - 1)
        let j = i % period
        return j < length ? j : period - j
    }

    /// pad_to_tile on a float H x W x C image: reflect-padded at bottom/right to paddedH x paddedW.
    public static func padReflect(_ hwc: [Float], height: Int, width: Int, channels: Int, paddedH: Int, paddedW: Int) -> [Float] {
        precondition(hwc.count == height * width * channels, "expected \(height) x \(width) x \(channels) values")
        precondition(paddedH >= height && paddedW >= width, "padding only grows an image")
        var out = [Float](repeating: 0, count: paddedH * paddedW * channels)
        for y in 0..<paddedH {
            let sy = reflectIndex(y, height)
            for x in 0..<paddedW {
                let sx = reflectIndex(x, width)
                for c in 0..<channels { out[(y * paddedW + x) * channels + c] = hwc[(sy * width + sx) * channels + c] }
            }
        }
        return out
    }

    /// The whole image as H x W x 3 float RGB in [0, 1] (the vectors' photo_input); alpha unused.
    public static func toFloatRgb(_ img: RGBA8Image) -> [Float] {
        var out = [Float](repeating: 0, count: img.width * img.height * 3)
        for y in 0..<img.height {
            for x in 0..<img.width {
                let p = img.offset(x, y), k = y * img.width + x
                out[3 * k] = toFloat(img.data[p])
                out[3 * k + 1] = toFloat(img.data[p + 1])
                out[3 * k + 2] = toFloat(img.data[p + 2])
            }
        }
        return out
    }

    /// One tile of `img` at (y0, x0) as a model takes it: tileH x tileW float RGB in `layout` (NCHW: 3
    /// planes; NHWC: interleaved), rows/columns past the image reflect-padded. Written into `out` so the
    /// tiled path keeps one tile buffer, not one per tile.
    public static func tile(_ img: RGBA8Image, y0: Int, x0: Int, tileH: Int, tileW: Int, layout: Layout, into out: inout [Float]) {
        precondition(out.count == 3 * tileH * tileW, "a \(tileH)x\(tileW) tile needs \(3 * tileH * tileW) floats")
        let plane = tileH * tileW
        for r in 0..<tileH {
            let row = reflectIndex(y0 + r, img.height)
            for c in 0..<tileW {
                let p = img.offset(reflectIndex(x0 + c, img.width), row)
                let red = toFloat(img.data[p])
                let green = toFloat(img.data[p + 1])
                let blue = toFloat(img.data[p + 2])
                if layout == .nchw {
                    let k = r * tileW + c
                    out[k] = red; out[plane + k] = green; out[2 * plane + k] = blue
                } else {
                    let k = 3 * (r * tileW + c)
                    out[k] = red; out[k + 1] = green; out[k + 2] = blue
                }
            }
        }
    }

    /// The same, returning a new buffer.
    public static func tile(_ img: RGBA8Image, y0: Int, x0: Int, tileH: Int, tileW: Int, layout: Layout = .nchw) -> [Float] {
        var out = [Float](repeating: 0, count: 3 * tileH * tileW)
        tile(img, y0: y0, x0: x0, tileH: tileH, tileW: tileW, layout: layout, into: &out)
        return out
    }

    /// 3 planes (NCHW, one tile) to interleaved (NHWC), and back: for runners and tests that see the other layout.
    public static func nchwToNhwc(_ v: [Float], height h: Int, width w: Int) -> [Float] {
        let plane = h * w
        return (0..<v.count).map { k in v[(k % 3) * plane + k / 3] }
    }

    public static func nhwcToNchw(_ v: [Float], height h: Int, width w: Int) -> [Float] {
        let plane = h * w
        return (0..<v.count).map { k in v[(k % plane) * 3 + k / plane] }
    }

    /// quantize: q = clip(round_half_even(v / scale) + zeroPoint, -128, 127), as a full-integer model
    /// takes its input (float32 division, np.round's half-to-even).
    public static func quantizeInt8(_ values: [Float], scale: Float, zeroPoint: Int) -> [Int8] {
        let zp = Float(zeroPoint)
        return values.map { v in
            let q = (v / scale).rounded(.toNearestOrEven) + zp
            return Int8(q < -128 ? -128 : (q > 127 ? 127 : q))
        }
    }

    /// dequantize: v = (q - zeroPoint) * scale in Float (a full-integer model's output back to [0, 1]).
    public static func dequantizeInt8(_ values: [Int8], scale: Float, zeroPoint: Int) -> [Float] {
        let zp = Float(zeroPoint)
        return values.map { (Float($0) - zp) * scale }
    }
}
