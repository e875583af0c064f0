package ai.anyir.core

/**
 * EXIF orientation (tag 0x0112) applied as PIL's ImageOps.exif_transpose does, so an app shows and
 * restores the photo upright exactly as `anyir restore` reads it. Android's BitmapFactory ignores the
 * tag; the app reads it (androidx ExifInterface or the JPEG itself) and calls [transpose].
 */
object ExifOrientation {
    /** Orientations 2-8 move pixels; 1 and anything else (0, 9, a corrupt value) leave the image as is. */
    fun transpose(img: ArgbImage, orientation: Int): ArgbImage {
        if (orientation !in 2..8) return img
        val w = img.width
        val h = img.height
        val swaps = orientation >= 5  // 5-8 turn by a quarter: width and height trade places
        val ow = if (swaps) h else w
        val oh = if (swaps) w else h
        val out = IntArray(ow * oh)
        for (y in 0 until oh) {
            for (x in 0 until ow) {
                // source (sx, sy) of output (x, y); per orientation, PIL's method:
                // 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
                // 6 ROTATE_270 (a quarter turn clockwise), 7 TRANSVERSE, 8 ROTATE_90 (counter-clockwise)
                val sx = when (orientation) {
                    2, 3 -> w - 1 - x
                    4 -> x
                    5, 6 -> y
                    else -> w - 1 - y  // 7, 8
                }
                val sy = when (orientation) {
                    2 -> y
                    3, 4 -> h - 1 - y
                    5, 8 -> x
                    else -> h - 1 - x  // 6, 7
                }
                out[y * ow + x] = img.pixels[sy * w + sx]
            }
        }
        return ArgbImage(ow, oh, out)
    }
}
