package ai.anyir.core

/** A manifest or test-vector file that is not the JSON it should be; the message names where. */
class JsonError(message: String) : AnyIRError(message)

/**
 * A strict JSON reader (RFC 8259) for the bundle's small files: the app takes no JSON library, and the
 * Swift mirror needs the same rules. Objects become Map<String, Any?> (key order kept), arrays
 * List<Any?>, integers Long (so a byte count past 2^31 survives), other numbers Double, and
 * true/false/null Boolean/null. Anything else - a trailing comma, a bare word, a lone surrogate, text
 * after the value - is refused with its line, column and offset, so a corrupt manifest is named as such.
 */
object Json {
    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipSpace()
        val v = p.value(0)
        p.skipSpace()
        if (p.pos != text.length) p.fail("unexpected text after the JSON value")
        return v
    }

    // deep enough for any manifest, shallow enough that a hostile file cannot overflow the stack
    private const val MAX_DEPTH = 256

    private class Parser(val s: String) {
        var pos = 0

        fun fail(what: String): Nothing {
            var line = 1
            var col = 1
            for (i in 0 until minOf(pos, s.length)) {
                if (s[i] == '\n') { line++; col = 1 } else col++
            }
            throw JsonError("bad JSON at line $line, column $col (offset $pos): $what")
        }

        fun skipSpace() {
            while (pos < s.length && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) pos++
        }

        fun value(depth: Int): Any? {
            if (depth > MAX_DEPTH) fail("nested deeper than $MAX_DEPTH")
            if (pos >= s.length) fail("unexpected end of input")
            return when (val c = s[pos]) {
                '{' -> obj(depth)
                '[' -> arr(depth)
                '"' -> str()
                't' -> word("true", true)
                'f' -> word("false", false)
                'n' -> word("null", null)
                else -> if (c == '-' || c in '0'..'9') num() else fail("unexpected character '${c}'")
            }
        }

        fun word(w: String, v: Any?): Any? {
            if (!s.startsWith(w, pos)) fail("expected '$w'")
            pos += w.length
            return v
        }

        fun obj(depth: Int): Map<String, Any?> {
            pos++ // {
            val out = LinkedHashMap<String, Any?>()
            skipSpace()
            if (pos < s.length && s[pos] == '}') { pos++; return out }
            while (true) {
                skipSpace()
                if (pos >= s.length || s[pos] != '"') fail("expected a string key")
                val key = str()
                skipSpace()
                if (pos >= s.length || s[pos] != ':') fail("expected ':' after key \"$key\"")
                pos++
                skipSpace()
                if (out.containsKey(key)) fail("duplicate key \"$key\"")
                out[key] = value(depth + 1)
                skipSpace()
                if (pos >= s.length) fail("unexpected end of input in an object")
                when (s[pos]) {
                    ',' -> pos++
                    '}' -> { pos++; return out }
                    else -> fail("expected ',' or '}' in an object")
                }
            }
        }

        fun arr(depth: Int): List<Any?> {
            pos++ // [
            val out = ArrayList<Any?>()
            skipSpace()
            if (pos < s.length && s[pos] == ']') { pos++; return out }
            while (true) {
                skipSpace()
                out.add(value(depth + 1))
                skipSpace()
                if (pos >= s.length) fail("unexpected end of input in an array")
                when (s[pos]) {
                    ',' -> pos++
                    ']' -> { pos++; return out }
                    else -> fail("expected ',' or ']' in an array")
                }
            }
        }

        fun hex4(): Int {
            if (pos + 4 > s.length) fail("truncated \\u escape")
            var v = 0
            for (i in 0 until 4) {
                val d = Character.digit(s[pos + i], 16)
                if (d < 0) fail("bad hex digit in \\u escape")
                v = v * 16 + d
            }
            pos += 4
            return v
        }

        fun str(): String {
            pos++ // opening quote
            val sb = StringBuilder()
            while (true) {
                if (pos >= s.length) fail("unterminated string")
                val c = s[pos++]
                when {
                    c == '"' -> return sb.toString()
                    c == '\\' -> {
                        if (pos >= s.length) fail("unterminated escape")
                        when (val e = s[pos++]) {
                            '"' -> sb.append('"')
                            '\\' -> sb.append('\\')
                            '/' -> sb.append('/')
                            'b' -> sb.append('\b')
                            'f' -> sb.append('\u000C')
                            'n' -> sb.append('\n')
                            'r' -> sb.append('\r')
                            't' -> sb.append('\t')
                            'u' -> {
                                val u = hex4()
                                if (u in 0xD800..0xDBFF) { // a high surrogate must be followed by its low half
                                    if (pos + 6 > s.length || s[pos] != '\\' || s[pos + 1] != 'u') fail("lone high surrogate")
                                    pos += 2
                                    val lo = hex4()
                                    if (lo !in 0xDC00..0xDFFF) fail("high surrogate not followed by a low one")
                                    sb.append(u.toChar()).append(lo.toChar())
                                } else if (u in 0xDC00..0xDFFF) {
                                    fail("lone low surrogate")
                                } else {
                                    sb.append(u.toChar())
                                }
                            }
                            else -> { pos--; fail("bad escape '\\$e'") }
                        }
                    }
                    c < ' ' -> { pos--; fail("control character in a string") }
                    else -> sb.append(c)
                }
            }
        }

        fun num(): Any {
            val start = pos
            if (s[pos] == '-') pos++
            if (pos >= s.length) fail("truncated number")
            if (s[pos] == '0') {
                pos++
            } else if (s[pos] in '1'..'9') {
                while (pos < s.length && s[pos] in '0'..'9') pos++
            } else fail("expected a digit")
            var integral = true
            if (pos < s.length && s[pos] == '.') {
                integral = false
                pos++
                if (pos >= s.length || s[pos] !in '0'..'9') fail("expected a digit after '.'")
                while (pos < s.length && s[pos] in '0'..'9') pos++
            }
            if (pos < s.length && (s[pos] == 'e' || s[pos] == 'E')) {
                integral = false
                pos++
                if (pos < s.length && (s[pos] == '+' || s[pos] == '-')) pos++
                if (pos >= s.length || s[pos] !in '0'..'9') fail("expected a digit in the exponent")
                while (pos < s.length && s[pos] in '0'..'9') pos++
            }
            val t = s.substring(start, pos)
            if (integral) t.toLongOrNull()?.let { return it }  // else too long for Long: keep it as a Double
            return t.toDouble()
        }
    }
}
