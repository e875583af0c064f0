package ai.anyir.demo

import ai.anyir.core.AppRuntimes
import ai.anyir.core.ArgbImage
import ai.anyir.core.ManifestArtifact
import ai.anyir.core.Runner
import ai.anyir.demo.bench.BenchmarkArgs
import ai.anyir.demo.bench.BenchmarkHost
import ai.anyir.demo.bench.BenchmarkSession
import ai.anyir.demo.bench.DeviceTarget
import android.app.Activity
import android.os.Build
import android.os.Bundle
import android.os.Debug
import android.util.Log
import android.view.WindowManager
import android.widget.TextView
import java.io.File
import java.time.Instant
import java.time.temporal.ChronoUnit

/**
 * Benchmark mode, started from adb (`anyir profile --target android --app` does it):
 *
 *   adb shell am start -W -n ai.anyir.demo/.BenchmarkActivity [-e artifacts ID,ID] [--ei runs 20]
 *       [--ei warmup 3] [--ei threads 4] [-e photo /data/local/tmp/x.jpg | -e photo none]
 *       [-e out anyir-profile.json] [-e bundle_dir /data/local/tmp/anyir/<bundle>] [-e accelerator cpu|gpu]
 *
 * writes one profile-1 result to getExternalFilesDir(null)/<out>
 * (/sdcard/Android/data/ai.anyir.demo/files/<out>) and logs `ANYIR_BENCHMARK_DONE <path>` (tag AnyIRBenchmark);
 * a run that cannot start writes <out>.error and logs `ANYIR_BENCHMARK_FAILED <reason>`. Everything but the
 * phone-specific parts below is BenchmarkSession/Benchmark (plain Kotlin, run on the JVM by the tests).
 */
class BenchmarkActivity : Activity() {
    private lateinit var status: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)  // no sleep mid-run
        status = TextView(this).apply { setPadding(48, 160, 48, 48); textSize = 16f; text = "AnyIR benchmark running..." }
        setContentView(status)
        if (savedInstanceState != null) return  // recreated mid-run: the first instance's thread is still running
        val extras = readExtras()
        Thread({ run(extras) }, "anyir-benchmark").start()
    }

    @Suppress("DEPRECATION")  // Bundle.get(key): the one way to read an extra whatever type `am start` gave it
    private fun readExtras(): Map<String, Any?> {
        val b = intent.extras ?: return emptyMap()
        return b.keySet().filter { it in BenchmarkArgs.KEYS }.associateWith { b.get(it) }
    }

    private fun run(extras: Map<String, Any?>) {
        val outDir = getExternalFilesDir(null) ?: filesDir
        val outcome = BenchmarkSession.run(
            host = PhoneHost(),
            extras = extras,
            outDir = outDir,
            packedRoot = { BundleStore(this).packedRoot() },
            target = target(),
            created = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(),
            writer = "AnyIR Android demo ${BuildConfig.VERSION_NAME} (benchmark mode)",
        )
        if (outcome.ok) Log.i(TAG, outcome.logLine) else Log.e(TAG, outcome.logLine)
        runOnUiThread {
            status.text = outcome.logLine
            finish()
        }
    }

    private fun target(): DeviceTarget {
        val soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) "${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL}" else null
        return DeviceTarget(
            deviceModel = "${Build.MANUFACTURER} ${Build.MODEL}",
            os = "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT}, ${Build.DISPLAY})",
            cpu = soc ?: Build.HARDWARE,
            soc = soc,
            cores = Runtime.getRuntime().availableProcessors(),
            abi = Build.SUPPORTED_ABIS.firstOrNull(),
        )
    }

    private inner class PhoneHost : BenchmarkHost {
        override val appRuntimes = AppRuntimes(BuildConfig.EXECUTORCH_VERSION, BuildConfig.LITERT_VERSION)
        override val memorySource = "Debug.getMemoryInfo totalPss: the process's proportional set size (Java and " +
            "native heaps, code, graphics), the largest of samples taken after load, after each timed run and " +
            "after the photo; a sampled maximum, not a continuous peak"

        override fun nanoTime(): Long = System.nanoTime()

        override fun load(artifact: ManifestArtifact, file: File, args: BenchmarkArgs): Runner =
            Runners.open(artifact, file, args.threads, args.accelerator)

        override fun memoryMb(): Double = Debug.MemoryInfo().also { Debug.getMemoryInfo(it) }.totalPss / 1024.0

        override fun decodePhoto(file: File): ArgbImage = PhotoIO.decodeFile(file)

        override fun log(line: String) {
            Log.i(TAG, line)
            runOnUiThread { status.text = line }
        }
    }

    companion object {
        const val TAG = "AnyIRBenchmark"
    }
}
