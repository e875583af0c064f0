import Foundation

// Mirrors android_demo/core Runner.kt.

/// Memory order of one tile: NCHW (3 planes; .pte, Core ML) or NHWC (interleaved; the default .tflite).
public enum Layout: String {
    case nchw = "NCHW"
    case nhwc = "NHWC"

    /// The manifest's artifact.input.layout; "image" (a Core ML image input) is not fed by this core.
    public static func of(_ name: String) throws -> Layout {
        guard let l = Layout(rawValue: name) else { throw AnyIRError("layout \"\(name)\" cannot be fed by this app (NCHW or NHWC)") }
        return l
    }
}

/// What a model's input tensor holds: float values in [0, 1], or int8 with the record's scale and zero point.
public enum TensorType: Equatable {
    case float32
    case int8(scale: Float, zeroPoint: Int)
}

/// One tile as the runner's input tensor wants it, already in the runner's layout.
public enum TileInput {
    case floats([Float])
    case int8s([Int8])
}

/// One loaded artifact (an ExecuTorch Module, a Core ML model, a replay). The tiled path does the
/// numerics (pre-processing, int8 quantization, blend) so every runner is a thin copy in and out, and
/// those rules are tested once, here. Python counterpart: conversion.base.Runner (run_nchw).
public protocol Runner: AnyObject {
    var tileH: Int { get }
    var tileW: Int { get }
    var layout: Layout { get }
    var inputType: TensorType { get }
    /// What ran it, for the UI and profile results ("ExecuTorch 1.5.1 (XNNPACK)", "Core ML (all)", "replay").
    var label: String { get }
    /// One tile in, one tile out: 3 x tileH x tileW Float values in `layout`, in the value range.
    func run(_ input: TileInput) throws -> [Float]
    func close()
}

/// Replays recorded tile outputs in plan order (the vectors' tile_outputs_<id>.f32, N x 3 x H x W
/// NCHW): the whole tiled path checked without a runtime. With `expectedInputs` (tile_inputs.f32) it
/// also refuses a tile that differs from the one recorded, which names a plan-order or pre-processing bug.
public final class ReplayRunner: Runner {
    public let tileH: Int
    public let tileW: Int
    public let layout = Layout.nchw
    public let inputType = TensorType.float32
    public let label = "replay"
    private let outputs: [Float]
    private let expectedInputs: [Float]?
    private let tileSize: Int
    /// Tiles recorded, and tiles handed out so far.
    public let tiles: Int
    public private(set) var calls = 0

    public init(tileH: Int, tileW: Int, outputs: [Float], expectedInputs: [Float]? = nil) {
        self.tileH = tileH
        self.tileW = tileW
        self.outputs = outputs
        self.expectedInputs = expectedInputs
        tileSize = 3 * tileH * tileW
        tiles = outputs.count / tileSize
        precondition(outputs.count % tileSize == 0, "replay: \(outputs.count) values is not a whole number of 3x\(tileH)x\(tileW) tiles")
        precondition(expectedInputs == nil || expectedInputs!.count == outputs.count, "replay: inputs and outputs differ in size")
    }

    public func run(_ input: TileInput) throws -> [Float] {
        guard case .floats(let values) = input else { throw AnyIRError("replay: takes float tiles") }
        if values.count != tileSize { throw ImageError("replay: a tile of \(values.count) values, expected \(tileSize)") }
        if calls >= tiles { throw AnyIRError("replay: tile \(calls + 1) asked for, \(tiles) recorded") }
        let from = calls * tileSize
        if let expected = expectedInputs {
            for i in 0..<tileSize where values[i] != expected[from + i] {
                throw AnyIRError("replay: tile \(calls) differs from the recorded input at value \(i) "
                    + "(\(values[i]) vs \(expected[from + i])): plan order or pre-processing")
            }
        }
        calls += 1
        return Array(outputs[from..<(from + tileSize)])
    }

    public func close() {}
}
