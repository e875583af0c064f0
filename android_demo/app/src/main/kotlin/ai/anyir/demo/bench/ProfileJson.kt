package ai.anyir.demo.bench

import java.math.BigDecimal
import java.math.RoundingMode

// The benchmark mode's result file in the profile-1 schema (mobile/schema/profile-1.schema.json), the
// same file `anyir profile --target host` writes, so `anyir profile compare` reads both. Every key of
// that file is written here and nowhere else; tests/test_android_app.py runs this code on the JVM and
// validates its output against the schema.

const val PROFILE_SCHEMA = "anyir-mobile/profile/1"

/** Python's round(x, 4): the double's exact decimal value rounded half to even. */
fun round4(x: Double): Double = if (x.isFinite()) BigDecimal(x).setScale(4, RoundingMode.HALF_EVEN).toDouble() else x

/** Timed runs as mobile/profiling.py's latency_stats computes them (numpy: linear p90, population std). */
data class LatencyStats(
    val count: Int, val warmup: Int, val min: Double, val median: Double, val p90: Double,
    val max: Double, val mean: Double, val std: Double,
) {
    fun toMap(): Map<String, Any?> = linkedMapOf(
        "count" to count, "warmup" to warmup, "min" to round4(min), "median" to round4(median),
        "mean" to round4(mean), "p90" to round4(p90), "max" to round4(max), "std" to round4(std))

    companion object {
        fun of(timesMs: List<Double>, warmup: Int): LatencyStats {
            require(timesMs.isNotEmpty()) { "no timed runs" }
            val s = timesMs.sorted()
            val mean = timesMs.sum() / timesMs.size
            val variance = timesMs.sumOf { (it - mean) * (it - mean) } / timesMs.size
            return LatencyStats(timesMs.size, warmup, s.first(), percentile(s, 50.0), percentile(s, 90.0), s.last(),
                mean, kotlin.math.sqrt(variance))
        }

        /** numpy.percentile's default ("linear"): between the two nearest ranks of the sorted values. */
        fun percentile(sorted: List<Double>, q: Double): Double {
            val pos = (sorted.size - 1) * q / 100.0
            val lo = kotlin.math.floor(pos).toInt()
            val hi = kotlin.math.ceil(pos).toInt()
            return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
        }
    }
}

/** Which artifact a result describes: the manifest's id, file name and sha256, never a guess. */
data class ArtifactRef(
    val id: String, val file: String, val sha256: String, val backend: String, val precision: String,
    val bytes: Long?, val inputShape: List<Int>,
) {
    fun toMap(): Map<String, Any?> = linkedMapOf("id" to id, "file" to file, "sha256" to sha256, "backend" to backend,
        "precision" to precision, "bytes" to bytes, "input_shape" to inputShape)
}

/** The runtime that ran it: "ExecuTorch" / "LiteRT" with the version the app was built with. */
data class RuntimeRef(val name: String, val version: String?, val delegate: String?, val threads: Int?) {
    fun toMap(): Map<String, Any?> = linkedMapOf("name" to name, "version" to version, "delegate" to delegate,
        "compute_units" to null, "threads" to threads)
}

data class MemoryFigure(val peakMb: Double, val source: String) {
    fun toMap(): Map<String, Any?> = linkedMapOf("peak_mb" to round4(peakMb), "source" to source)
}

/** One whole photo through the core's banded tiled restore. */
data class PhotoFigure(val width: Int, val height: Int, val tiles: Int, val totalMs: Double, val peakMb: Double?) {
    val msPerTile: Double get() = totalMs / tiles

    fun toMap(): Map<String, Any?> = linkedMapOf("width" to width, "height" to height, "tiles" to tiles,
        "total_ms" to round4(totalMs), "ms_per_tile" to round4(msPerTile), "peak_mb" to peakMb?.let { round4(it) })
}

/** One artifact's row: "ok" with its numbers, or "failed" with the error and what was measured before it. */
data class BenchResult(
    val artifact: ArtifactRef,
    val runtime: RuntimeRef,
    val status: String,
    val error: String? = null,
    val loadMs: Double? = null,
    val firstInferenceMs: Double? = null,
    val latency: LatencyStats? = null,
    val memory: MemoryFigure? = null,
    val photo: PhotoFigure? = null,
    val note: String? = null,
) {
    init {
        require(status == "ok" || status == "failed") { "status is ok or failed" }
        require(status == "ok" || !error.isNullOrBlank()) { "a failed result says why" }
    }

    fun toMap(): Map<String, Any?> = linkedMapOf(
        "artifact" to artifact.toMap(), "runtime" to runtime.toMap(), "runner" to RUNNER, "status" to status,
        "error" to error, "is_device_timing" to true, "load_ms" to loadMs?.let { round4(it) },
        "first_inference_ms" to firstInferenceMs?.let { round4(it) }, "latency" to latency?.toMap(),
        "memory" to memory?.toMap(), "ops" to null, "ops_source" to null, "photo" to photo?.toMap(), "note" to note)

    companion object {
        const val RUNNER = "android demo"
    }
}

