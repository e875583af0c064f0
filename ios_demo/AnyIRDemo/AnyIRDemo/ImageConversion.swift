import AnyIRKit
import CoreGraphics
import Foundation
import ImageIO
import UIKit

/// Photo bytes <-> the core's RGBA8Image. Decoding keeps the pixels as stored and reads the EXIF
/// orientation; ExifOrientation (the tested core) turns them upright, as PIL's exif_transpose does.
enum ImageConversion {
    static let sRGB = CGColorSpace(name: CGColorSpace.sRGB)!

    static func upright(from data: Data) throws -> RGBA8Image {
        guard let src = CGImageSourceCreateWithData(data as CFData, nil),
              let cg = CGImageSourceCreateImageAtIndex(src, 0, [kCGImageSourceShouldCacheImmediately: true] as CFDictionary) else {
            throw AnyIRError("this file is not an image ImageIO can decode")
        }
        let props = CGImageSourceCopyPropertiesAtIndex(src, 0, nil) as? [CFString: Any]
        let orientation = (props?[kCGImagePropertyOrientation] as? NSNumber)?.intValue ?? 1
        return ExifOrientation.apply(try rgba(cg), orientation: orientation)
    }

    /// Draws the image into an sRGB RGBA8 bitmap (alpha premultiplied last: photos are opaque).
    static func rgba(_ cg: CGImage) throws -> RGBA8Image {
        let w = cg.width, h = cg.height
        var bytes = [UInt8](repeating: 0, count: w * h * 4)
        let ok: Bool = bytes.withUnsafeMutableBytes { buf in
            guard let ctx = CGContext(data: buf.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                                      space: sRGB, bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue) else { return false }
            ctx.draw(cg, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard ok else { throw AnyIRError("could not draw a \(w)x\(h) image into an RGBA bitmap") }
        return try RGBA8Image(width: w, height: h, data: bytes)
    }

    static func cgImage(_ img: RGBA8Image) -> CGImage? {
        guard let provider = CGDataProvider(data: Data(img.data) as CFData) else { return nil }
        return CGImage(width: img.width, height: img.height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: img.bytesPerRow,
                       space: sRGB, bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                       provider: provider, decode: nil, shouldInterpolate: true, intent: .defaultIntent)
    }

    static func uiImage(_ img: RGBA8Image) -> UIImage? {
        cgImage(img).map { UIImage(cgImage: $0) }
    }
}
