package ai.anyir.core

/** The runtime versions this app was built with (null: the runtime is not in this app). */
data class AppRuntimes(val executorch: String?, val litert: String?)

/** Whether the app can run an artifact; [message] is the one line the app shows when it cannot. */
data class RuntimeVerdict(val ok: Boolean, val message: String)

/**
 * Matches an artifact's `tools` record (the versions that wrote and verified it) against the app's
 * runtimes, so a mismatched bundle is refused with a sentence instead of failing inside native code.
 *
 * - ExecuTorch ("executorch"): the same major.minor. A .pte is a flatbuffer of the runtime's program
 *   schema plus delegate blobs (XNNPACK's own format and version); a minor release may change either,
 *   and a mismatch shows up as a load error code at best. Patch releases are fixes and may differ.
 * - LiteRT ("ai-edge-litert"): the same major, and the app's major.minor at least the one that verified
 *   the file. TFLite keeps old models running on newer runtimes (the flatbuffer schema only grows, and
 *   each builtin op keeps every version it has had), but a converter may emit op versions that an older
 *   runtime does not register ("Didn't find op for builtin opcode ... version ..."). The Android AAR
 *   (com.google.ai.edge.litert:litert) and the Python wheel (ai-edge-litert) are LiteRT releases numbered
 *   alike (2.x; a 2.3.0 of each exists), which is what lets the two be compared; the artifact's runtime
 *   record says the same ("ai-edge-litert >= 2.3").
 * - Core ML runs only on Apple platforms.
 */
object RuntimeCheck {
    fun check(artifact: ManifestArtifact, app: AppRuntimes): RuntimeVerdict = when (artifact.backend) {
        "executorch" -> checkExecuTorch(artifact, app.executorch)
        "tflite" -> checkLiteRT(artifact, app.litert)
        "coreml" -> RuntimeVerdict(false, "${artifact.id}: Core ML models run only on iOS/macOS")
        else -> RuntimeVerdict(false, "${artifact.id}: this app has no runtime for backend \"${artifact.backend}\"")
    }

    private fun checkExecuTorch(a: ManifestArtifact, appVersion: String?): RuntimeVerdict {
        if (appVersion == null) return RuntimeVerdict(false, "${a.id}: this app is built without ExecuTorch")
        val made = a.tools["executorch"]
            ?: return RuntimeVerdict(false, "${a.id}: the artifact does not record its ExecuTorch version (tools.executorch); rebuild the bundle")
        val m = parseVersion(made) ?: return RuntimeVerdict(false, "${a.id}: unreadable ExecuTorch version \"$made\" in tools.executorch")
        val r = parseVersion(appVersion) ?: return RuntimeVerdict(false, "unreadable app ExecuTorch version \"$appVersion\"")
        if (m[0] == r[0] && m[1] == r[1]) {
            return RuntimeVerdict(true, "${a.id}: made with ExecuTorch $made, runs on the app's $appVersion")
        }
        return RuntimeVerdict(false, "${a.id}: made with ExecuTorch $made, but this app runs executorch-android $appVersion; " +
            "ExecuTorch needs the same major.minor (${m[0]}.${m[1]}.x): use an app built with executorch-android " +
            "${m[0]}.${m[1]}.x, or rebuild the bundle with executorch ${r[0]}.${r[1]}.x")
    }

    private fun checkLiteRT(a: ManifestArtifact, appVersion: String?): RuntimeVerdict {
        if (appVersion == null) return RuntimeVerdict(false, "${a.id}: this app is built without LiteRT")
        val made = a.tools["ai-edge-litert"]
            ?: return RuntimeVerdict(false, "${a.id}: the artifact does not record its LiteRT version (tools.ai-edge-litert); rebuild the bundle")
        val m = parseVersion(made) ?: return RuntimeVerdict(false, "${a.id}: unreadable LiteRT version \"$made\" in tools.ai-edge-litert")
        val r = parseVersion(appVersion) ?: return RuntimeVerdict(false, "unreadable app LiteRT version \"$appVersion\"")
        if (m[0] == r[0] && (r[1] > m[1] || r[1] == m[1])) {
            return RuntimeVerdict(true, "${a.id}: verified with LiteRT $made, runs on the app's $appVersion")
        }
        return RuntimeVerdict(false, "${a.id}: verified with LiteRT $made, but this app runs LiteRT $appVersion; " +
            "LiteRT needs the same major and at least that minor (${m[0]}.${m[1]} or newer ${m[0]}.x): update the app's " +
            "LiteRT, or rebuild the bundle with ai-edge-litert ${r[0]}.${r[1]}")
    }

    /** [major, minor, patch] of "1.5.1", "2.13.0+cpu", "1.0.0rc2", "2.3"; null when it starts with no number. */
    fun parseVersion(v: String): IntArray? {
        val parts = v.trim().split('.')
        val out = IntArray(3)
        for (i in 0 until 3) {
            val digits = parts.getOrNull(i)?.takeWhile { it.isDigit() } ?: ""
            if (digits.isEmpty()) {
                if (i < 2) return null  // a version needs at least major.minor
                break
            }
            out[i] = digits.toIntOrNull() ?: return null
        }
        return out
    }
}
