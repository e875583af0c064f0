package ai.anyir.demo.bench

import ai.anyir.core.AnyIRError
import ai.anyir.core.AppRuntimes
import ai.anyir.core.ArgbImage
import ai.anyir.core.Manifest
import ai.anyir.core.ManifestArtifact
import ai.anyir.core.Pixels
import ai.anyir.core.Runner
import ai.anyir.core.RuntimeCheck
import ai.anyir.core.TensorType
import ai.anyir.core.TileInput
import ai.anyir.core.TiledRestore
import java.io.File

/** What the benchmark needs from the phone; BenchmarkActivity implements it, the JVM check fakes it. */
interface BenchmarkHost {
    val appRuntimes: AppRuntimes

    /** How [memoryMb] is measured, written as the result's memory.source. */
    val memorySource: String

    fun nanoTime(): Long

    /** Loads the artifact's file into its runtime (timed by the caller as load_ms). */
    fun load(artifact: ManifestArtifact, file: File, args: BenchmarkArgs): Runner

    /** The process's memory now in MB (PSS on the phone), or null where it cannot be read. */
    fun memoryMb(): Double?

    fun decodePhoto(file: File): ArgbImage

    fun log(line: String)
}

/**
 * The benchmark mode without Android: for each artifact, check it (runtime version, sha256), load it,
 * run it warmup + runs times on one tile, then restore one whole photo through the core's banded tiled
 * path. Every failure is kept in that artifact's result (status "failed" and the error), never dropped.
 */
