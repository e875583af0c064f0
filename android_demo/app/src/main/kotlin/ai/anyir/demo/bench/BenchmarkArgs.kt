package ai.anyir.demo.bench

import ai.anyir.core.AnyIRError
import ai.anyir.core.Manifest
import ai.anyir.core.ManifestArtifact

/**
 * The benchmark activity's intent extras, read from a plain map (the Android layer copies the Intent's
 * extras into it), so the contract is tested off the phone. `am start` sends `-e` extras as strings and
 * `--ei` extras as ints: both are taken.
 *
 *   artifacts   comma list of artifact ids        default: every Android artifact of the bundle
 *   runs        timed runs per artifact            default 20 (>= 1)
 *   warmup      untimed runs before them           default 3 (>= 0; the first is reported as first inference)
 *   threads     CPU threads for the runtime        default 4 (>= 1)
 *   photo       a photo file on the device for the whole-photo figure, or "none" to skip it
 *               default: the bundle's test-vector photo if packed, else a synthetic 12 MP image
 *   out         result file name (no folders)      default anyir-profile.json, in getExternalFilesDir(null)
 *   bundle_dir  a pushed bundle folder (manifest.json, android/...) used instead of the packed assets
 *   accelerator LiteRT accelerator: cpu | gpu      default cpu (ExecuTorch always runs XNNPACK on the CPU)
 */
data class BenchmarkArgs(
    val artifacts: List<String>?,
    val runs: Int = 20,
    val warmup: Int = 3,
    val threads: Int = 4,
    val photo: String? = null,
    val out: String = DEFAULT_OUT,
    val bundleDir: String? = null,
    val accelerator: String = "cpu",
) {
    val skipPhoto: Boolean get() = photo == "none"

    /** The artifacts to run, in the order asked; an id the bundle does not have is refused by name. */
    fun select(manifest: Manifest): List<ManifestArtifact> {
        val android = manifest.artifacts.filter { "android" in it.paths }
        if (artifacts == null) {
            if (android.isEmpty()) throw AnyIRError("the bundle ${manifest.name}-${manifest.version} has no Android artifacts")
            return android
        }
        return artifacts.map { id ->
            android.firstOrNull { it.id == id } ?: throw AnyIRError(
                "artifacts: the bundle has no Android artifact \"$id\" (it has: ${android.joinToString { it.id }})")
        }
    }

    companion object {
        const val DEFAULT_OUT = "anyir-profile.json"
        val KEYS = setOf("artifacts", "runs", "warmup", "threads", "photo", "out", "bundle_dir", "accelerator")
        private val FILE_NAME = Regex("^[A-Za-z0-9][A-Za-z0-9._-]*$")

        fun parse(extras: Map<String, Any?>): BenchmarkArgs {
            val ids = str(extras, "artifacts")?.split(',')?.map { it.trim() }?.filter { it.isNotEmpty() }?.takeIf { it.isNotEmpty() }
            val out = str(extras, "out") ?: DEFAULT_OUT
            if (!FILE_NAME.matches(out)) throw AnyIRError("out: \"$out\" must be a plain file name (written to the app's external files folder)")
            val accel = (str(extras, "accelerator") ?: "cpu").lowercase()
            if (accel != "cpu" && accel != "gpu") throw AnyIRError("accelerator: \"$accel\" is not cpu or gpu")
            return BenchmarkArgs(
                artifacts = ids,
                runs = int(extras, "runs", 20, 1),
                warmup = int(extras, "warmup", 3, 0),
                threads = int(extras, "threads", 4, 1),
                photo = str(extras, "photo"),
                out = out,
                bundleDir = str(extras, "bundle_dir")?.trimEnd('/'),
                accelerator = accel,
            )
        }

        private fun str(extras: Map<String, Any?>, key: String): String? =
            extras[key]?.toString()?.trim()?.takeIf { it.isNotEmpty() }

        private fun int(extras: Map<String, Any?>, key: String, default: Int, min: Int): Int {
            val v = extras[key] ?: return default
            val n = when (v) {
                is Int -> v
                is Long -> if (v in Int.MIN_VALUE..Int.MAX_VALUE) v.toInt() else null
                else -> v.toString().trim().toIntOrNull()
            } ?: throw AnyIRError("$key: \"$v\" is not a whole number (am start: --ei $key N)")
            if (n < min) throw AnyIRError("$key: $n is below $min")
            return n
        }
    }
}
