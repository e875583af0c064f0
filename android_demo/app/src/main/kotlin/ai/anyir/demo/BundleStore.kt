package ai.anyir.demo

import ai.anyir.core.AnyIRError
import ai.anyir.core.Json
import ai.anyir.core.Manifest
import ai.anyir.demo.bench.BundleFiles
import android.content.Context
import java.io.File
import java.io.FileNotFoundException

/**
 * The bundle packed into the APK's assets (assets/anyir/: manifest.json, android/..., testvectors/photo.png,
 * put there by the packAnyirBundle Gradle task), copied once to filesDir because Module.load and
 * CompiledModel.create take a file path. Each file is checked against the manifest's size and sha256 as it
 * is copied (BundleFiles.copyVerified); the folder name carries the manifest's hash, so a rebuilt bundle of
 * the same name and version is copied afresh, and manifest.json is written last, so a folder with a manifest
 * is a complete, verified copy.
 */
class BundleStore(private val context: Context) {

    fun packedRoot(): File {
        val text = try {
            context.assets.open("$ASSETS/manifest.json").use { it.readBytes() }
        } catch (e: FileNotFoundException) {
            throw AnyIRError("this app was built without a bundle: build it with " +
                "./gradlew :app:installDebug -PanyirBundle=../dist/<name>-<version> (android_demo/README.md)")
        }
        val manifest = Manifest.parse(String(text, Charsets.UTF_8))
        val root = File(context.filesDir, "anyir/${manifest.name}-${manifest.version}-${BundleFiles.sha256(text).take(12)}")
        val done = File(root, "manifest.json")
        if (done.isFile) return root
        for (a in manifest.artifacts) {
            val rel = a.paths["android"] ?: continue
            val dest = BundleFiles.inside(root, rel)
            if (dest.isFile && BundleFiles.mismatch(dest, a) == null) continue
            context.assets.open("$ASSETS/$rel").use { BundleFiles.copyVerified(it, dest, a.sha256, a.bytes, a.id) }
        }
        photoEntry(text)?.let { (sha, bytes) ->
            try {
                context.assets.open("$ASSETS/$PHOTO").use {
                    BundleFiles.copyVerified(it, File(root, PHOTO), sha, bytes, PHOTO)
                }
            } catch (e: FileNotFoundException) {
                // not packed: the benchmark falls back to its synthetic photo
            }
        }
        BundleFiles.writeAtomically(done, String(text, Charsets.UTF_8))
        return root
    }

    /** The test-vector photo's sha256 and size from the manifest's "files" table (every bundle file is listed). */
    private fun photoEntry(text: ByteArray): Pair<String, Long>? {
        val files = (Json.parse(String(text, Charsets.UTF_8)) as? Map<*, *>)?.get("files") as? Map<*, *> ?: return null
        val e = files[PHOTO] as? Map<*, *> ?: return null
        val sha = e["sha256"] as? String ?: return null
        val bytes = (e["bytes"] as? Number)?.toLong() ?: return null
        return sha to bytes
    }

    companion object {
        const val ASSETS = "anyir"
        const val PHOTO = "testvectors/photo.png"
    }
}
