package ai.anyir.demo

import ai.anyir.core.AnyIRError
import ai.anyir.core.AppRuntimes
import ai.anyir.core.ArgbImage
import ai.anyir.core.Manifest
import ai.anyir.core.RestoreCancelled
import ai.anyir.core.Runner
import ai.anyir.core.TilePlan
import ai.anyir.core.TiledRestore
import ai.anyir.demo.bench.BundleFiles
import ai.anyir.demo.bench.Choice
import ai.anyir.demo.bench.Choices
import ai.anyir.demo.bench.TimedRunner
import android.graphics.Bitmap
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.view.ViewGroup.LayoutParams.MATCH_PARENT
import android.view.ViewGroup.LayoutParams.WRAP_CONTENT
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.Spinner
import android.widget.TextView
import android.widget.Toast
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.lifecycle.lifecycleScope
import java.io.File
import java.util.concurrent.Executors
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * The demo: pick or take a photo, choose an artifact (and LiteRT accelerator) from the bundle's manifest,
 * restore it tile by tile off the main thread with progress, per-tile latency and cancel, compare before
 * and after with a slider, save to the gallery or share. The numerics are the core's TiledRestore; this
 * class only wires views to it (and is the part of the app no test has run).
 */
class MainActivity : ComponentActivity() {
    // one thread for every runtime call: the native runtimes are not used from two threads at once
    private val inference = Executors.newSingleThreadExecutor { r -> Thread(r, "anyir-inference") }.asCoroutineDispatcher()
    private val appRuntimes = AppRuntimes(BuildConfig.EXECUTORCH_VERSION, BuildConfig.LITERT_VERSION)

    private lateinit var status: TextView
    private lateinit var progressBar: ProgressBar
    private lateinit var artifactMenu: Spinner
    private lateinit var restoreButton: Button
    private lateinit var cancelButton: Button
    private lateinit var saveButton: Button
    private lateinit var shareButton: Button
    private lateinit var compare: BeforeAfterView

