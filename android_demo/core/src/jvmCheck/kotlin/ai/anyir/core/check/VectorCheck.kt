package ai.anyir.core.check

import ai.anyir.core.AppRuntimes
import ai.anyir.core.ArgbImage
import ai.anyir.core.ExifOrientation
import ai.anyir.core.Json
import ai.anyir.core.Layout
import ai.anyir.core.Manifest
import ai.anyir.core.ManifestError
import ai.anyir.core.Pixels
import ai.anyir.core.ReplayRunner
import ai.anyir.core.RestoreCancelled
import ai.anyir.core.Runner
import ai.anyir.core.RuntimeCheck
import ai.anyir.core.TensorType
import ai.anyir.core.TileInput
import ai.anyir.core.TilePlan
import ai.anyir.core.TiledRestore
import java.io.File
import java.lang.management.ManagementFactory
import java.lang.management.MemoryType
import java.nio.ByteBuffer
import java.nio.ByteOrder
import javax.imageio.ImageIO
import kotlin.system.exitProcess

// Test-only: runs the core against a bundle's test vectors (mobile/vectors.py, format 2) and prints
// what it computed as JSON lines, one per check; tests/test_android_core.py holds the assertions, so a
// failure is reported with Python's numbers beside Kotlin's. Exit 2 with a message when a vector file
// is missing or unreadable.
//
//   vectors BUNDLE                 every vector check
//   manifest FILE...               parse each manifest: {"file", "ok": true, ...} or {"file", "ok": false, "error"}
//   json FILE...                   parse each file with the core's JSON reader: {"ok", "value"} or {"ok", "error"}
//   manifest-view FILE             what the core reads from a manifest (name, input, artifacts, order)
//   runtime FILE EXECUTORCH LITERT the runtime check of every artifact against those app versions
//   restore-png IN OUT TH TW OVERLAP    restore a PNG with the alternating stand-in model; raw RGB bytes to OUT
//   restore WIDTH HEIGHT TILE OVERLAP   a synthetic banded restore, with the JVM's peak heap
//   quantize IN.f32 SCALE ZP OUT   Pixels.quantizeInt8 of raw float32-le values, then dequantized: OUT.i8, OUT.f32
//   whole-float WIDTH HEIGHT       the control: does a whole-photo float accumulator + weight sum fit this heap?

fun main(args: Array<String>) {
    try {
        when (args.getOrNull(0)) {
            "vectors" -> Vectors(File(args[1])).runAll()
            "manifest" -> args.drop(1).forEach { manifestCheck(File(it)) }
            "manifest-view" -> manifestView(File(args[1]))
            "json" -> args.drop(1).forEach { jsonCheck(File(it)) }
            "runtime" -> runtimeCheck(File(args[1]), args[2], args[3])
            "restore-png" -> restorePng(File(args[1]), File(args[2]), args[3].toInt(), args[4].toInt(), args[5].toInt())
            "quantize" -> quantizeFile(File(args[1]), args[2].toFloat(), args[3].toInt(), File(args[4]))
            "whole-float" -> wholeFloat(args[1].toInt(), args[2].toInt())
            "restore" -> restoreSynthetic(args[1].toInt(), args[2].toInt(), args[3].toInt(), args[4].toInt())
            else -> fail("usage: VectorCheck vectors BUNDLE | manifest FILE... | runtime FILE ET LITERT | restore W H TILE OVERLAP")
        }
    } catch (e: CheckFailure) {
        fail(e.message ?: "failed")
    }
}

class CheckFailure(message: String) : Exception(message)

fun fail(message: String): Nothing {
    System.err.println("VectorCheck: $message")
    exitProcess(2)
}

fun emit(vararg pairs: Pair<String, Any?>) = println(toJson(mapOf(*pairs)))

