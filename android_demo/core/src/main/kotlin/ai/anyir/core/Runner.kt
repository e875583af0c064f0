package ai.anyir.core

/** Memory order of one tile: NCHW (3 planes; .pte, Core ML) or NHWC (interleaved; the default .tflite). */
enum class Layout {
    NCHW, NHWC;

    companion object {
        /** The manifest's artifact.input.layout; "image" (a Core ML image input) is iOS-only. */
        fun of(name: String): Layout = when (name) {
            "NCHW" -> NCHW
            "NHWC" -> NHWC
            else -> throw AnyIRError("layout \"$name\" cannot be fed from Kotlin (NCHW or NHWC)")
        }
    }
}

/** What a model's input tensor holds: float values in [0, 1], or int8 with the record's scale and zero point. */
sealed interface TensorType {
    object Float32 : TensorType {
        override fun toString() = "float32"
    }

    data class Int8(val scale: Float, val zeroPoint: Int) : TensorType {
        override fun toString() = "int8 (scale $scale, zero point $zeroPoint)"
    }
}

/** One tile as the runner's input tensor wants it, already in the runner's [Runner.layout]. */
sealed interface TileInput {
    class Floats(val values: FloatArray) : TileInput
    class Int8s(val values: ByteArray) : TileInput
}

/**
 * One loaded artifact (an ExecuTorch Module, a LiteRT CompiledModel, a replay). The tiled path does the
 * numerics (pre-processing, int8 quantization, blend) so every runner is a thin copy in and out, and
 * those rules are tested once, here. Python counterpart: conversion.base.Runner (run_nchw).
 */
interface Runner : AutoCloseable {
    val tileH: Int
    val tileW: Int
    val layout: Layout
    val inputType: TensorType

    /** What ran it, for the UI and profile results ("ExecuTorch 1.5.1 XNNPACK", "replay"). */
    val label: String

    /**
     * One tile in, one tile out: 3 x [tileH] x [tileW] Float values in [layout], in the value range (a
     * runner whose output tensor is int8 dequantizes it with [Pixels.dequantizeInt8]).
     */
    fun run(input: TileInput): FloatArray

    override fun close()
}

/**
 * Replays recorded tile outputs in plan order (the vectors' tile_outputs_<id>.f32, N x 3 x H x W
 * NCHW): the whole tiled path checked without a runtime. With [expectedInputs] (tile_inputs.f32) it
 * also refuses a tile that differs from the one recorded, which names a plan-order or pre-processing bug.
 */
class ReplayRunner(
    override val tileH: Int,
    override val tileW: Int,
    private val outputs: FloatArray,
    private val expectedInputs: FloatArray? = null,
) : Runner {
    override val layout = Layout.NCHW
    override val inputType: TensorType = TensorType.Float32
    override val label = "replay"
    private val tileSize = 3 * tileH * tileW

    /** Tiles recorded, and tiles handed out so far. */
    val tiles: Int = outputs.size / tileSize
    var calls = 0
        private set

    init {
        require(outputs.size % tileSize == 0) { "replay: ${outputs.size} values is not a whole number of 3x${tileH}x$tileW tiles" }
        require(expectedInputs == null || expectedInputs.size == outputs.size) { "replay: inputs and outputs differ in size" }
    }

    override fun run(input: TileInput): FloatArray {
        val values = (input as? TileInput.Floats)?.values ?: throw AnyIRError("replay: takes float tiles")
        if (values.size != tileSize) throw ImageError("replay: a tile of ${values.size} values, expected $tileSize")
        if (calls >= tiles) throw AnyIRError("replay: tile ${calls + 1} asked for, $tiles recorded")
        val from = calls * tileSize
        if (expectedInputs != null) {
            for (i in 0 until tileSize) {
                if (values[i] != expectedInputs[from + i]) {
                    throw AnyIRError("replay: tile $calls differs from the recorded input at value $i " +
                        "(${values[i]} vs ${expectedInputs[from + i]}): plan order or pre-processing")
                }
            }
        }
        calls++
        return outputs.copyOfRange(from, from + tileSize)
    }

    override fun close() {}
}
