package ai.anyir.core

import kotlin.math.round

/**
 * A photo as Android hands it over: packed 0xAARRGGBB Ints, row-major, the layout of
 * `android.graphics.Bitmap.getPixels(pixels, 0, width, 0, 0, width, height)`.
 */
class ArgbImage(val width: Int, val height: Int, val pixels: IntArray = IntArray(width * height)) {
    init {
        if (width < 1 || height < 1) throw ImageError("cannot use an empty ${width}x$height image")
        if (pixels.size != width * height) {
            throw ImageError("a ${width}x$height image needs ${width * height} pixels, got ${pixels.size}")
        }
    }

    operator fun get(x: Int, y: Int): Int = pixels[y * width + x]
}

/**
 * Pre- and post-processing, the rules `to_float`, `padding`, `to_8bit` and `quantize` of
 * mobile/vectors.py (RULES). Every Float operation is the one numpy does in float32, in the same order,
 * so a tile fed to a model here equals the Python tile bit for bit.
 */
object Pixels {
    /** to_float: an 8-bit channel as float32 v / 255 (numpy: uint8 array / np.float32(255)). */
    fun toFloat(channel8: Int): Float = channel8.toFloat() / 255f

    /** to_8bit: floor(clip(v, 0, 1) * 255 + 0.5) in Float (numpy: (clip(rgb) * 255.0 + 0.5).astype(uint8)). */
    fun to8bit(v: Float): Int {
        val c = if (v < 0f) 0f else if (v > 1f) 1f else v
        return (c * 255f + 0.5f).toInt()  // non-negative, so truncation is floor, as astype(uint8) does
    }

    /**
     * Where pixel [i] of an axis reflect-padded past its [length] comes from: np.pad(mode="reflect"),
     * which mirrors without repeating the edge pixel and mirrors again while still short, i.e. a
     * period of 2 * (length - 1); an axis of 1 px repeats its one pixel.
     */
    fun reflectIndex(i: Int, length: Int): Int {
        if (i < length) return i
        if (length == 1) return 0
        val period = 2 * (length - 1)
        val j = i % period
        return if (j < length) j else period - j
    }

    /** pad_to_tile on a float H x W x C image: reflect-padded at bottom/right to [paddedH] x [paddedW]. */
    fun padReflect(hwc: FloatArray, height: Int, width: Int, channels: Int, paddedH: Int, paddedW: Int): FloatArray {
        require(hwc.size == height * width * channels) { "expected $height x $width x $channels values" }
        require(paddedH >= height && paddedW >= width) { "padding only grows an image" }
        val out = FloatArray(paddedH * paddedW * channels)
        for (y in 0 until paddedH) {
            val sy = reflectIndex(y, height)
            for (x in 0 until paddedW) {
                val sx = reflectIndex(x, width)
                System.arraycopy(hwc, (sy * width + sx) * channels, out, (y * paddedW + x) * channels, channels)
            }
        }
        return out
    }

    /** The whole image as H x W x 3 float RGB in [0, 1] (the vectors' photo_input); alpha unused. */
    fun toFloatRgb(img: ArgbImage): FloatArray {
        val out = FloatArray(img.width * img.height * 3)
        for (k in img.pixels.indices) {
            val p = img.pixels[k]
            out[3 * k] = toFloat((p ushr 16) and 0xFF)
            out[3 * k + 1] = toFloat((p ushr 8) and 0xFF)
            out[3 * k + 2] = toFloat(p and 0xFF)
        }
        return out
    }

    /**
     * One tile of [img] at ([y0], [x0]) as a model takes it: [tileH] x [tileW] float RGB in [layout]
     * (NCHW: 3 planes; NHWC: interleaved), rows/columns past the image reflect-padded. Written into
     * [out] so the tiled path allocates one tile buffer, not one per tile.
     */
    fun tile(img: ArgbImage, y0: Int, x0: Int, tileH: Int, tileW: Int, layout: Layout,
             out: FloatArray = FloatArray(3 * tileH * tileW)): FloatArray {
        require(out.size == 3 * tileH * tileW) { "a ${tileH}x$tileW tile needs ${3 * tileH * tileW} floats" }
        val plane = tileH * tileW
        for (r in 0 until tileH) {
            val row = reflectIndex(y0 + r, img.height) * img.width
            for (c in 0 until tileW) {
                val p = img.pixels[row + reflectIndex(x0 + c, img.width)]
                val red = toFloat((p ushr 16) and 0xFF)
                val green = toFloat((p ushr 8) and 0xFF)
                val blue = toFloat(p and 0xFF)
                if (layout == Layout.NCHW) {
                    val k = r * tileW + c
                    out[k] = red; out[plane + k] = green; out[2 * plane + k] = blue
                } else {
                    val k = 3 * (r * tileW + c)
                    out[k] = red; out[k + 1] = green; out[k + 2] = blue
                }
            }
        }
        return out
    }

    /**
     * quantize: q = clip(round_half_even(v / scale) + zeroPoint, -128, 127), as a full-integer model
     * takes its input (tflite_backend's runner and vectors.quantize_int8: float32 division, np.round).
     */
    fun quantizeInt8(values: FloatArray, scale: Float, zeroPoint: Int,
                     out: ByteArray = ByteArray(values.size)): ByteArray {
        require(out.size == values.size) { "quantize: ${values.size} values into ${out.size} bytes" }
        val zp = zeroPoint.toFloat()
        for (i in values.indices) {
            // kotlin.math.round rounds half to even (Math.rint), as np.round does; the Float sum
            // round + zp is exact at these magnitudes, as numpy's float32 sum is
            val q = round(values[i] / scale) + zp
            out[i] = (if (q < -128f) -128f else if (q > 127f) 127f else q).toInt().toByte()
        }
        return out
    }

    /** dequantize: v = (q - zeroPoint) * scale in Float (a full-integer model's output back to [0, 1]). */
    fun dequantizeInt8(values: ByteArray, scale: Float, zeroPoint: Int,
                       out: FloatArray = FloatArray(values.size)): FloatArray {
        require(out.size == values.size) { "dequantize: ${values.size} bytes into ${out.size} floats" }
        val zp = zeroPoint.toFloat()
        for (i in values.indices) out[i] = (values[i].toFloat() - zp) * scale
        return out
    }
}
