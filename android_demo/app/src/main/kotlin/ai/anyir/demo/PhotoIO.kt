package ai.anyir.demo

import ai.anyir.core.AnyIRError
import ai.anyir.core.ArgbImage
import ai.anyir.core.ExifOrientation
import android.content.ContentValues
import android.content.Context
import android.content.Intent
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.media.ExifInterface
import android.net.Uri
import android.provider.MediaStore
import androidx.core.content.FileProvider
import java.io.File
import java.io.InputStream

/** Photos in and out: decode with EXIF applied (the core's rule), save to the gallery, share. */
object PhotoIO {
    /** Above this the photo is decoded at half size (a 12 MP photo plus its restored copy fit a large heap). */
    private const val MAX_PIXELS = 16_000_000L

    fun decode(context: Context, uri: Uri): ArgbImage {
        val resolver = context.contentResolver
        val orientation = resolver.openInputStream(uri)?.use { exifOrientation(it) } ?: 1
        val bitmap = resolver.openInputStream(uri)?.use { decodeStream(it, bounds(resolver.openInputStream(uri))) }
            ?: throw AnyIRError("cannot open the photo $uri")
        return ExifOrientation.transpose(toArgb(bitmap), orientation)
    }

    fun decodeFile(file: File): ArgbImage {
        val orientation = file.inputStream().use { exifOrientation(it) }
        val bitmap = file.inputStream().use { decodeStream(it, bounds(file.inputStream())) }
        return ExifOrientation.transpose(toArgb(bitmap), orientation)
    }

    private fun exifOrientation(input: InputStream): Int = try {
        ExifInterface(input).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
    } catch (e: Exception) {
        1  // PNG or a file without EXIF: upright as stored
    }

    private fun bounds(input: InputStream?): Long = input?.use {
        val o = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        BitmapFactory.decodeStream(it, null, o)
        o.outWidth.toLong() * o.outHeight.toLong()
    } ?: 0L

    private fun decodeStream(input: InputStream, pixels: Long): Bitmap {
        val o = BitmapFactory.Options().apply {
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inSampleSize = if (pixels > MAX_PIXELS) 2 else 1
        }
        return BitmapFactory.decodeStream(input, null, o) ?: throw AnyIRError("not a photo this phone can decode")
    }

    private fun toArgb(bitmap: Bitmap): ArgbImage {
        val b = if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap else bitmap.copy(Bitmap.Config.ARGB_8888, false)
        val px = IntArray(b.width * b.height)
        b.getPixels(px, 0, b.width, 0, 0, b.width, b.height)
        return ArgbImage(b.width, b.height, px)
    }

    fun toBitmap(img: ArgbImage): Bitmap = Bitmap.createBitmap(img.pixels, img.width, img.height, Bitmap.Config.ARGB_8888)

    /** Pictures/AnyIR/<name>.jpg through MediaStore (no permission from API 29), pending until fully written. */
    fun saveToGallery(context: Context, bitmap: Bitmap, name: String): Uri {
        val resolver = context.contentResolver
        val values = ContentValues().apply {
            put(MediaStore.Images.Media.DISPLAY_NAME, "$name.jpg")
            put(MediaStore.Images.Media.MIME_TYPE, "image/jpeg")
            put(MediaStore.Images.Media.RELATIVE_PATH, "Pictures/AnyIR")
            put(MediaStore.Images.Media.IS_PENDING, 1)
        }
        val uri = resolver.insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values)
            ?: throw AnyIRError("the gallery refused a new photo")
        try {
            resolver.openOutputStream(uri)?.use { bitmap.compress(Bitmap.CompressFormat.JPEG, 95, it) }
                ?: throw AnyIRError("cannot write to the gallery")
            resolver.update(uri, ContentValues().apply { put(MediaStore.Images.Media.IS_PENDING, 0) }, null, null)
        } catch (e: Exception) {
            resolver.delete(uri, null, null)
            throw e
        }
        return uri
    }

    /** A share sheet for the restored photo (a JPEG in cache/shared/, handed out by FileProvider). */
    fun shareIntent(context: Context, bitmap: Bitmap, name: String): Intent {
        val dir = File(context.cacheDir, "shared").apply { mkdirs() }
        val file = File(dir, "$name.jpg")
        file.outputStream().use { bitmap.compress(Bitmap.CompressFormat.JPEG, 95, it) }
        val uri = FileProvider.getUriForFile(context, "${context.packageName}.files", file)
        val send = Intent(Intent.ACTION_SEND).apply {
            type = "image/jpeg"
            putExtra(Intent.EXTRA_STREAM, uri)
            addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION)
        }
        return Intent.createChooser(send, null)
    }

    /** A content Uri the camera app writes its capture to (cache/camera/, via FileProvider). */
    fun cameraTarget(context: Context): Uri {
        val dir = File(context.cacheDir, "camera").apply { mkdirs() }
        return FileProvider.getUriForFile(context, "${context.packageName}.files", File(dir, "capture.jpg"))
    }
}