    private var root: File? = null
    private var manifest: Manifest? = null
    private var choices: List<Choice> = emptyList()
    private var photo: ArgbImage? = null
    private var beforeBitmap: Bitmap? = null
    private var afterBitmap: Bitmap? = null
    private var loaded: Pair<Choice, Runner>? = null  // touched on the inference thread only
    private var job: Job? = null
    @Volatile private var cancelled = false

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri -> uri?.let { showPhoto(it) } }
    private var cameraUri: Uri? = null
    private val takePhoto = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        if (saved) cameraUri?.let { showPhoto(it) }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(buildViews())
        loadBundle()
    }

    override fun onDestroy() {
        cancelled = true
        val held = loaded
        loaded = null
        inference.executor.execute { held?.second?.close() }
        inference.close()
        super.onDestroy()
    }

    private fun buildViews(): View {
        fun row(vararg views: View) = LinearLayout(this).apply {
            orientation = LinearLayout.HORIZONTAL
            views.forEach { addView(it, LinearLayout.LayoutParams(0, WRAP_CONTENT, 1f)) }
        }
        fun button(label: String, onClick: () -> Unit) = Button(this).apply { text = label; setOnClickListener { onClick() } }

        artifactMenu = Spinner(this)
        restoreButton = button("Restore") { restore() }
        cancelButton = button("Cancel") { cancelled = true }.apply { isEnabled = false }
        saveButton = button("Save") { save() }.apply { isEnabled = false }
        shareButton = button("Share") { share() }.apply { isEnabled = false }
        progressBar = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal)
        status = TextView(this).apply { setPadding(8, 8, 8, 8) }
        compare = BeforeAfterView(this)
        val column = LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            addView(row(
                button("Pick photo") { pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly)) },
                button("Take photo") { cameraUri = PhotoIO.cameraTarget(this@MainActivity).also { takePhoto.launch(it) } },
            ))
            addView(artifactMenu, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
            addView(row(restoreButton, cancelButton))
            addView(progressBar, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
            addView(status, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
            addView(compare, LinearLayout.LayoutParams(MATCH_PARENT, 0, 1f))
            addView(row(saveButton, shareButton))
        }
        // targetSdk 35+ draws edge to edge: keep the controls clear of the status and navigation bars
        ViewCompat.setOnApplyWindowInsetsListener(column) { v, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars())
            v.setPadding(bars.left, bars.top, bars.right, bars.bottom)
            insets
        }
        return column
    }

    /** Copies and verifies the packed bundle (first start only), then fills the artifact menu. */
    private fun loadBundle() {
        status.text = "Checking the bundle..."
        lifecycleScope.launch {
            try {
                val (r, m) = withContext(Dispatchers.IO) {
                    val r = BundleStore(this@MainActivity).packedRoot()
                    r to Manifest.parse(File(r, "manifest.json").readText())
                }
                root = r
                manifest = m
                choices = Choices.of(m, appRuntimes)
                artifactMenu.adapter = ArrayAdapter(this@MainActivity, android.R.layout.simple_spinner_dropdown_item,
                    choices.map { it.label })
                artifactMenu.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
                    override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) {
                        status.text = choices[position].why
                    }
                    override fun onNothingSelected(parent: AdapterView<*>?) {}
                }
                status.text = "${m.name} ${m.version}: ${choices.size} choices. ExecuTorch ${appRuntimes.executorch}, " +
                    "LiteRT ${appRuntimes.litert}. Pick or take a photo."
            } catch (e: AnyIRError) {
                status.text = e.message
                restoreButton.isEnabled = false
            } catch (e: Exception) {
                status.text = "Cannot read the packed bundle: ${e.javaClass.simpleName}: ${e.message}"
                restoreButton.isEnabled = false
            }
        }
    }

    private fun showPhoto(uri: Uri) {
        status.text = "Opening the photo..."
        lifecycleScope.launch {
            try {
                val img = withContext(Dispatchers.IO) { PhotoIO.decode(this@MainActivity, uri) }
                photo = img
                beforeBitmap = PhotoIO.toBitmap(img)
                afterBitmap = null
                compare.show(beforeBitmap, null)
                saveButton.isEnabled = false
                shareButton.isEnabled = false
                val plan = manifest?.let { TilePlan(img.height, img.width, it.input.tileH, it.input.tileW, it.input.overlap).tiles }
                status.text = "${img.width} x ${img.height}" + (plan?.let { ", $it tiles" } ?: "")
            } catch (e: Exception) {
                status.text = "Cannot open that photo: ${e.message}"
            }
        }
    }

    private fun restore() {
        val img = photo ?: return toast("Pick or take a photo first")
        val m = manifest ?: return toast("No bundle")
        val choice = choices.getOrNull(artifactMenu.selectedItemPosition) ?: return toast("No artifact")
        if (!choice.ok) {
            status.text = choice.why  // RuntimeCheck's sentence: which version made it, which this app runs
            return
        }
        val bundleRoot = root ?: return
        cancelled = false
        restoreButton.isEnabled = false
        cancelButton.isEnabled = true
        progressBar.progress = 0
        job = lifecycleScope.launch {
            try {
                val t0 = System.nanoTime()
                val (restored, timed) = withContext(inference) {
                    val runner = runnerFor(choice, bundleRoot)
                    val timed = TimedRunner(runner)
                    val out = TiledRestore(timed, m.input.overlap).restore(img,
                        progress = { done, total ->
                            val line = timed.summary(done, total)
                            runOnUiThread {
                                progressBar.max = total
                                progressBar.progress = done
                                status.text = line
                            }
                        },
                        isCancelled = { cancelled })
                    out to timed
                }
                val totalMs = (System.nanoTime() - t0) / 1e6
                afterBitmap = PhotoIO.toBitmap(restored)
                compare.show(beforeBitmap, afterBitmap)
                val t = timed.tileMs
                status.text = "${choice.artifact.id} on ${timed.label}: ${t.size} tiles in ${"%.0f".format(totalMs)} ms " +
                    "(tile mean ${"%.0f".format(t.average())} ms, min ${"%.0f".format(t.min())}, max ${"%.0f".format(t.max())})"
                saveButton.isEnabled = true
                shareButton.isEnabled = true
            } catch (e: RestoreCancelled) {
                status.text = "Cancelled after ${e.tilesDone} of ${e.tiles} tiles"
            } catch (e: CancellationException) {
                throw e  // the activity is going away: not an error to show
            } catch (e: AnyIRError) {
                status.text = e.message
            } catch (e: Exception) {
                status.text = "${choice.artifact.id} failed: ${e.javaClass.simpleName}: ${e.message}"
            } catch (e: OutOfMemoryError) {
                status.text = "Out of memory restoring a ${img.width} x ${img.height} photo: try a smaller one"
            } finally {
                restoreButton.isEnabled = true
                cancelButton.isEnabled = false
            }
        }
    }

    /** The loaded runner for [choice], loading it (and closing the previous one) on a change; inference thread. */
    private fun runnerFor(choice: Choice, bundleRoot: File): Runner {
        loaded?.let { (c, r) -> if (c == choice) return r else r.close() }
        loaded = null
        val file = BundleFiles.artifactFile(bundleRoot, choice.artifact)
        val r = Runners.open(choice.artifact, file, threads = 4, accelerator = choice.accelerator)
        loaded = choice to r
        return r
    }

    private fun save() {
        val b = afterBitmap ?: return
        lifecycleScope.launch {
            try {
                withContext(Dispatchers.IO) { PhotoIO.saveToGallery(this@MainActivity, b, "anyir-${System.currentTimeMillis()}") }
                toast("Saved to Pictures/AnyIR")
            } catch (e: Exception) {
                toast("Not saved: ${e.message}")
            }
        }
    }

    private fun share() {
        val b = afterBitmap ?: return
        lifecycleScope.launch {
            val intent = withContext(Dispatchers.IO) { PhotoIO.shareIntent(this@MainActivity, b, "anyir-restored") }
            startActivity(intent)
        }
    }

    private fun toast(text: String) = Toast.makeText(this, text, Toast.LENGTH_SHORT).show()
}
