import Foundation

// Mirrors android_demo/core TiledRestore.kt.

/// Thrown between tiles when the caller's isCancelled() turned true; nothing of the output is valid then.
public struct RestoreCancelled: Error, CustomStringConvertible {
    public let tilesDone: Int
    public let tiles: Int
    public var description: String { "cancelled after \(tilesDone) of \(tiles) tiles" }
}

/// anyir_core.tiling.restore_tiled, banded. Python keeps a float accumulator and weight sum for the
/// whole padded photo (28 bytes a pixel: 340 MB at 12 MP); here only one band of tile rows lives in
/// Float: tileH accumulator rows x padded width, used as a ring indexed by absolute row % tileH.
/// After the tiles of band i, rows [ys[i], ys[i+1]) receive no further tile (later bands start at
/// ys[i+1] or below it), so they are divided, clipped, rounded and written to the output pixels, and
/// their ring rows zeroed for the rows one tile height further down. The rows still shared with the
/// next band (the overlap) stay in the ring.
///
/// Every pixel still gets its weighted outputs in plan order with Python's Float operations
/// (acc += out * w; wsum += w; acc / wsum; to_8bit), starting from 0, so the bytes equal the reference's.
/// Alpha is not restored: each output pixel keeps its source alpha.
public final class TiledRestore {
    public let runner: Runner
    public let overlap: Int

    public init(runner: Runner, overlap: Int) {
        self.runner = runner
        self.overlap = overlap
    }

    public func plan(width: Int, height: Int) throws -> TilePlan {
        try TilePlan(height: height, width: width, tileH: runner.tileH, tileW: runner.tileW, overlap: overlap)
    }

    /// Restores `src` into a new image. `progress` gets (done, total) after each tile; `isCancelled` is
    /// asked before each tile and a true ends the restore with RestoreCancelled.
    public func restore(_ src: RGBA8Image, progress: (Int, Int) -> Void = { _, _ in },
                        isCancelled: () -> Bool = { false }) throws -> RGBA8Image {
        let plan = try self.plan(width: src.width, height: src.height)
        let th = plan.tileH
        let tw = plan.tileW
        let pw = plan.paddedW
        let ys = plan.ys
        let xs = plan.xs
        let total = plan.tiles
        let w = plan.weights()
        var acc = [Float](repeating: 0, count: 3 * th * pw)  // [channel][ring row][x]
        var wsum = [Float](repeating: 0, count: th * pw)     // [ring row][x]
        let layout = runner.layout
        var tileFloats = [Float](repeating: 0, count: 3 * th * tw)
        let plane = th * tw
        var dst = src
        var done = 0
        for (iy, y0) in ys.enumerated() {
            for x0 in xs {
                if isCancelled() { throw RestoreCancelled(tilesDone: done, tiles: total) }
                Pixels.tile(src, y0: y0, x0: x0, tileH: th, tileW: tw, layout: layout, into: &tileFloats)
                let input: TileInput
                if case let .int8(scale, zeroPoint) = runner.inputType {
                    input = .int8s(Pixels.quantizeInt8(tileFloats, scale: scale, zeroPoint: zeroPoint))
                } else {
                    input = .floats(tileFloats)
                }
                let out = try runner.run(input)
                if out.count != tileFloats.count {
                    throw ImageError("the model returned \(out.count) values for a tile of \(tileFloats.count) (3x\(th)x\(tw))")
                }
                for r in 0..<th {
                    let ring = (y0 + r) % th
                    let wRow = r * tw
                    for c in 0..<3 {
                        let a = (c * th + ring) * pw + x0
                        if layout == .nchw {
                            let o = c * plane + wRow
                            for x in 0..<tw { acc[a + x] += out[o + x] * w[wRow + x] }
                        } else {
                            let o = 3 * wRow + c
                            for x in 0..<tw { acc[a + x] += out[o + 3 * x] * w[wRow + x] }
                        }
                    }
                    let s = ring * pw + x0
                    for x in 0..<tw { wsum[s + x] += w[wRow + x] }
                }
                done += 1
                progress(done, total)
            }
            // rows [y0, end) are final: the next band starts at `end`; the last band finishes the photo
            let end = min(iy + 1 < ys.count ? ys[iy + 1] : y0 + th, src.height)
            for y in y0..<max(y0, end) { writeRow(y, &dst, acc, wsum, th, pw) }
            let cleared = iy + 1 < ys.count ? ys[iy + 1] : y0
            for y in y0..<cleared { clearRow(y % th, &acc, &wsum, th, pw) }
        }
        return dst
    }

    private func writeRow(_ y: Int, _ dst: inout RGBA8Image, _ acc: [Float], _ wsum: [Float], _ th: Int, _ pw: Int) {
        let ring = y % th
        let g = (th + ring) * pw
        let b = (2 * th + ring) * pw
        let s = ring * pw
        for x in 0..<dst.width {
            let ws = wsum[s + x]
            let p = dst.offset(x, y)
            dst.data[p] = Pixels.to8bit(acc[s + x] / ws)  // channel 0's rows start at ring * pw, like the weights
            dst.data[p + 1] = Pixels.to8bit(acc[g + x] / ws)
            dst.data[p + 2] = Pixels.to8bit(acc[b + x] / ws)
            // p + 3: the source alpha, unchanged
        }
    }

    private func clearRow(_ ring: Int, _ acc: inout [Float], _ wsum: inout [Float], _ th: Int, _ pw: Int) {
        for c in 0..<3 {
            let from = (c * th + ring) * pw
            for i in from..<(from + pw) { acc[i] = 0 }
        }
        for i in (ring * pw)..<((ring + 1) * pw) { wsum[i] = 0 }
    }
}
