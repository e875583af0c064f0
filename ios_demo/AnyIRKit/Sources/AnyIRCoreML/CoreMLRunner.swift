import Accelerate
import AnyIRKit
import CoreML
import Foundation

/// Core ML: a bundle's .mlpackage compiled on the device (MLModel.compileModel(at:)), the compiled
/// model cached by the package's sha256, run on the compute units the user picked. Multiarray I/O in
/// the data type the package states (fp16 packages take and return Float16 arrays).
public final class CoreMLRunner: Runner {
    public enum Units: String, CaseIterable, Identifiable {
        case all, cpuAndGPU, cpuAndNeuralEngine, cpuOnly
        public var id: String { rawValue }
        var mlUnits: MLComputeUnits {
            switch self {
            case .all: return .all
            case .cpuAndGPU: return .cpuAndGPU
            case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
            case .cpuOnly: return .cpuOnly
            }
        }
    }

    public let tileH: Int
    public let tileW: Int
    public let layout = Layout.nchw
    public let inputType = TensorType.float32
    public let units: Units
    public var label: String { "Core ML (\(units.rawValue))" }
    private let model: MLModel
    private let inputName: String
    private let outputName: String
    private let arrayType: MLMultiArrayDataType  // what the package states: float16 (fp16 I/O) or float32

    /// Compiles (or reuses the cached compile of) `package` and loads it for `units`.
    public static func load(package: URL, artifact: ManifestArtifact, units: Units, cacheDir: URL) async throws -> CoreMLRunner {
        let shape = artifact.input.shape
        guard artifact.input.layout == "NCHW", shape.count == 4, shape[0] == 1, shape[1] == 3 else {
            throw AnyIRError("\(artifact.id): input \(artifact.input.layout) \(shape); this app feeds Core ML NCHW multiarrays (build with the default Core ML layout)")
        }
        let compiled = try await compiledModel(package: package, sha256: artifact.sha256, cacheDir: cacheDir)
        let config = MLModelConfiguration()
        config.computeUnits = units.mlUnits
        let model = try await MLModel.load(contentsOf: compiled, configuration: config)
        return try CoreMLRunner(model: model, tileH: shape[2], tileW: shape[3], units: units)
    }

    /// The compiled .mlmodelc for a package, kept under cacheDir/<sha256>.mlmodelc.
    public static func compiledModel(package: URL, sha256: String, cacheDir: URL) async throws -> URL {
        let fm = FileManager.default
        let dest = cacheDir.appendingPathComponent("\(sha256).mlmodelc", isDirectory: true)
        if fm.fileExists(atPath: dest.path) { return dest }
        try fm.createDirectory(at: cacheDir, withIntermediateDirectories: true)
        let tmp = try await MLModel.compileModel(at: package)  // a temporary folder the system may delete
        let staged = cacheDir.appendingPathComponent(".\(sha256).\(UUID().uuidString).mlmodelc", isDirectory: true)
        try fm.moveItem(at: tmp, to: staged)
        if fm.fileExists(atPath: dest.path) {
            try? fm.removeItem(at: staged)  // another load got there first
        } else {
            try fm.moveItem(at: staged, to: dest)
        }
        return dest
    }

    init(model: MLModel, tileH: Int, tileW: Int, units: Units) throws {
        let desc = model.modelDescription
        guard desc.inputDescriptionsByName.count == 1, let first = desc.inputDescriptionsByName.first,
              let outName = desc.outputDescriptionsByName.keys.sorted().first else {
            throw AnyIRError("the Core ML model must take one input and return one output")
        }
        let inName = first.key, inDesc = first.value
        guard let c = inDesc.multiArrayConstraint else {
            throw AnyIRError("the Core ML model's input '\(inName)' is not a multiarray (an image-layout package?)")
        }
        guard c.shape.map(\.intValue) == [1, 3, tileH, tileW] else {
            throw AnyIRError("the Core ML model takes \(c.shape), the manifest says [1, 3, \(tileH), \(tileW)]")
        }
        self.model = model
        self.inputName = inName
        self.outputName = outName
        self.arrayType = c.dataType
        self.tileH = tileH
        self.tileW = tileW
        self.units = units
    }