fun toJson(v: Any?): String = when (v) {
    null -> "null"
    is String -> buildString {  // ASCII only: control and non-ASCII characters as \uXXXX
        append('"')
        for (ch in v) when {
            ch == '"' -> append("\\\"")
            ch == '\\' -> append("\\\\")
            ch < ' ' || ch > '~' -> append("\\u%04x".format(ch.code))
            else -> append(ch)
        }
        append('"')
    }
    is Boolean, is Int, is Long -> v.toString()
    is Float -> if (v.isFinite()) v.toDouble().toString() else "null"
    is Double -> if (v.isFinite()) v.toString() else "null"
    is IntArray -> v.joinToString(",", "[", "]")
    is Map<*, *> -> v.entries.joinToString(",", "{", "}") { toJson(it.key.toString()) + ":" + toJson(it.value) }
    is Iterable<*> -> v.joinToString(",", "[", "]") { toJson(it) }
    else -> toJson(v.toString())
}

/** Max |a - b| and how many values differ at all (bit-level equality is the real target). */
fun compare(a: FloatArray, b: FloatArray): Map<String, Any?> {
    if (a.size != b.size) return mapOf("n" to a.size, "expected_n" to b.size, "max_abs" to null, "unequal" to -1)
    var maxAbs = 0.0
    var unequal = 0
    for (i in a.indices) {
        if (a[i] != b[i]) unequal++
        maxAbs = maxOf(maxAbs, Math.abs(a[i].toDouble() - b[i].toDouble()))
    }
    return mapOf("n" to a.size, "max_abs" to maxAbs, "unequal" to unequal)
}

class Vectors(private val bundle: File) {
    private val folder = File(bundle, "testvectors")
    private val index: Map<*, *> = Json.parse(file("vectors.json").readText()) as Map<*, *>
    private val tile = (index["tile"] as List<*>).map { (it as Long).toInt() }
    private val overlap = (index["overlap"] as Long).toInt()

    private fun file(name: String): File = File(folder, name).also { if (!it.isFile) throw CheckFailure("missing vector file $it") }

    private fun bytes(entry: Any?): ByteArray = file((entry as Map<*, *>)["file"] as String).readBytes()

