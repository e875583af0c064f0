package ai.anyir.demo

import ai.anyir.core.AnyIRError
import ai.anyir.core.Layout
import ai.anyir.core.ManifestArtifact
import ai.anyir.core.Pixels
import ai.anyir.core.Runner
import ai.anyir.core.TensorType
import ai.anyir.core.TileInput
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import java.io.File
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

// The two runtimes behind the core's Runner: a thin copy in, run, copy out. Pre-processing, int8 input
// quantization, tiling and blending are the core's (tested on the JVM against the bundle's vectors).
// Call each runner from one thread (the app's inference dispatcher, or the benchmark's thread).

object Runners {
    /** Loads [file] (already checked against the manifest's sha256) for [a]'s backend. */
    fun open(a: ManifestArtifact, file: File, threads: Int, accelerator: String): Runner = when (a.backend) {
        "executorch" -> ExecuTorchRunner(a, file, threads)
        "tflite" -> LiteRtRunner(a, file, threads, gpu = accelerator == "gpu")
        else -> throw AnyIRError("${a.id}: no Android runtime for backend \"${a.backend}\"")
    }
}

/** A .pte through org.pytorch.executorch.Module (XNNPACK delegate inside the file). */
class ExecuTorchRunner(a: ManifestArtifact, file: File, threads: Int) : Runner {
    // LOAD_MODE_MMAP: the program is mapped, not read into the Java heap; numThreads sets XNNPACK's pool
    private val module: Module = Module.load(file.absolutePath, Module.LOAD_MODE_MMAP, threads)
    override val tileH = a.input.height
    override val tileW = a.input.width
    override val layout = Layout.of(a.input.layout)
    override val inputType: TensorType = a.inputType
    override val label = "ExecuTorch ${BuildConfig.EXECUTORCH_VERSION} XNNPACK"
    private val shape = a.input.shape.map { it.toLong() }.toLongArray()

    init {
        if (inputType != TensorType.Float32) throw AnyIRError("${a.id}: this app feeds .pte files float tiles, the file wants $inputType")
        module.loadMethod("forward")  // load and initialize the delegate now, so load time is not paid by the first tile
    }

    override fun run(input: TileInput): FloatArray {
        val values = (input as? TileInput.Floats)?.values ?: throw AnyIRError("ExecuTorch: a .pte takes float tiles")
        val out = module.forward(EValue.from(Tensor.fromBlob(values, shape)))
        return out[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

/** A .tflite through LiteRT's CompiledModel on the CPU (XNNPACK) or the GPU accelerator. */
class LiteRtRunner(private val a: ManifestArtifact, file: File, threads: Int, gpu: Boolean) : Runner {
    private val model: CompiledModel = CompiledModel.create(
        file.absolutePath,
        if (gpu) {
            CompiledModel.Options(Accelerator.GPU)
        } else {
            CompiledModel.Options(Accelerator.CPU).also { it.cpuOptions = CompiledModel.CpuOptions(threads, null, null) }
        },
        null,
    )
    private val inputs: List<TensorBuffer> = model.createInputBuffers()
    private val outputs: List<TensorBuffer> = model.createOutputBuffers()
    override val tileH = a.input.height
    override val tileW = a.input.width
    override val layout = Layout.of(a.input.layout)
    override val inputType: TensorType = a.inputType
    override val label = "LiteRT ${BuildConfig.LITERT_VERSION} ${if (gpu) "GPU" else "CPU"}"

    override fun run(input: TileInput): FloatArray {
        when (input) {
            is TileInput.Floats -> inputs[0].writeFloat(input.values)
            is TileInput.Int8s -> inputs[0].writeInt8(input.values)
        }
        model.run(inputs, outputs)
        val q = a.outputQuantization
        return if (q != null && q.dtype == "int8") {
            Pixels.dequantizeInt8(outputs[0].readInt8(), q.scale.toFloat(), q.zeroPoint)
        } else {
            outputs[0].readFloat()
        }
    }

    override fun close() {
        inputs.forEach { it.close() }
        outputs.forEach { it.close() }
        model.close()
    }
}
