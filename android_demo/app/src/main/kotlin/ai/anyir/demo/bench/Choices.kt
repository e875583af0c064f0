package ai.anyir.demo.bench

import ai.anyir.core.AppRuntimes
import ai.anyir.core.Manifest
import ai.anyir.core.ManifestArtifact
import ai.anyir.core.RuntimeCheck

/** One entry of the app's artifact menu: an artifact on one accelerator, and whether this APK can run it. */
data class Choice(val artifact: ManifestArtifact, val accelerator: String, val ok: Boolean, val why: String) {
    /** "executorch-int8 · ExecuTorch XNNPACK · int8" for the menu; refused entries say so. */
    val label: String
        get() {
            val runtime = when (artifact.backend) {
                "executorch" -> "ExecuTorch XNNPACK"
                "tflite" -> if (accelerator == "gpu") "LiteRT GPU" else "LiteRT CPU"
                else -> artifact.backend
            }
            val flag = if (!ok) " (cannot run)" else if (!artifact.usable) " (below its numeric threshold)" else ""
            return "${artifact.id} · $runtime · ${artifact.precision}$flag"
        }
}

object Choices {
    /**
     * The accelerators worth offering: ExecuTorch .pte files carry their XNNPACK delegate (CPU); a float
     * .tflite runs on LiteRT's CPU (XNNPACK) or GPU accelerator; an int8 .tflite only on the CPU (the GPU
     * accelerator computes in float and takes no int8 I/O tensors).
     */
    fun accelerators(a: ManifestArtifact): List<String> = when {
        a.backend == "tflite" && a.precision in setOf("fp32", "fp16") -> listOf("cpu", "gpu")
        else -> listOf("cpu")
    }

    /** Every Android artifact of the bundle on every accelerator it applies to, best first (Manifest's order). */
    fun of(manifest: Manifest, app: AppRuntimes): List<Choice> = manifest.artifactsFor("android").flatMap { a ->
        val verdict = RuntimeCheck.check(a, app)
        accelerators(a).map { acc -> Choice(a, acc, verdict.ok, verdict.message) }
    }
}
