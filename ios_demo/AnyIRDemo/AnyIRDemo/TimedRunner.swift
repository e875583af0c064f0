import AnyIRKit
import Foundation

/// Wraps a runner to time each tile (the runner's call alone, without pre/post-processing or blend):
/// the per-tile latency the screen and the benchmark show.
final class TimedRunner: Runner {
    let inner: Runner
    private(set) var lastMs = 0.0
    private(set) var times: [Double] = []

    init(_ inner: Runner) { self.inner = inner }

    var tileH: Int { inner.tileH }
    var tileW: Int { inner.tileW }
    var layout: Layout { inner.layout }
    var inputType: TensorType { inner.inputType }
    var label: String { inner.label }

    func run(_ input: TileInput) throws -> [Float] {
        let t0 = ProcessInfo.processInfo.systemUptime
        defer {
            lastMs = (ProcessInfo.processInfo.systemUptime - t0) * 1000
            times.append(lastMs)
        }
        return try inner.run(input)
    }

    func close() { inner.close() }
}