/** The phone, from android.os.Build (filled in by the Android layer). */
data class DeviceTarget(
    val deviceModel: String, val os: String, val cpu: String, val soc: String?, val cores: Int?, val abi: String?,
) {
    fun toMap(): Map<String, Any?> = linkedMapOf("kind" to "android", "reached_by" to "app", "device_model" to deviceModel,
        "os" to os, "cpu" to cpu, "soc" to soc, "cores" to cores, "abi" to abi)
}

data class BundleRef(val name: String, val version: String, val manifestSha256: String) {
    fun toMap(): Map<String, Any?> = linkedMapOf("name" to name, "version" to version, "manifest_sha256" to manifestSha256)
}

data class ProfileDoc(
    val created: String,
    val writer: String,
    val target: DeviceTarget,
    val bundle: BundleRef?,
    val runs: Int,
    val warmup: Int,
    val threads: Int,
    val results: List<BenchResult>,
) {
    fun toMap(): Map<String, Any?> = linkedMapOf(
        "schema" to PROFILE_SCHEMA, "created" to created, "writer" to writer, "target" to target.toMap(),
        "bundle" to bundle?.toMap(), "settings" to linkedMapOf("runs" to runs, "warmup" to warmup, "threads" to threads),
        "results" to results.map { it.toMap() })

    fun toJson(): String = JsonWriter.write(toMap()) + "\n"
}

/** A small JSON writer (the app takes no JSON library): maps keep their order, non-finite numbers become null. */
object JsonWriter {
    fun write(value: Any?): String = StringBuilder().also { write(value, it, 0) }.toString()

    private fun write(v: Any?, sb: StringBuilder, depth: Int) {
        when (v) {
            null -> sb.append("null")
            is String -> string(v, sb)
            is Boolean -> sb.append(v)
            is Int, is Long, is Short, is Byte -> sb.append(v.toString())
            is Double -> if (v.isFinite()) sb.append(v.toString()) else sb.append("null")
            is Float -> write(v.toDouble(), sb, depth)
            is Map<*, *> -> {
                if (v.isEmpty()) { sb.append("{}"); return }
                sb.append("{\n")
                var first = true
                for ((k, value) in v) {
                    if (!first) sb.append(",\n")
                    first = false
                    indent(sb, depth + 1)
                    string(k as? String ?: throw IllegalArgumentException("JSON keys are strings, not $k"), sb)
                    sb.append(": ")
                    write(value, sb, depth + 1)
                }
                sb.append('\n')
                indent(sb, depth)
                sb.append('}')
            }
            is List<*> -> {
                if (v.isEmpty()) { sb.append("[]"); return }
                if (v.all { it is Number }) {  // shapes and small number lists stay on one line
                    sb.append('[')
                    v.forEachIndexed { i, x -> if (i > 0) sb.append(", "); write(x, sb, depth) }
                    sb.append(']')
                    return
                }
                sb.append("[\n")
                v.forEachIndexed { i, x ->
                    if (i > 0) sb.append(",\n")
                    indent(sb, depth + 1)
                    write(x, sb, depth + 1)
                }
                sb.append('\n')
                indent(sb, depth)
                sb.append(']')
            }
            else -> throw IllegalArgumentException("cannot write ${v::class.simpleName} as JSON")
        }
    }

    private fun indent(sb: StringBuilder, depth: Int) {
        repeat(depth) { sb.append("  ") }
    }

    private fun string(s: String, sb: StringBuilder) {
        sb.append('"')
        for (c in s) {
            when {
                c == '"' -> sb.append("\\\"")
                c == '\\' -> sb.append("\\\\")
                c == '\n' -> sb.append("\\n")
                c == '\r' -> sb.append("\\r")
                c == '\t' -> sb.append("\\t")
                c < ' ' -> sb.append("\\u%04x".format(c.code))
                else -> sb.append(c)
            }
        }
        sb.append('"')
    }
}
