package ai.anyir.demo.bench

import ai.anyir.core.Runner
import ai.anyir.core.TileInput

/**
 * Wraps a runner and keeps how long each tile took (the runtime's call alone: copy in, run, copy out),
 * for the app's per-tile latency line and the benchmark's timed runs. [clockNs] is System::nanoTime on
 * the phone and a scripted clock in the JVM check.
 */
class TimedRunner(private val inner: Runner, private val clockNs: () -> Long = System::nanoTime) : Runner by inner {
    private val times = ArrayList<Double>()

    /** Milliseconds of every run() so far, in call order. */
    val tileMs: List<Double> get() = times

    val lastMs: Double? get() = times.lastOrNull()

    override fun run(input: TileInput): FloatArray {
        val t0 = clockNs()
        val out = inner.run(input)
        times.add((clockNs() - t0) / 1e6)
        return out
    }

    fun reset() = times.clear()

    /** "tile 12/48: 210 ms (mean 205 ms)" for the app's status line. */
    fun summary(done: Int, total: Int): String {
        val last = lastMs ?: return "tile $done/$total"
        return "tile $done/$total: ${"%.0f".format(last)} ms (mean ${"%.0f".format(times.average())} ms)"
    }
}
