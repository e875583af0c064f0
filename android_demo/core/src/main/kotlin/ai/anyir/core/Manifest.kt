package ai.anyir.core

/**
 * The bundle's manifest.json (schema anyir-mobile/manifest/1, mobile/schema/manifest-1.schema.json),
 * read for what an app needs. The app never guesses a size, range, layout or file name: all come from
 * here. A manifest this reader does not understand is refused by name, never half-read.
 */
class Manifest(
    val name: String,
    val version: String,
    val input: ManifestInput,
    val artifacts: List<ManifestArtifact>,
    val defaultArtifact: String?,
    /** The build's order per platform (manifest "ranking"); the host's default is not a phone's choice. */
    val ranking: Map<String, List<String>> = emptyMap(),
) {
    fun artifact(id: String): ManifestArtifact =
        artifacts.firstOrNull { it.id == id }
            ?: throw ManifestError("the bundle has no artifact \"$id\" (it has: ${artifacts.joinToString { it.id }})")

    /**
     * The artifacts an app on [platform] ("android", "ios") can load, best first: those that passed
     * their numeric check before those that did not, then the manifest's ranking for that platform
     * (default_artifact is the build host's fastest and is not used), then mobile/bundle.py's PREFERENCE
     * for artifacts the ranking does not name, then the manifest's order.
     */
    fun artifactsFor(platform: String): List<ManifestArtifact> {
        val ranked = ranking[platform].orEmpty()
        return artifacts.filter { platform in it.paths }.sortedWith(
            compareBy<ManifestArtifact>({ if (it.usable) 0 else 1 },
                { ranked.indexOf(it.id).let { i -> if (i < 0) ranked.size else i } },
                { preferenceRank(it.backend, it.precision) }).thenBy { artifacts.indexOf(it) })
    }

    companion object {
        const val SCHEMA = "anyir-mobile/manifest/1"

        // mobile/bundle.py PREFERENCE: the order `anyir restore` picks in when no artifact is named
        val PREFERENCE: List<Pair<String, String>> = listOf(
            "executorch" to "int8", "tflite" to "int8", "executorch" to "fp32", "tflite" to "fp32",
            "tflite" to "fp16", "coreml" to "int8", "coreml" to "fp16", "coreml" to "fp32")

        fun preferenceRank(backend: String, precision: String): Int =
            PREFERENCE.indexOf(backend to precision).let { if (it < 0) PREFERENCE.size else it }

        /** Parses manifest.json's text; [ManifestError] names the problem (JSON, schema, field). */
        fun parse(text: String): Manifest {
            val root = try {
                Json.parse(text)
            } catch (e: JsonError) {
                throw ManifestError("manifest.json is corrupt: ${e.message}")
            }
            val top = Fields(root as? Map<*, *> ?: throw ManifestError("manifest.json is not a JSON object"), "")
            // the schema first: a newer manifest may have moved any other field
            val schema = top.opt("schema") ?: throw ManifestError("manifest.json has no \"schema\": not an AnyIR bundle manifest")
            if (schema != SCHEMA) {
                throw ManifestError("manifest schema \"$schema\" is not understood: this app reads \"$SCHEMA\" " +
                    "(use an app built for that bundle, or rebuild the bundle with a matching anyir)")
            }
            val inp = top.obj("input")
            val tile = inp.intList("tile")
            if (tile.size != 2 || tile.any { it < 1 }) throw ManifestError("manifest field \"input.tile\" must be [height, width]")
            val range = inp.doubleList("value_range")
            if (range.size != 2) throw ManifestError("manifest field \"input.value_range\" must be [low, high]")
            val input = ManifestInput(tile[0], tile[1], inp.int("overlap"), range[0], range[1], inp.string("color_order"))
            // the pre-processing (Pixels) feeds RGB in [0, 1] as the reference does; anything else would be
            // fed wrongly without an error, so it is refused here
            if (input.colorOrder != "RGB" || input.valueLow != 0.0 || input.valueHigh != 1.0) {
                throw ManifestError("manifest input is ${input.colorOrder} in [${input.valueLow}, ${input.valueHigh}]: " +
                    "this app feeds RGB in [0, 1] (fields \"input.color_order\", \"input.value_range\")")
            }
            val arts = top.objList("artifacts").map { readArtifact(it) }
            val default = top.nullableString("default_artifact")
            if (default != null && arts.none { it.id == default }) {
                throw ManifestError("manifest field \"default_artifact\" names \"$default\", which is not among the artifacts")
            }
            val ranking = top.optObj("ranking")?.let { r -> r.keys().associateWith { r.stringList(it) } } ?: emptyMap()
            return Manifest(top.string("name"), top.string("version"), input, arts, default, ranking)
        }

        private fun readArtifact(a: Fields): ManifestArtifact {
            val inp = a.obj("input")
            val paths = a.obj("paths")
            val io = a.optObj("details")?.optObj("io")
            return ManifestArtifact(
                id = a.string("id"), backend = a.string("backend"), precision = a.string("precision"),
                paths = paths.keys().associateWith { paths.string(it) },
                bytes = a.long("bytes"), sha256 = a.string("sha256"),
                input = ArtifactInput(inp.int("height"), inp.int("width"), inp.string("layout"), inp.intList("shape"),
                    inp.optString("dtype") ?: "float32"),
                inputQuantization = io?.optObj("input")?.let { ioQuant(it) },
                outputQuantization = io?.optObj("output")?.let { ioQuant(it) },
                tools = a.optObj("tools")?.let { t -> t.keys().associateWith { t.string(it) } } ?: emptyMap(),
                status = a.string("status"),
                numericsPassed = a.obj("numerics").bool("passed"),
                hostMsMedian = a.obj("latency").nullableDouble("host_ms_median"),
            )
        }

        // tflite_backend.io_quantization: {"dtype", "scale", "zero_point"}; float tensors carry scale 0
        private fun ioQuant(q: Fields) = IoQuantization(q.string("dtype"), q.optDouble("scale") ?: 0.0, q.optInt("zero_point") ?: 0)
    }
}