    public func run(_ tile: TileInput) throws -> [Float] {
        guard case .floats(let nchw) = tile else { throw AnyIRError("Core ML: takes float tiles") }
        let n = 3 * tileH * tileW
        guard nchw.count == n else { throw AnyIRError("Core ML: a tile of \(nchw.count) values, expected \(n)") }
        let shape: [NSNumber] = [1, 3, NSNumber(value: tileH), NSNumber(value: tileW)]
        let input: MLMultiArray
        if arrayType == .float16 {
            input = try MLMultiArray(shape: shape, dataType: .float16)  // contiguous, C order
            input.withUnsafeMutableBytes { ptr, _ in
                nchw.withUnsafeBufferPointer { src in
                    var s = vImage_Buffer(data: UnsafeMutableRawPointer(mutating: src.baseAddress!), height: 1,
                                          width: vImagePixelCount(n), rowBytes: n * 4)
                    var d = vImage_Buffer(data: ptr.baseAddress!, height: 1, width: vImagePixelCount(n), rowBytes: n * 2)
                    _ = vImageConvert_PlanarFtoPlanar16F(&s, &d, vImage_Flags(kvImageNoFlags))
                }
            }
        } else {
            input = try MLMultiArray(shape: shape, dataType: .float32)
            input.withUnsafeMutableBytes { ptr, _ in
                nchw.withUnsafeBytes { src in ptr.copyMemory(from: src) }
            }
        }
        let features = try MLDictionaryFeatureProvider(dictionary: [inputName: MLFeatureValue(multiArray: input)])
        let result = try model.prediction(from: features)
        guard let out = result.featureValue(for: outputName)?.multiArrayValue else {
            throw AnyIRError("Core ML returned no multiarray '\(outputName)'")
        }
        return try CoreMLRunner.floats(out, tileH: tileH, tileW: tileW)
    }

    public func close() {}

    /// A 1 x 3 x H x W output (Float16 or Float32, any strides: the Neural Engine pads rows) as NCHW Float.
    static func floats(_ a: MLMultiArray, tileH h: Int, tileW w: Int) throws -> [Float] {
        guard a.shape.map(\.intValue) == [1, 3, h, w] else {
            throw AnyIRError("Core ML returned shape \(a.shape), expected [1, 3, \(h), \(w)]")
        }
        var out = [Float](repeating: 0, count: 3 * h * w)
        let type = a.dataType
        guard type == .float16 || type == .float32 else { throw AnyIRError("Core ML returned \(type.rawValue)-typed data") }
        a.withUnsafeBytes { raw in
            let st = a.strides.map(\.intValue)
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    for y in 0..<h {
                        let rowStart = c * st[1] + y * st[2]
                        let d = dst.baseAddress! + (c * h + y) * w
                        if type == .float32 {
                            let p = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                            for x in 0..<w { d[x] = p[rowStart + x * st[3]] }
                        } else if st[3] == 1 {
                            var s = vImage_Buffer(data: UnsafeMutableRawPointer(mutating: raw.baseAddress! + rowStart * 2),
                                                  height: 1, width: vImagePixelCount(w), rowBytes: w * 2)
                            var t = vImage_Buffer(data: UnsafeMutableRawPointer(d), height: 1, width: vImagePixelCount(w), rowBytes: w * 4)
                            _ = vImageConvert_Planar16FtoPlanarF(&s, &t, vImage_Flags(kvImageNoFlags))
                        } else {
                            let p = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
                            for x in 0..<w { d[x] = halfToFloat(p[rowStart + x * st[3]]) }
                        }
                    }
                }
            }
        }
        return out
    }

    /// IEEE half (as its bits) to Float; Float16 itself is unavailable on Intel macOS builds of this target.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        var exp = Int((h >> 10) & 0x1f)
        var man = UInt32(h & 0x3ff)
        if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (man << 13)) }
        if exp == 0 {
            if man == 0 { return Float(bitPattern: sign) }
            while man & 0x400 == 0 { man <<= 1; exp -= 1 }  // subnormal: normalize
            exp += 1
            man &= 0x3ff
        }
        return Float(bitPattern: sign | (UInt32(exp + 112) << 23) | (man << 13))
    }
}
