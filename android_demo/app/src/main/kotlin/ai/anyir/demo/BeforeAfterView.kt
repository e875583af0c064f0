package ai.anyir.demo

import android.annotation.SuppressLint
import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import android.graphics.RectF
import android.view.MotionEvent
import android.view.View

/**
 * The photo before (left of the divider) and after (right of it) restoration, fitted to the view; drag
 * anywhere to move the divider. Both bitmaps have the same size (the restore keeps it).
 */
class BeforeAfterView(context: Context) : View(context) {
    private var before: Bitmap? = null
    private var after: Bitmap? = null
    private var split = 0.5f  // divider position as a share of the photo's width
    private val fit = Matrix()
    private val photoRect = RectF()
    private val paint = Paint(Paint.FILTER_BITMAP_FLAG)
    private val line = Paint(Paint.ANTI_ALIAS_FLAG).apply { color = Color.WHITE; strokeWidth = 4f }
    private val text = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.WHITE; textSize = 36f; setShadowLayer(4f, 0f, 0f, Color.BLACK)
    }

    fun show(before: Bitmap?, after: Bitmap?) {
        this.before = before
        this.after = after
        requestLayout()
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val b = before ?: return
        val scale = minOf(width.toFloat() / b.width, height.toFloat() / b.height)
        val dx = (width - b.width * scale) / 2f
        val dy = (height - b.height * scale) / 2f
        fit.setScale(scale, scale)
        fit.postTranslate(dx, dy)
        photoRect.set(dx, dy, dx + b.width * scale, dy + b.height * scale)
        val a = after
        if (a == null) {
            canvas.drawBitmap(b, fit, paint)
            return
        }
        val x = photoRect.left + split * photoRect.width()
        canvas.save()
        canvas.clipRect(photoRect.left, photoRect.top, x, photoRect.bottom)
        canvas.drawBitmap(b, fit, paint)
        canvas.restore()
        canvas.save()
        canvas.clipRect(x, photoRect.top, photoRect.right, photoRect.bottom)
        canvas.drawBitmap(a, fit, paint)
        canvas.restore()
        canvas.drawLine(x, photoRect.top, x, photoRect.bottom, line)
        canvas.drawText("before", photoRect.left + 16f, photoRect.top + 48f, text)
        canvas.drawText("after", photoRect.right - text.measureText("after") - 16f, photoRect.top + 48f, text)
    }

    @SuppressLint("ClickableViewAccessibility")  // a drag, not a click: there is nothing to perform
    override fun onTouchEvent(event: MotionEvent): Boolean {
        if (after == null || photoRect.width() <= 0f) return false
        when (event.actionMasked) {
            MotionEvent.ACTION_DOWN, MotionEvent.ACTION_MOVE -> {
                parent?.requestDisallowInterceptTouchEvent(true)
                split = ((event.x - photoRect.left) / photoRect.width()).coerceIn(0f, 1f)
                invalidate()
                return true
            }
        }
        return super.onTouchEvent(event)
    }
}