/** manifest.input: how every artifact of the bundle is fed. */
data class ManifestInput(
    val tileH: Int,
    val tileW: Int,
    val overlap: Int,
    val valueLow: Double,
    val valueHigh: Double,
    val colorOrder: String,
)

/** artifact.input: the one tile shape this file was exported for. */
data class ArtifactInput(val height: Int, val width: Int, val layout: String, val shape: List<Int>, val dtype: String)

/** One tensor's dtype, scale and zero point as the artifact's `details.io` records them. */
data class IoQuantization(val dtype: String, val scale: Double, val zeroPoint: Int)

data class ManifestArtifact(
    val id: String,
    val backend: String,
    val precision: String,
    val paths: Map<String, String>,  // platform -> path relative to the bundle folder
    val bytes: Long,
    val sha256: String,
    val input: ArtifactInput,
    val inputQuantization: IoQuantization?,
    val outputQuantization: IoQuantization?,
    val tools: Map<String, String>,  // package -> version that wrote (and verified) the file
    val status: String,
    val numericsPassed: Boolean,
    val hostMsMedian: Double?,
) {
    /** Passed its numeric check against the PyTorch reference. */
    val usable: Boolean get() = status == "ok" && numericsPassed

    /** What the tiled path feeds it: int8 when the file's input tensor is int8 (a full-integer .tflite). */
    val inputType: TensorType
        get() {
            val q = inputQuantization
            return if (q != null && q.dtype == "int8") TensorType.Int8(q.scale.toFloat(), q.zeroPoint) else TensorType.Float32
        }
}

/** Typed access to one JSON object with the field's full path in every error ("artifacts[1].input.layout"). */
internal class Fields(private val map: Map<*, *>, private val path: String) {
    private fun where(key: String) = if (path.isEmpty()) key else "$path.$key"
    private fun missing(key: String): Nothing = throw ManifestError("manifest is missing the required field \"${where(key)}\"")
    private fun wrong(key: String, want: String, got: Any?): Nothing =
        throw ManifestError("manifest field \"${where(key)}\" must be $want, found ${describe(got)}")

    fun keys(): List<String> = map.keys.map { it as String }
    fun opt(key: String): Any? = map[key]

    private fun need(key: String): Any? = if (map.containsKey(key)) map[key] else missing(key)

    fun string(key: String): String = need(key).let { it as? String ?: wrong(key, "a string", it) }
    fun optString(key: String): String? = map[key]?.let { it as? String ?: wrong(key, "a string", it) }
    fun nullableString(key: String): String? = need(key)?.let { it as? String ?: wrong(key, "a string or null", it) }
    fun bool(key: String): Boolean = need(key).let { it as? Boolean ?: wrong(key, "true or false", it) }
    fun long(key: String): Long = need(key).let { it as? Long ?: wrong(key, "an integer", it) }
    fun int(key: String): Int = long(key).let { if (it in Int.MIN_VALUE..Int.MAX_VALUE) it.toInt() else wrong(key, "a 32-bit integer", it) }
    fun optInt(key: String): Int? = if (map[key] == null) null else int(key)
    fun optDouble(key: String): Double? = map[key]?.let { (it as? Number)?.toDouble() ?: wrong(key, "a number", it) }
    fun nullableDouble(key: String): Double? = need(key)?.let { (it as? Number)?.toDouble() ?: wrong(key, "a number or null", it) }

    fun obj(key: String): Fields = need(key).let { Fields(it as? Map<*, *> ?: wrong(key, "an object", it), where(key)) }
    fun optObj(key: String): Fields? = map[key]?.let { Fields(it as? Map<*, *> ?: wrong(key, "an object", it), where(key)) }

    private fun list(key: String): List<*> = need(key).let { it as? List<*> ?: wrong(key, "a list", it) }
    fun intList(key: String): List<Int> = list(key).map { v ->
        (v as? Long)?.takeIf { it in Int.MIN_VALUE..Int.MAX_VALUE }?.toInt() ?: wrong(key, "a list of integers", v)
    }
    fun stringList(key: String): List<String> = list(key).map { v -> v as? String ?: wrong(key, "a list of strings", v) }
    fun doubleList(key: String): List<Double> = list(key).map { v -> (v as? Number)?.toDouble() ?: wrong(key, "a list of numbers", v) }
    fun objList(key: String): List<Fields> = list(key).mapIndexed { i, v ->
        Fields(v as? Map<*, *> ?: wrong("$key[$i]", "an object", v), "${where(key)}[$i]")
    }

    private fun describe(v: Any?): String = when (v) {
        null -> "null"
        is String -> "the string \"${v.take(40)}\""
        is Boolean -> v.toString()
        is Long, is Double -> "the number $v"
        is List<*> -> "a list"
        is Map<*, *> -> "an object"
        else -> v.toString()
    }
}