class Benchmark(
    private val host: BenchmarkHost,
    private val manifest: Manifest,
    private val root: File,
    private val args: BenchmarkArgs,
) {
    /** The photo for the whole-photo figure and what it is, per [BenchmarkArgs.photo]; null when skipped. */
    fun choosePhoto(): Pair<ArgbImage, String>? {
        if (args.skipPhoto) return null
        args.photo?.let { p ->
            val f = File(p)
            if (!f.isFile) throw AnyIRError("photo: $p is not a file on the device (push it, or leave the extra out)")
            return host.decodePhoto(f) to "photo ${f.name}"
        }
        val vectors = File(root, TEST_PHOTO)
        if (vectors.isFile) return host.decodePhoto(vectors) to "the bundle's test-vector photo ($TEST_PHOTO)"
        return syntheticPhoto(SYNTH_W, SYNTH_H) to "a synthetic ${SYNTH_W}x$SYNTH_H (12 MP) image"
    }

    fun run(): List<BenchResult> {
        val selected = args.select(manifest)
        val photo = choosePhoto()
        photo?.let { host.log("whole-photo figure: ${it.second}, ${it.first.width}x${it.first.height}") }
        return selected.map { a ->
            host.log("${a.id}: ${args.warmup} warm-up + ${args.runs} timed runs, ${args.threads} threads")
            one(a, photo).also { r -> host.log("${a.id}: ${r.status}" + (r.error?.let { ": $it" } ?: "") +
                (r.latency?.let { ", median ${"%.1f".format(it.median)} ms" } ?: "")) }
        }
    }

    private fun one(a: ManifestArtifact, photo: Pair<ArgbImage, String>?): BenchResult {
        val file = a.paths["android"]?.substringAfterLast('/') ?: a.id
        val ref = ArtifactRef(a.id, file, a.sha256, a.backend, a.precision, a.bytes, a.input.shape)
        val runtime = runtimeRef(a, args, host.appRuntimes)
        var stage = "runtime check"
        var loadMs: Double? = null
        var firstMs: Double? = null
        var latency: LatencyStats? = null
        var peak: Double? = null
        val notes = ArrayList<String>()
        fun sample() {
            host.memoryMb()?.let { m -> peak = maxOf(peak ?: m, m) }
        }
        fun memory() = peak?.let { MemoryFigure(it, host.memorySource) }
        try {
            val verdict = RuntimeCheck.check(a, host.appRuntimes)
            if (!verdict.ok) throw AnyIRError(verdict.message)
            stage = "checksum"
            val f = BundleFiles.artifactFile(root, a)
            BundleFiles.mismatch(f, a)?.let { throw AnyIRError(it) }
            stage = "load"
            val t0 = host.nanoTime()
            val runner = host.load(a, f, args)
            loadMs = (host.nanoTime() - t0) / 1e6
            runner.use { r ->
                sample()
                stage = "inference"
                val input = tileInput(r, photo?.first)
                val timed = TimedRunner(r, host::nanoTime)
                repeat(args.warmup) { timed.run(input) }
                if (args.warmup == 0) timed.run(input)  // the first inference is always one untimed run
                firstMs = timed.tileMs.first()
                sample()
                timed.reset()
                repeat(args.runs) {
                    timed.run(input)
                    sample()
                }
                latency = LatencyStats.of(timed.tileMs, args.warmup)
                if (args.warmup == 0) notes += "warmup 0: one untimed first inference ran before the timed runs"
                var photoFigure: PhotoFigure? = null
                if (photo != null) {
                    stage = "whole photo"
                    val img = photo.first
                    val restore = TiledRestore(r, manifest.input.overlap)
                    val tiles = restore.plan(img.width, img.height).tiles
                    val p0 = host.nanoTime()
                    restore.restore(img)
                    val total = (host.nanoTime() - p0) / 1e6
                    sample()
                    photoFigure = PhotoFigure(img.width, img.height, tiles, total, peak)
                    notes += "whole photo: ${photo.second}, ${manifest.input.overlap} px overlap, pre/post-processing included"
                }
                ProcStatus.peakRssMb()?.let { notes += "process peak RSS (VmHWM) so far ${"%.1f".format(it)} MB" }
                return BenchResult(ref, runtime, "ok", loadMs = loadMs, firstInferenceMs = firstMs, latency = latency,
                    memory = memory(), photo = photoFigure, note = notes.joinToString("; ").ifEmpty { null })
            }
        } catch (e: Exception) {
            return failed(ref, runtime, stage, e, loadMs, firstMs, latency, memory(), notes)
        } catch (e: OutOfMemoryError) {
            return failed(ref, runtime, stage, e, loadMs, firstMs, latency, memory(), notes)
        }
    }

    private fun failed(ref: ArtifactRef, runtime: RuntimeRef, stage: String, e: Throwable, loadMs: Double?, firstMs: Double?,
                       latency: LatencyStats?, memory: MemoryFigure?, notes: List<String>): BenchResult {
        val why = if (e is AnyIRError) e.message ?: "failed" else "${e.javaClass.simpleName}: ${e.message ?: "no message"}"
        return BenchResult(ref, runtime, "failed", error = "$stage: $why", loadMs = loadMs, firstInferenceMs = firstMs,
            latency = latency, memory = memory, note = notes.joinToString("; ").ifEmpty { null })
    }

    /** The first tile of the photo (or of a synthetic one) as the runner takes it, int8 where it wants int8. */
    private fun tileInput(r: Runner, photo: ArgbImage?): TileInput {
        val img = photo ?: syntheticPhoto(r.tileW, r.tileH)
        val floats = Pixels.tile(img, 0, 0, r.tileH, r.tileW, r.layout)
        val t = r.inputType
        return if (t is TensorType.Int8) TileInput.Int8s(Pixels.quantizeInt8(floats, t.scale, t.zeroPoint)) else TileInput.Floats(floats)
    }

    fun profile(created: String, writer: String, target: DeviceTarget, manifestSha256: String?, results: List<BenchResult>) =
        ProfileDoc(created, writer, target, manifestSha256?.let { BundleRef(manifest.name, manifest.version, it) },
            args.runs, args.warmup, args.threads, results)

    companion object {
        const val TEST_PHOTO = "testvectors/photo.png"
        const val SYNTH_W = 4000
        const val SYNTH_H = 3000

        fun runtimeRef(a: ManifestArtifact, args: BenchmarkArgs, app: AppRuntimes): RuntimeRef = when (a.backend) {
            "executorch" -> RuntimeRef("ExecuTorch (executorch-android)", app.executorch, "XNNPACK", args.threads)
            "tflite" -> RuntimeRef("LiteRT CompiledModel (com.google.ai.edge.litert)", app.litert,
                if (args.accelerator == "gpu") "GPU" else "CPU (XNNPACK)", if (args.accelerator == "gpu") null else args.threads)
            else -> RuntimeRef(a.backend, null, null, null)
        }

        /**
         * A deterministic photo-like test card: smooth gradients with fine texture, so no tile is flat and
         * no two runs differ. Only the time of the whole-photo figure matters here, not the picture.
         */
        fun syntheticPhoto(width: Int, height: Int): ArgbImage {
            val px = IntArray(width * height)
            var seed = 0x2545F491
            for (y in 0 until height) {
                for (x in 0 until width) {
                    seed = seed xor (seed shl 13); seed = seed xor (seed ushr 17); seed = seed xor (seed shl 5)
                    val n = (seed ushr 27) - 16  // +-16 levels of noise
                    val r = (255L * x / width).toInt() + n
                    val g = (255L * y / height).toInt() - n
                    val b = ((x / 64 + y / 64) % 2) * 96 + 64 + n
                    px[y * width + x] = (0xFF shl 24) or (clamp(r) shl 16) or (clamp(g) shl 8) or clamp(b)
                }
            }
            return ArgbImage(width, height, px)
        }

        private fun clamp(v: Int) = if (v < 0) 0 else if (v > 255) 255 else v
    }
}

