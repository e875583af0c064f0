import AnyIRKit
import ExecuTorch
import Foundation

/// ExecuTorch: a bundle's .pte (the graph delegated to XNNPACK) through the runtime's Swift Module API.
/// The XNNPACK backend and the kernels register themselves only when the app links them with -all_load
/// (project.yml); a .pte runs only on the ExecuTorch release line that wrote it (RuntimeCheck).
public final class ExecuTorchRunner: Runner {
    /// The release of github.com/pytorch/executorch's swiftpm-<version> branch this target is built
    /// against (Package.swift and project.yml pin the same branch; tests/test_ios_sources.py checks all three
    /// against the executorch that writes the bundle's .pte files).
    public static let linkedVersion = "1.5.1"

    public let tileH: Int
    public let tileW: Int
    public let layout: Layout
    public let inputType = TensorType.float32
    public var label: String { "ExecuTorch \(ExecuTorchRunner.linkedVersion) (XNNPACK)" }
    private var module: Module?
    private let shape: [Int]

    public init(pte: URL, artifact: ManifestArtifact) throws {
        let verdict = RuntimeCheck.check(artifact, AppRuntimes(executorch: ExecuTorchRunner.linkedVersion, iosMajor: nil))
        guard verdict.ok else { throw AnyIRError(verdict.message) }
        let s = artifact.input.shape
        layout = try Layout.of(artifact.input.layout)
        guard s.count == 4, s[0] == 1, (layout == .nchw ? s[1] : s[3]) == 3 else {
            throw AnyIRError("\(artifact.id): input \(artifact.input.layout) \(s) is not one 3-channel tile")
        }
        tileH = layout == .nchw ? s[2] : s[1]
        tileW = layout == .nchw ? s[3] : s[2]
        shape = s
        let m = Module(filePath: pte.path)
        do {
            try m.load("forward")  // loads the program and plans the method's memory now, not at the first tile
        } catch {
            throw AnyIRError("\(artifact.id): ExecuTorch \(ExecuTorchRunner.linkedVersion) could not load \(pte.lastPathComponent) "
                + "(\(error.localizedDescription)); is backend_xnnpack linked with -all_load?")
        }
        module = m
    }

    public func run(_ tile: TileInput) throws -> [Float] {
        guard case .floats(let values) = tile else { throw AnyIRError("ExecuTorch: this .pte takes float tiles") }
        guard let module else { throw AnyIRError("ExecuTorch: the runner was closed") }
        guard values.count == shape.reduce(1, *) else { throw AnyIRError("ExecuTorch: a tile of \(values.count) values for shape \(shape)") }
        let output: Tensor<Float> = try module.forward(Tensor<Float>(values, shape: shape))
        let result = output.scalars()
        guard result.count == values.count else { throw AnyIRError("ExecuTorch returned \(result.count) values, expected \(values.count)") }
        return result
    }

    public func close() { module = nil }
}
