import Foundation

// Mirrors android_demo/core ExifOrientation.kt: EXIF orientation (tag 0x0112) applied as PIL's
// ImageOps.exif_transpose does, so the app restores the photo upright exactly as `anyir restore` reads
// it. On iOS the value is kCGImagePropertyOrientation of the photo's CGImageSource (same numbering);
// the app decodes the pixels as stored and calls `transpose`.
public enum ExifOrientation {
    /// Orientations 2-8 move pixels; 1 and anything else (0, 9, a corrupt value) leave the image as is.
    public static func transpose(_ img: RGBA8Image, _ orientation: Int) -> RGBA8Image {
        guard (2...8).contains(orientation) else { return img }
        let w = img.width, h = img.height
        let swaps = orientation >= 5  // 5-8 turn by a quarter: width and height trade places
        let ow = swaps ? h : w
        let oh = swaps ? w : h
        var out = RGBA8Image(width: ow, height: oh)
        for y in 0..<oh {
            for x in 0..<ow {
                let (sx, sy) = source(orientation, x, y, w, h)
                let s = img.offset(sx, sy), d = out.offset(x, y)
                for c in 0..<4 { out.data[d + c] = img.data[s + c] }
            }
        }
        return out
    }

    /// Source (sx, sy) of output (x, y); per orientation, PIL's method: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180,
    /// 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270 (a quarter turn clockwise), 7 TRANSVERSE,
    /// 8 ROTATE_90 (counter-clockwise).
    @inline(__always) static func source(_ orientation: Int, _ x: Int, _ y: Int, _ w: Int, _ h: Int) -> (Int, Int) {
        let sx: Int
        switch orientation {
        case 2, 3: sx = w - 1 - x
        case 4: sx = x
        case 5, 6: sx = y
        default: sx = w - 1 - y  // 7, 8
        }
        let sy: Int
        switch orientation {
        case 2: sy = y
        case 3, 4: sy = h - 1 - y
        case 5, 8: sy = x
        default: sy = h - 1 - x  // 6, 7
        }
        return (sx, sy)
    }

    /// The same on tightly packed H x W x C bytes (the vectors' exif_*.u8 are H x W x 3 RGB).
    public static func transpose(_ px: [UInt8], width w: Int, height h: Int, channels: Int, _ orientation: Int) -> (pixels: [UInt8], width: Int, height: Int) {
        guard (2...8).contains(orientation) else { return (px, w, h) }
        let swaps = orientation >= 5
        let ow = swaps ? h : w
        let oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: ow * oh * channels)
        for y in 0..<oh {
            for x in 0..<ow {
                let (sx, sy) = source(orientation, x, y, w, h)
                for c in 0..<channels { out[(y * ow + x) * channels + c] = px[(sy * w + sx) * channels + c] }
            }
        }
        return (out, ow, oh)
    }
}