/** /proc/self/status, which Linux and Android both have: the process's peak resident set (VmHWM). */
object ProcStatus {
    fun peakRssMb(): Double? = try {
        parseKb(File("/proc/self/status").readText(), "VmHWM")?.let { it / 1024.0 }
    } catch (e: Exception) {
        null
    }

    /** The kB value of one "Name:   1234 kB" line, or null. */
    fun parseKb(status: String, name: String): Long? =
        status.lineSequence().firstOrNull { it.startsWith("$name:") }
            ?.substringAfter(':')?.trim()?.split(Regex("\\s+"))?.firstOrNull()?.toLongOrNull()
}

/**
 * One benchmark-mode start, from the intent's extras to the result file: what BenchmarkActivity does,
 * minus Android. The result goes to `<outDir>/<out>` (outDir = getExternalFilesDir(null)), written
 * atomically; a run that cannot start at all (bad extra, no manifest, unreadable photo) writes
 * `<outDir>/<out>.error` with the reason instead, so nothing is ever reported as a silent success.
 */
object BenchmarkSession {
    const val DONE = "ANYIR_BENCHMARK_DONE"
    const val FAILED = "ANYIR_BENCHMARK_FAILED"

    /** [logLine] is the last line the activity writes to logcat: "ANYIR_BENCHMARK_DONE <path>" or the failure. */
    data class Outcome(val ok: Boolean, val file: File, val logLine: String)

    fun run(
        host: BenchmarkHost,
        extras: Map<String, Any?>,
        outDir: File,
        packedRoot: () -> File,
        target: DeviceTarget,
        created: String,
        writer: String,
    ): Outcome {
        val outName = (extras["out"]?.toString()?.trim()?.takeIf { Regex("^[A-Za-z0-9][A-Za-z0-9._-]*$").matches(it) })
            ?: BenchmarkArgs.DEFAULT_OUT
        return try {
            val args = BenchmarkArgs.parse(extras)
            val root = args.bundleDir?.let { File(it) } ?: packedRoot()
            val mf = File(root, "manifest.json")
            if (!mf.isFile) {
                throw AnyIRError("no manifest.json in ${root.path}: push the bundle (anyir profile --target android --app) " +
                    "or build the app with -PanyirBundle=<bundle>")
            }
            val bytes = mf.readBytes()
            val manifest = Manifest.parse(String(bytes, Charsets.UTF_8))
            val bench = Benchmark(host, manifest, root, args)
            val results = bench.run()
            val doc = bench.profile(created, writer, target, BundleFiles.sha256(bytes), results)
            val dest = File(outDir, args.out)
            BundleFiles.writeAtomically(dest, doc.toJson())
            File(outDir, "${args.out}.error").delete()
            Outcome(true, dest, "$DONE ${dest.absolutePath}")
        } catch (e: Exception) {
            val why = if (e is AnyIRError) e.message ?: "failed" else "${e.javaClass.simpleName}: ${e.message}"
            val err = File(outDir, "$outName.error")
            try {
                BundleFiles.writeAtomically(err, why + "\n")
            } catch (ignored: Exception) {
                // the log line below still says why
            }
            Outcome(false, err, "$FAILED $why")
        }
    }
}
