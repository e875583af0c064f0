// swift-tools-version:5.9
// AnyIRKit: the app core (Foundation only, so `swift test` runs on Linux too) and the two runners.
// The runners import Apple frameworks / the ExecuTorch package, so they are declared only where the
// manifest is evaluated on Apple hardware: on Linux nothing is fetched and only the core is built.
import PackageDescription

// The ExecuTorch runtime the bundle's .pte files were written with (manifest artifacts[].tools.executorch).
// ExecuTorch publishes its prebuilt xcframeworks on a branch per release: swiftpm-<version>.
let executorchVersion = "1.5.1"

let package = Package(
    name: "AnyIRKit",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "AnyIRKit", targets: ["AnyIRKit"]),
    ],
    targets: [
        .target(name: "AnyIRKit"),
        .testTarget(name: "AnyIRKitTests", dependencies: ["AnyIRKit"]),
    ]
)

#if os(macOS)
package.dependencies += [
    .package(url: "https://github.com/pytorch/executorch.git", branch: "swiftpm-\(executorchVersion)"),
]
package.products += [
    .library(name: "AnyIRCoreML", targets: ["AnyIRCoreML"]),
    .library(name: "AnyIRExecuTorch", targets: ["AnyIRExecuTorch"]),
]
package.targets += [
    .target(name: "AnyIRCoreML", dependencies: ["AnyIRKit"]),
    // Backends and kernels (backend_xnnpack, kernels_optimized, kernels_quantized) and -all_load are
    // linked by the app target (project.yml), as ExecuTorch's iOS guide asks.
    .target(name: "AnyIRExecuTorch", dependencies: [
        "AnyIRKit",
        .product(name: "executorch", package: "executorch"),
    ]),
]
#endif
