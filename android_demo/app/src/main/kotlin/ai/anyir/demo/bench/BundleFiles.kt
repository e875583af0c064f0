package ai.anyir.demo.bench

import ai.anyir.core.AnyIRError
import ai.anyir.core.ManifestArtifact
import java.io.File
import java.io.FileOutputStream
import java.io.InputStream
import java.security.MessageDigest

/**
 * Files of a bundle on the phone: where an artifact lies, whether it is the file the manifest names
 * (sha256), copies that are checked before they are used, and writes that never leave half a file.
 * Plain JVM code (java.io, java.security), so tests/test_android_app.py runs it off the phone.
 */
object BundleFiles {
    private val SAFE_PATH = Regex("^(?!/)(?!(?:.*/)?\\.\\.(?:/|$))[A-Za-z0-9._/+-]+$")  // manifest-1's "path" pattern

    /** The artifact's Android file under [root]; a path that could leave the bundle folder is refused. */
    fun artifactFile(root: File, artifact: ManifestArtifact): File {
        val rel = artifact.paths["android"]
            ?: throw AnyIRError("${artifact.id}: not an Android artifact (it has paths for ${artifact.paths.keys.joinToString()})")
        return inside(root, rel)
    }

    fun inside(root: File, rel: String): File {
        if (!SAFE_PATH.matches(rel) || rel.split('/').any { it == ".." }) {
            throw AnyIRError("refusing the bundle path \"$rel\": not a plain relative path")
        }
        return File(root, rel)
    }

    fun sha256(file: File): String = file.inputStream().use { sha256(it) }

    fun sha256(input: InputStream): String {
        val md = MessageDigest.getInstance("SHA-256")
        val buf = ByteArray(1 shl 16)
        while (true) {
            val n = input.read(buf)
            if (n < 0) break
            md.update(buf, 0, n)
        }
        return hex(md.digest())
    }

    fun sha256(bytes: ByteArray): String = hex(MessageDigest.getInstance("SHA-256").digest(bytes))

    private fun hex(d: ByteArray): String = d.joinToString("") { "%02x".format(it.toInt() and 0xFF) }

    /** Null when [file] is the artifact the manifest names, else the sentence that says why not. */
    fun mismatch(file: File, artifact: ManifestArtifact): String? {
        if (!file.isFile) return "${artifact.id}: ${file.path} is missing"
        if (file.length() != artifact.bytes) {
            return "${artifact.id}: ${file.name} has ${file.length()} bytes, the manifest says ${artifact.bytes}: " +
                "a different or truncated file (push or pack the bundle again)"
        }
        val got = sha256(file)
        if (got != artifact.sha256) {
            return "${artifact.id}: ${file.name} has sha256 ${got.take(12)}..., the manifest says ${artifact.sha256.take(12)}...: " +
                "not the file this bundle was built with (push or pack the bundle again)"
        }
        return null
    }

    /**
     * Copies [input] to [dest] through a temp file beside it, checking bytes and sha256 on the way; only
     * a file that matches is renamed into place, so a later start never meets a half-copied model.
     */
    fun copyVerified(input: InputStream, dest: File, expectedSha256: String, expectedBytes: Long, what: String) {
        dest.parentFile?.mkdirs()
        val tmp = File(dest.parentFile, ".${dest.name}.partial")
        val md = MessageDigest.getInstance("SHA-256")
        var total = 0L
        try {
            FileOutputStream(tmp).use { out ->
                val buf = ByteArray(1 shl 16)
                while (true) {
                    val n = input.read(buf)
                    if (n < 0) break
                    md.update(buf, 0, n)
                    out.write(buf, 0, n)
                    total += n
                }
                out.fd.sync()
            }
            val got = hex(md.digest())
            if (total != expectedBytes || got != expectedSha256) {
                throw AnyIRError("$what: the packed copy has $total bytes, sha256 ${got.take(12)}...; the manifest says " +
                    "$expectedBytes bytes, ${expectedSha256.take(12)}...: rebuild the app with -PanyirBundle=<bundle>")
            }
            if (!tmp.renameTo(dest)) throw AnyIRError("$what: cannot move the verified copy to ${dest.path}")
        } finally {
            tmp.delete()
        }
    }

    /** Writes [text] to [dest] via a temp file in the same folder and a rename: readers see all or nothing. */
    fun writeAtomically(dest: File, text: String) {
        val dir = dest.absoluteFile.parentFile ?: throw AnyIRError("${dest.path}: no parent folder")
        if (!dir.isDirectory && !dir.mkdirs()) throw AnyIRError("cannot create ${dir.path}")
        val tmp = File(dir, ".${dest.name}.tmp")
        try {
            FileOutputStream(tmp).use { out ->
                out.write(text.toByteArray(Charsets.UTF_8))
                out.fd.sync()
            }
            if (!tmp.renameTo(dest)) {
                dest.delete()
                if (!tmp.renameTo(dest)) throw AnyIRError("cannot rename ${tmp.path} to ${dest.path}")
            }
        } finally {
            tmp.delete()
        }
    }
}
