package ai.anyir.core

/** Thrown between tiles when the caller's isCancelled() turned true; nothing of the output is valid then. */
class RestoreCancelled(val tilesDone: Int, val tiles: Int) : Exception("cancelled after $tilesDone of $tiles tiles")

/**
 * anyir_core.tiling.restore_tiled, banded. Python keeps a float accumulator and weight sum for the
 * whole padded photo (28 bytes a pixel: 340 MB at 12 MP); here only one band of tile rows lives in
 * Float: [tileH] accumulator rows x padded width, used as a ring indexed by absolute row % tileH.
 * After the tiles of band i, rows [ys[i], ys[i+1]) receive no further tile (later bands start at
 * ys[i+1] or below it), so they are divided, clipped, rounded and written to the output pixels, and
 * their ring rows zeroed for the rows one tile height further down. The rows still shared with the
 * next band (the overlap) stay in the ring.
 *
 * Every pixel still gets its weighted outputs in plan order with Python's Float operations
 * (acc += out * w; wsum += w; acc / wsum; to_8bit), starting from 0, so the bytes equal the reference's.
 * Alpha is not restored: each output pixel keeps its source alpha.
 */
class TiledRestore(val runner: Runner, val overlap: Int) {

    fun plan(width: Int, height: Int): TilePlan = TilePlan(height, width, runner.tileH, runner.tileW, overlap)

    /**
     * Restores [src] into [dst] (a new pixel array by default; it may be src.pixels itself: a finished
     * row is never read again, and reflect padding reads only rows of a photo shorter than one tile,
     * which is written after its only band). [progress] gets (done, total) after each tile;
     * [isCancelled] is asked before each tile and a true ends the restore with [RestoreCancelled].
     */
    fun restore(
        src: ArgbImage,
        dst: IntArray = IntArray(src.pixels.size),
        progress: (done: Int, total: Int) -> Unit = { _, _ -> },
        isCancelled: () -> Boolean = { false },
    ): ArgbImage {
        if (dst.size != src.pixels.size) throw ImageError("output holds ${dst.size} pixels, the photo ${src.pixels.size}")
        val plan = plan(src.width, src.height)
        val th = plan.tileH
        val tw = plan.tileW
        val pw = plan.paddedW
        val ys = plan.ys
        val xs = plan.xs
        val total = plan.tiles
        val w = plan.weights()
        val acc = FloatArray(3 * th * pw)  // [channel][ring row][x]
        val wsum = FloatArray(th * pw)     // [ring row][x]
        val layout = runner.layout
        val tileFloats = FloatArray(3 * th * tw)
        val int8 = runner.inputType as? TensorType.Int8
        val tileBytes = if (int8 != null) ByteArray(tileFloats.size) else null
        val plane = th * tw
        var done = 0
        for ((iy, y0) in ys.withIndex()) {
            for (x0 in xs) {
                if (isCancelled()) throw RestoreCancelled(done, total)
                Pixels.tile(src, y0, x0, th, tw, layout, tileFloats)
                val input = if (int8 != null) {
                    TileInput.Int8s(Pixels.quantizeInt8(tileFloats, int8.scale, int8.zeroPoint, tileBytes!!))
                } else TileInput.Floats(tileFloats)
                val out = runner.run(input)
                if (out.size != tileFloats.size) {
                    throw ImageError("the model returned ${out.size} values for a tile of ${tileFloats.size} (3x${th}x$tw)")
                }
                for (r in 0 until th) {
                    val ring = (y0 + r) % th
                    val wRow = r * tw
                    for (c in 0..2) {
                        val a = (c * th + ring) * pw + x0
                        if (layout == Layout.NCHW) {
                            val o = c * plane + wRow
                            for (x in 0 until tw) acc[a + x] += out[o + x] * w[wRow + x]
                        } else {
                            val o = 3 * wRow + c
                            for (x in 0 until tw) acc[a + x] += out[o + 3 * x] * w[wRow + x]
                        }
                    }
                    val s = ring * pw + x0
                    for (x in 0 until tw) wsum[s + x] += w[wRow + x]
                }
                done++
                progress(done, total)
            }
            // rows [y0, end) are final: the next band starts at `end`; the last band finishes the photo
            val end = minOf(if (iy + 1 < ys.size) ys[iy + 1] else y0 + th, src.height)
            for (y in y0 until end) writeRow(y, src, dst, acc, wsum, th, pw)
            for (y in y0 until (if (iy + 1 < ys.size) ys[iy + 1] else y0)) clearRow(y % th, acc, wsum, th, pw)
        }
        return ArgbImage(src.width, src.height, dst)
    }

    private fun writeRow(y: Int, src: ArgbImage, dst: IntArray, acc: FloatArray, wsum: FloatArray, th: Int, pw: Int) {
        val ring = y % th
        val rowStart = y * src.width
        val g = (th + ring) * pw
        val b = (2 * th + ring) * pw
        val s = ring * pw
        for (x in 0 until src.width) {
            val ws = wsum[s + x]
            val red = Pixels.to8bit(acc[s + x] / ws)  // channel 0's rows start at ring * pw, like the weights
            val green = Pixels.to8bit(acc[g + x] / ws)
            val blue = Pixels.to8bit(acc[b + x] / ws)
            val alpha = src.pixels[rowStart + x] and -0x1000000  // 0xFF000000: the source alpha, unchanged
            dst[rowStart + x] = alpha or (red shl 16) or (green shl 8) or blue
        }
    }

    private fun clearRow(ring: Int, acc: FloatArray, wsum: FloatArray, th: Int, pw: Int) {
        for (c in 0..2) acc.fill(0f, (c * th + ring) * pw, (c * th + ring + 1) * pw)
        wsum.fill(0f, ring * pw, (ring + 1) * pw)
    }
}
