import Foundation

// Mirrors android_demo/core TilePlan.kt, which mirrors anyir_core/tiling.py (axis_origins, ramp,
// TilePlan) line for line: the test vectors hold the plans and blend weights Python computed.

/// Tile origins along one axis of `length` px (already padded to at least `tile`).
public func axisOrigins(length: Int, tile: Int, overlap: Int) -> [Int] {
    precondition(length >= tile, "axis of \(length) px is shorter than the \(tile) px tile; pad first")
    if length == tile { return [0] }
    let step = tile - overlap
    let n = 1 + (length - tile + step - 1) / step  // 1 + ceil((L - T) / (T - overlap)), in integers
    return (0..<n).map { i in i * (length - tile) / (n - 1) }  // floor(i * (L - T) / (n - 1)); Int is 64-bit
}

/// The 1-D blend weight over one tile axis: sin^2(pi/2 * (t + 0.5) / overlap) over the first and last
/// `overlap` pixels, 1 inside. Computed in Double and stored as Float, as numpy computes it in float64
/// and assigns into a float32 array.
public func ramp(tile: Int, overlap: Int) -> [Float] {
    var w = [Float](repeating: 1, count: tile)
    if overlap > 0 {
        let edge: [Double] = (0..<overlap).map { i in
            let t = (Double(i) + 0.5) / Double(overlap)
            let s = sin(0.5 * Double.pi * t)  // (0.5 * pi) * t, numpy's evaluation order
            return s * s                      // numpy's ** 2 is a plain square
        }
        for i in 0..<overlap { w[i] = Float(edge[i]) }
        for i in 0..<overlap {
            let j = tile - overlap + i
            // np.minimum(float32, float64) compares in float64, then the store rounds to float32
            w[j] = Float(min(Double(w[j]), edge[overlap - 1 - i]))
        }
    }
    return w
}

/// Which tiles cover an image of height x width with a tileH x tileW model, and how they blend.
public struct TilePlan: Equatable, CustomStringConvertible {
    public let height: Int
    public let width: Int
    public let tileH: Int
    public let tileW: Int
    public let overlap: Int
    public let ys: [Int]
    public let xs: [Int]

    public init(height: Int, width: Int, tileH: Int, tileW: Int, overlap: Int) throws {
        if height < 1 || width < 1 { throw ImageError("cannot tile an empty \(width)x\(height) image") }
        if overlap < 0 || overlap >= min(tileH, tileW) / 2 {
            throw ImageError("overlap \(overlap) must be in [0, \(min(tileH, tileW) / 2))")
        }
        self.height = height
        self.width = width
        self.tileH = tileH
        self.tileW = tileW
        self.overlap = overlap
        ys = axisOrigins(length: max(height, tileH), tile: tileH, overlap: overlap)
        xs = axisOrigins(length: max(width, tileW), tile: tileW, overlap: overlap)
    }

    /// The image reflect-padded at bottom/right up to at least one tile.
    public var paddedH: Int { max(height, tileH) }
    public var paddedW: Int { max(width, tileW) }

    /// Python's len(plan).
    public var tiles: Int { ys.count * xs.count }

    /// The tile's H x W blend weight, row-major: ramp(y) * ramp(x) in Float, like np.outer of float32.
    public func weights() -> [Float] {
        let ry = ramp(tile: tileH, overlap: overlap)
        let rx = ramp(tile: tileW, overlap: overlap)
        return (0..<(tileH * tileW)).map { k in ry[k / tileW] * rx[k % tileW] }
    }

    public var description: String {
        "TilePlan(\(height)x\(width), tile \(tileH)x\(tileW), overlap \(overlap): \(ys.count)x\(xs.count) tiles)"
    }
}
