package ai.anyir.demo.check

import ai.anyir.core.AppRuntimes
import ai.anyir.core.ArgbImage
import ai.anyir.core.Layout
import ai.anyir.core.Manifest
import ai.anyir.core.ManifestArtifact
import ai.anyir.core.Runner
import ai.anyir.core.TensorType
import ai.anyir.core.TileInput
import ai.anyir.demo.bench.BenchmarkArgs
import ai.anyir.demo.bench.BenchmarkHost
import ai.anyir.demo.bench.BenchmarkSession
import ai.anyir.demo.bench.Choices
import ai.anyir.demo.bench.DeviceTarget
import ai.anyir.demo.bench.JsonWriter
import ai.anyir.demo.bench.LatencyStats
import java.io.File
import javax.imageio.ImageIO

// Test-only: the benchmark mode's plain-Kotlin part run on the JVM with a fake phone (scripted clock,
// stand-in runner), so tests/test_android_app.py can check its result file against profile-1 and its
// numbers against mobile/profiling.py. Prints JSON lines; the assertions live in the Python test.
//
//   session OUT_DIR PACKED_ROOT ET_VERSION LITERT_VERSION FAIL_LOAD_ID key=value...
//       one BenchmarkSession.run with those extras; prints {"outcome": ...} and every tile time it scripted
//   stats MS...        LatencyStats.of(times, 0) as JSON
//   args key=value...  BenchmarkArgs.parse, or {"error": ...}
//   choices MANIFEST ET_VERSION LITERT_VERSION   the app's artifact menu: one line per entry

fun main(args: Array<String>) {
    when (args.getOrNull(0)) {
        "session" -> session(args)
        "stats" -> println(JsonWriter.write(LatencyStats.of(args.drop(1).map { it.toDouble() }, 0).toMap()).replace("\n", ""))
        "args" -> println(parseArgs(extras(args.drop(1))))
        "choices" -> {
            val m = Manifest.parse(File(args[1]).readText())
            for (c in Choices.of(m, AppRuntimes(args[2], args[3]))) {
                println(JsonWriter.write(linkedMapOf("id" to c.artifact.id, "accelerator" to c.accelerator, "ok" to c.ok,
                    "why" to c.why, "label" to c.label)).replace("\n", ""))
            }
        }
        else -> {
            System.err.println("usage: BenchmarkCheck session|stats|args ...")
            kotlin.system.exitProcess(2)
        }
    }
}

private fun extras(kv: List<String>): Map<String, Any?> = kv.associate { s ->
    val k = s.substringBefore('=')
    val v = s.substringAfter('=')
    // "runs:i=20" stands for `--ei runs 20` (an Int extra); plain "runs=20" for `-e runs 20` (a String)
    if (k.endsWith(":i")) k.removeSuffix(":i") to v.toInt() else k to v
}

private fun parseArgs(extras: Map<String, Any?>): String = try {
    val a = BenchmarkArgs.parse(extras)
    JsonWriter.write(linkedMapOf("artifacts" to a.artifacts, "runs" to a.runs, "warmup" to a.warmup, "threads" to a.threads,
        "photo" to a.photo, "out" to a.out, "bundle_dir" to a.bundleDir, "accelerator" to a.accelerator)).replace("\n", "")
} catch (e: Exception) {
    JsonWriter.write(linkedMapOf("error" to (e.message ?: e.toString()))).replace("\n", "")
}

/** A phone with a scripted clock: run k of the whole session takes 40 + (k * 37) % 23 ms. */
private class FakeHost(et: String, litert: String, private val failLoad: String) : BenchmarkHost {
    override val appRuntimes = AppRuntimes(et.takeIf { it != "-" }, litert.takeIf { it != "-" })
    override val memorySource = "fake: 100 MB + 1 MB per sample"
    var now = 0L
    var runs = 0
    var samples = 0
    val tileMs = LinkedHashMap<String, MutableList<Double>>()
    var current = ""

    override fun nanoTime(): Long = now

    override fun load(artifact: ManifestArtifact, file: File, args: BenchmarkArgs): Runner {
        now += 7_250_000  // 7.25 ms
        if (artifact.id == failLoad) throw IllegalStateException("fake runtime refused ${file.name}")
        current = artifact.id
        return FakeRunner(this, artifact)
    }

    override fun memoryMb(): Double = 100.0 + samples++

    override fun decodePhoto(file: File): ArgbImage {
        val img = ImageIO.read(file) ?: throw IllegalArgumentException("not an image: $file")
        return ArgbImage(img.width, img.height, img.getRGB(0, 0, img.width, img.height, null, 0, img.width))
    }

    override fun log(line: String) = System.err.println("bench: $line")

    fun tick(): Double {
        val ms = 40.0 + (runs * 37) % 23 + 0.125 * (runs % 3)
        runs++
        now += (ms * 1e6).toLong()
        tileMs.getOrPut(current) { ArrayList() }.add(ms)
        return ms
    }
}

/** Returns the tile unchanged (an identity model) in the artifact's layout and tile size. */
private class FakeRunner(private val host: FakeHost, a: ManifestArtifact) : Runner {
    override val tileH = a.input.height
    override val tileW = a.input.width
    override val layout = Layout.of(a.input.layout)
    override val inputType: TensorType = a.inputType
    override val label = "fake"

    override fun run(input: TileInput): FloatArray {
        host.tick()
        return when (input) {
            is TileInput.Floats -> input.values.copyOf()
            is TileInput.Int8s -> {
                val t = inputType as TensorType.Int8
                FloatArray(input.values.size) { (input.values[it] - t.zeroPoint) * t.scale }
            }
        }
    }

    override fun close() {}
}

private fun session(a: Array<String>) {
    val host = FakeHost(a[3], a[4], a[5])
    val target = DeviceTarget("JVM stand-in", "Linux (JVM check)", "test CPU", null, Runtime.getRuntime().availableProcessors(), "x86_64")
    val out = BenchmarkSession.run(host, extras(a.drop(6)), File(a[1]), { File(a[2]) }, target,
        "2026-01-01T00:00:00Z", "AnyIR Android demo (JVM check)")
    println(JsonWriter.write(linkedMapOf("outcome" to linkedMapOf("ok" to out.ok, "file" to out.file.path, "log" to out.logLine))).replace("\n", ""))
    println(JsonWriter.write(linkedMapOf("tile_ms" to host.tileMs)).replace("\n", ""))
}
