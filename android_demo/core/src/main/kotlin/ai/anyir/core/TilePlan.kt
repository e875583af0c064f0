package ai.anyir.core

import kotlin.math.PI

// Mirrors anyir_core/tiling.py (axis_origins, ramp, TilePlan) line for line: the test vectors hold the
// plans and blend weights Python computed, and tests/test_android_core.py compares them bit for bit.

/** Tile origins along one axis of [length] px (already padded to at least [tile]). */
fun axisOrigins(length: Int, tile: Int, overlap: Int): IntArray {
    require(length >= tile) { "axis of $length px is shorter than the $tile px tile; pad first" }
    if (length == tile) return intArrayOf(0)
    val step = tile - overlap
    val n = 1 + (length - tile + step - 1) / step  // 1 + ceil((L - T) / (T - overlap)), in integers
    // origin_i = floor(i * (L - T) / (n - 1)); Long so a long axis cannot overflow the product
    return IntArray(n) { i -> (i.toLong() * (length - tile) / (n - 1)).toInt() }
}

/**
 * The 1-D blend weight over one tile axis: sin^2(pi/2 * (t + 0.5) / overlap) over the first and last
 * [overlap] pixels, 1 inside. Computed in Double and stored as Float, as numpy computes it in float64
 * and assigns into a float32 array; StrictMath so every JVM gives the same sine (fdlibm, like libm's,
 * correctly rounded in practice for these arguments - the vectors check it).
 */
fun ramp(tile: Int, overlap: Int): FloatArray {
    val w = FloatArray(tile) { 1f }
    if (overlap > 0) {
        val edge = DoubleArray(overlap) { i ->
            val t = (i.toDouble() + 0.5) / overlap
            val s = StrictMath.sin(0.5 * PI * t)  // (0.5 * pi) * t, numpy's evaluation order
            s * s                                 // numpy's ** 2 is a plain square
        }
        for (i in 0 until overlap) w[i] = edge[i].toFloat()
        for (i in 0 until overlap) {
            val j = tile - overlap + i
            // np.minimum(float32, float64) compares in float64, then the store rounds to float32
            w[j] = minOf(w[j].toDouble(), edge[overlap - 1 - i]).toFloat()
        }
    }
    return w
}

/** Which tiles cover an image of [height] x [width] with a [tileH] x [tileW] model, and how they blend. */
class TilePlan(val height: Int, val width: Int, val tileH: Int, val tileW: Int, val overlap: Int) {
    init {
        if (height < 1 || width < 1) throw ImageError("cannot tile an empty ${width}x$height image")
        if (overlap < 0 || overlap >= minOf(tileH, tileW) / 2) {
            throw ImageError("overlap $overlap must be in [0, ${minOf(tileH, tileW) / 2})")
        }
    }

    /** The image reflect-padded at bottom/right up to at least one tile. */
    val paddedH: Int get() = maxOf(height, tileH)
    val paddedW: Int get() = maxOf(width, tileW)

    val ys: IntArray by lazy { axisOrigins(paddedH, tileH, overlap) }
    val xs: IntArray by lazy { axisOrigins(paddedW, tileW, overlap) }

    /** Python's len(plan). */
    val tiles: Int get() = ys.size * xs.size

    /** The tile's H x W blend weight, row-major: ramp(y) * ramp(x) in Float, like np.outer of float32. */
    fun weights(): FloatArray {
        val ry = ramp(tileH, overlap)
        val rx = ramp(tileW, overlap)
        return FloatArray(tileH * tileW) { k -> ry[k / tileW] * rx[k % tileW] }
    }

    override fun toString() =
        "TilePlan(${height}x$width, tile ${tileH}x$tileW, overlap $overlap: ${ys.size}x${xs.size} tiles)"
}