    private fun floats(entry: Any?): FloatArray {
        val b = ByteBuffer.wrap(bytes(entry)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        return FloatArray(b.remaining()).also { b.get(it) }
    }

    private fun shape(entry: Any?): List<Int> = ((entry as Map<*, *>)["shape"] as List<*>).map { (it as Long).toInt() }

    private fun png(name: String): ArgbImage {
        val im = ImageIO.read(file(name)) ?: throw CheckFailure("$name: not a readable image")
        return ArgbImage(im.width, im.height, im.getRGB(0, 0, im.width, im.height, null, 0, im.width))
    }

    fun runAll() {
        val format = index["format"]
        if (format != "anyir-mobile/testvectors/2") throw CheckFailure("vectors format \"$format\" is not anyir-mobile/testvectors/2")
        plans(); blend(); photo(); padding(); int8(); exif(); replay(); cancel(); manifest()
    }

    private fun plans() {
        for (p in index["plans"] as List<*>) {
            val m = p as Map<*, *>
            val img = (m["image"] as List<*>).map { (it as Long).toInt() }
            val t = (m["tile"] as List<*>).map { (it as Long).toInt() }
            val plan = TilePlan(img[0], img[1], t[0], t[1], (m["overlap"] as Long).toInt())
            emit("check" to "plan", "image" to img, "tile" to t, "overlap" to plan.overlap,
                "padded" to listOf(plan.paddedH, plan.paddedW), "ys" to plan.ys, "xs" to plan.xs, "tiles" to plan.tiles)
        }
    }

    private fun blend() {
        val want = floats(index["blend"])
        val got = TilePlan(tile[0], tile[1], tile[0], tile[1], overlap).weights()
        emit("check" to "blend", *compare(got, want).toList().toTypedArray())
    }

    private fun photoImage(): ArgbImage = png((index["photo"] as Map<*, *>)["png"] as String)

    private fun photo() {
        val ph = index["photo"] as Map<*, *>
        val img = photoImage()
        emit("check" to "photo_input", "size" to listOf(img.height, img.width),
            *compare(Pixels.toFloatRgb(img), floats(ph["input"])).toList().toTypedArray())
        val plan = TilePlan(img.height, img.width, tile[0], tile[1], overlap)
        val all = floats(ph["tile_inputs"])
        val n = 3 * tile[0] * tile[1]
        var k = 0
        for (y in plan.ys) for (x in plan.xs) {
            val want = if ((k + 1) * n <= all.size) all.copyOfRange(k * n, (k + 1) * n) else FloatArray(0)
            val nchw = Pixels.tile(img, y, x, tile[0], tile[1], Layout.NCHW)
            val nhwc = Pixels.tile(img, y, x, tile[0], tile[1], Layout.NHWC)
            emit("check" to "tile_input", "index" to k, "origin" to listOf(y, x), "layout" to "NCHW", *compare(nchw, want).toList().toTypedArray())
            emit("check" to "tile_input", "index" to k, "origin" to listOf(y, x), "layout" to "NHWC",
                *compare(nhwc, nchwToNhwc(want, tile[0], tile[1])).toList().toTypedArray())
            k++
        }
        emit("check" to "tile_count", "kotlin" to k, "vectors" to all.size / n)
        // format 1's single tile_input is the first of them
        emit("check" to "tile_input_first", *compare(Pixels.tile(img, 0, 0, tile[0], tile[1], Layout.NCHW),
            floats(index["tile_input"])).toList().toTypedArray())
    }

    private fun padding() {
        for (p in index["padding"] as List<*>) {
            val m = p as Map<*, *>
            val s = shape(m["image"])
            val ps = shape(m["padded"])
            val got = Pixels.padReflect(floats(m["image"]), s[0], s[1], s[2], ps[0], ps[1])
            emit("check" to "padding", "image" to s, "padded" to ps, *compare(got, floats(m["padded"])).toList().toTypedArray())
        }
    }

    private fun int8() {
        val q = index["int8_io"] as Map<*, *>
        val scale = (q["scale"] as Number).toFloat()
        val zp = (q["zero_point"] as Long).toInt()
        val input = floats(q["input"])
        val want = bytes(q["quantized"])
        val got = Pixels.quantizeInt8(input, scale, zp)
        var unequal = 0
        var maxDiff = 0
        for (i in got.indices) {
            if (i >= want.size || got[i] != want[i]) unequal++
            if (i < want.size) maxDiff = maxOf(maxDiff, Math.abs(got[i] - want[i]))
        }
        emit("check" to "int8_quantize", "n" to got.size, "expected_n" to want.size, "unequal" to unequal, "max_abs" to maxDiff)
        emit("check" to "int8_dequantize", *compare(Pixels.dequantizeInt8(want, scale, zp), floats(q["dequantized"])).toList().toTypedArray())
        // the int8 path end to end: an int8-input runner gets exactly these bytes from the tiled restore
        val img = photoImage()
        val seen = ArrayList<ByteArray>()
        val runner = object : Runner {
            override val tileH = tile[0]
            override val tileW = tile[1]
            override val layout = Layout.NCHW
            override val inputType: TensorType = TensorType.Int8(scale, zp)
            override val label = "int8 recorder"
            override fun run(input: TileInput): FloatArray {
                val b = (input as TileInput.Int8s).values
                seen.add(b.copyOf())
                return Pixels.dequantizeInt8(b, scale, zp)
            }
            override fun close() {}
        }
        TiledRestore(runner, overlap).restore(img)
        emit("check" to "int8_tiled_first", "equal" to seen.first().contentEquals(want), "tiles" to seen.size)
    }

    private fun exif() {
        val e = index["exif"] as Map<*, *>
        val src = bytes(e["source"])
        val s = shape(e["source"])
        val img = ArgbImage(s[1], s[0], IntArray(s[0] * s[1]) { k ->
            (0xFF shl 24) or ((src[3 * k].toInt() and 0xFF) shl 16) or ((src[3 * k + 1].toInt() and 0xFF) shl 8) or (src[3 * k + 2].toInt() and 0xFF)
        })
        for ((o, entry) in e["orientations"] as Map<*, *>) {
            val want = bytes(entry)
            val ws = shape(entry)
            val got = ExifOrientation.transpose(img, (o as String).toInt())
            val rgb = ByteArray(got.pixels.size * 3)
            for (k in got.pixels.indices) {
                rgb[3 * k] = (got.pixels[k] ushr 16).toByte(); rgb[3 * k + 1] = (got.pixels[k] ushr 8).toByte(); rgb[3 * k + 2] = got.pixels[k].toByte()
            }
            emit("check" to "exif", "orientation" to o.toInt(), "size" to listOf(got.height, got.width),
                "expected_size" to ws.take(2), "equal" to (ws.take(2) == listOf(got.height, got.width) && rgb.contentEquals(want)))
        }
    }

    private fun replay() {
        val ph = index["photo"] as Map<*, *>
        val inputs = floats(ph["tile_inputs"])
        for ((id, entry) in index["outputs"] as Map<*, *>) {
            val m = entry as Map<*, *>
            val outputs = floats(m["tile_outputs"])
            val want = png(m["photo_restored"] as String)
            // NCHW and NHWC runners, and an in-place restore (output rows written over the source pixels)
            for ((layout, inPlace) in listOf(Layout.NCHW to false, Layout.NHWC to false, Layout.NCHW to true)) {
                val img = photoImage()
                // give the source a varying alpha: the restore must hand it back untouched
                for (k in img.pixels.indices) img.pixels[k] = (img.pixels[k] and 0xFFFFFF) or (((k * 7) and 0xFF) shl 24)
                val replay = ReplayRunner(tile[0], tile[1], outputs, inputs)
                val runner = if (layout == Layout.NCHW) replay else NhwcView(replay)
                var progressCalls = 0
                var lastDone = 0
                var total = 0
                val out = TiledRestore(runner, overlap).restore(img, dst = if (inPlace) img.pixels else IntArray(img.pixels.size),
                    progress = { d, t -> progressCalls++; lastDone = d; total = t })
                var maxDiff = 0
                var differing = 0
                var alphaKept = true
                for (k in out.pixels.indices) {
                    val a = out.pixels[k]
                    val b = want.pixels[k]
                    var d = 0
                    for (sh in intArrayOf(16, 8, 0)) d = maxOf(d, Math.abs(((a ushr sh) and 0xFF) - ((b ushr sh) and 0xFF)))
                    if (d > 0) differing++
                    maxDiff = maxOf(maxDiff, d)
                    if ((a ushr 24) != ((k * 7) and 0xFF)) alphaKept = false
                }
                emit("check" to "replay", "artifact" to id, "layout" to layout.name + (if (inPlace) " in place" else ""), "size" to listOf(out.height, out.width),
                    "expected_size" to listOf(want.height, want.width), "max_diff" to maxDiff, "differing" to differing,
                    "alpha_kept" to alphaKept, "runner_calls" to replay.calls, "recorded" to replay.tiles,
                    "progress_calls" to progressCalls, "progress_last" to listOf(lastDone, total))
            }
        }
    }

    /** Cooperative cancel: asked before each tile; a true stops the restore with RestoreCancelled. */
    private fun cancel() {
        val ph = index["photo"] as Map<*, *>
        val (id, entry) = (index["outputs"] as Map<*, *>).entries.first()
        val replay = ReplayRunner(tile[0], tile[1], floats((entry as Map<*, *>)["tile_outputs"]), floats(ph["tile_inputs"]))
        var progressed = 0
        val result = try {
            TiledRestore(replay, overlap).restore(photoImage(), progress = { d, _ -> progressed = d }, isCancelled = { replay.calls >= 2 })
            null
        } catch (e: RestoreCancelled) {
            e
        }
        emit("check" to "cancel", "artifact" to id, "cancelled" to (result != null), "tiles_done" to result?.tilesDone,
            "tiles" to result?.tiles, "runner_calls" to replay.calls, "progress_last" to progressed)
    }

    private fun manifest() = manifestView(File(bundle, "manifest.json"))
}

/** What the core reads from a manifest, for comparison with Python's json.load of it. */
fun manifestView(f: File) {
    val m = Manifest.parse(f.readText())
    emit("check" to "manifest", "name" to m.name, "version" to m.version,
        "tile" to listOf(m.input.tileH, m.input.tileW), "overlap" to m.input.overlap,
        "value_range" to listOf(m.input.valueLow, m.input.valueHigh), "color_order" to m.input.colorOrder,
        "default" to m.defaultArtifact, "android" to m.artifactsFor("android").map { it.id },
        "ios" to m.artifactsFor("ios").map { it.id },
        "artifacts" to m.artifacts.map {
            mapOf("id" to it.id, "backend" to it.backend, "precision" to it.precision, "paths" to it.paths,
                "bytes" to it.bytes, "sha256" to it.sha256, "layout" to it.input.layout, "shape" to it.input.shape,
                "dtype" to it.input.dtype, "input_type" to it.inputType.toString(), "tools" to it.tools,
                "status" to it.status, "passed" to it.numericsPassed, "host_ms_median" to it.hostMsMedian,
                "input_quantization" to it.inputQuantization?.let { q -> listOf(q.dtype, q.scale, q.zeroPoint) })
        })
}

fun nchwToNhwc(v: FloatArray, h: Int, w: Int): FloatArray {
    if (v.size != 3 * h * w) return FloatArray(0)
    return FloatArray(v.size) { k -> v[(k % 3) * h * w + k / 3] }
}

/** Presents an NCHW runner as an NHWC one, so the blend's NHWC indexing is checked by the same replay. */
class NhwcView(private val inner: Runner) : Runner by inner {
    override val layout = Layout.NHWC
    override fun run(input: TileInput): FloatArray {
        val v = (input as TileInput.Floats).values
        val plane = tileH * tileW
        val nchw = FloatArray(v.size) { k -> v[(k % plane) * 3 + k / plane] }
        return nchwToNhwc(inner.run(TileInput.Floats(nchw)), tileH, tileW)
    }
}

fun manifestCheck(f: File) {
    try {
        val m = Manifest.parse(f.readText())
        emit("file" to f.name, "ok" to true, "name" to m.name, "artifacts" to m.artifacts.map { it.id })
    } catch (e: ManifestError) {
        emit("file" to f.name, "ok" to false, "error" to e.message)
    }
}

fun jsonCheck(f: File) {
    try {
        emit("file" to f.name, "ok" to true, "value" to Json.parse(f.readText()))
    } catch (e: ai.anyir.core.JsonError) {
        emit("file" to f.name, "ok" to false, "error" to e.message)
    }
}

fun runtimeCheck(f: File, executorch: String, litert: String) {
    val m = Manifest.parse(f.readText())
    val app = AppRuntimes(executorch.ifEmpty { null }, litert.ifEmpty { null })
    for (a in m.artifacts) {
        val v = RuntimeCheck.check(a, app)
        emit("artifact" to a.id, "ok" to v.ok, "message" to v.message)
    }
}

/** A pattern that differs pixel to pixel, alpha included, and can be recomputed after an in-place restore. */
fun synthetic(x: Int, y: Int): Int = ((x * 37 + y * 11) and 0xFF shl 24) or ((x * 7 + y * 3) and 0xFF shl 16) or
    ((x xor y) and 0xFF shl 8) or ((x * y + 5) and 0xFF)

fun restoreSynthetic(width: Int, height: Int, tileSize: Int, overlap: Int) {
    val mem = ManagementFactory.getMemoryMXBean()
    val pools = ManagementFactory.getMemoryPoolMXBeans().filter { it.type == MemoryType.HEAP }
    System.gc()
    pools.forEach { it.resetPeakUsage() }
    val t0 = System.nanoTime()
    val img = ArgbImage(width, height)
    for (y in 0 until height) for (x in 0 until width) img.pixels[y * width + x] = synthetic(x, y)
    // a model stand-in that inverts the tile: restored = 1 - input, so every 8-bit value must come back as 255 - v
    val invert = object : Runner {
        override val tileH = tileSize
        override val tileW = tileSize
        override val layout = Layout.NCHW
        override val inputType: TensorType = TensorType.Float32
        override val label = "invert"
        override fun run(input: TileInput): FloatArray {
            val v = (input as TileInput.Floats).values
            return FloatArray(v.size) { 1f - v[it] }
        }
        override fun close() {}
    }
    var tiles = 0
    // in place: the output rows overwrite the photo's own pixel array (the app's Bitmap buffer)
    TiledRestore(invert, overlap).restore(img, dst = img.pixels, progress = { d, _ -> tiles = d })
    val seconds = (System.nanoTime() - t0) / 1e9
    val peakSum = pools.sumOf { it.peakUsage.used }
    var wrong = 0
    for (y in 0 until height) for (x in 0 until width) {
        val s = synthetic(x, y)
        val want = (s and -0x1000000) or (0xFFFFFF - (s and 0xFFFFFF))
        if (img.pixels[y * width + x] != want) wrong++
    }
    emit("check" to "restore", "size" to listOf(height, width), "tile" to tileSize, "overlap" to overlap, "tiles" to tiles,
        "seconds" to seconds, "wrong_pixels" to wrong, "peak_heap_bytes" to peakSum,
        "peak_by_pool" to pools.associate { it.name to it.peakUsage.used },
        "max_heap_bytes" to mem.heapMemoryUsage.max, "gc" to ManagementFactory.getGarbageCollectorMXBeans().map { it.name })
}

/**
 * A stand-in model whose tiles disagree, so the blend decides every overlapped pixel: even calls
 * return the tile, odd calls 0.5 * (1 - tile) (the test computes the same in numpy float32).
 */
class Alternating(override val tileH: Int, override val tileW: Int) : Runner {
    override val layout = Layout.NCHW
    override val inputType: TensorType = TensorType.Float32
    override val label = "alternating"
    var calls = 0
    override fun run(input: TileInput): FloatArray {
        val v = (input as TileInput.Floats).values
        val odd = calls++ % 2 == 1
        return FloatArray(v.size) { if (odd) 0.5f * (1f - v[it]) else v[it] }
    }
    override fun close() {}
}

fun restorePng(input: File, output: File, tileH: Int, tileW: Int, overlap: Int) {
    val im = ImageIO.read(input) ?: throw CheckFailure("$input: not a readable image")
    val img = ArgbImage(im.width, im.height, im.getRGB(0, 0, im.width, im.height, null, 0, im.width))
    val runner = Alternating(tileH, tileW)
    val out = TiledRestore(runner, overlap).restore(img)
    val rgb = ByteArray(out.pixels.size * 3)
    for (k in out.pixels.indices) {
        rgb[3 * k] = (out.pixels[k] ushr 16).toByte(); rgb[3 * k + 1] = (out.pixels[k] ushr 8).toByte(); rgb[3 * k + 2] = out.pixels[k].toByte()
    }
    output.writeBytes(rgb)
    emit("check" to "restore-png", "size" to listOf(out.height, out.width), "tiles" to runner.calls)
}

/** The negative control of the heap bound: the photo's pixels plus Python's whole-photo accumulator and weight sum. */
fun wholeFloat(width: Int, height: Int) {
    val fits = try {
        val pixels = IntArray(width * height)
        val acc = FloatArray(3 * width * height)
        val wsum = FloatArray(width * height)
        pixels[0] = 1; acc[0] = 1f; wsum[0] = 1f
        pixels[0] + acc.size + wsum.size > 0
    } catch (e: OutOfMemoryError) {
        false
    }
    emit("check" to "whole-float", "size" to listOf(height, width), "fits" to fits)
}

fun quantizeFile(input: File, scale: Float, zeroPoint: Int, out: File) {
    val b = ByteBuffer.wrap(input.readBytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
    val values = FloatArray(b.remaining()).also { b.get(it) }
    val q = Pixels.quantizeInt8(values, scale, zeroPoint)
    File(out.path + ".i8").writeBytes(q)
    val back = Pixels.dequantizeInt8(q, scale, zeroPoint)
    val buf = ByteBuffer.allocate(4 * back.size).order(ByteOrder.LITTLE_ENDIAN)
    back.forEach { buf.putFloat(it) }
    File(out.path + ".f32").writeBytes(buf.array())
    emit("check" to "quantize", "n" to values.size)
}
