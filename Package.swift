// swift-tools-version:6.0
// pcs-mpi: PCSformer (weakly supervised semantic segmentation) as a CPU-cluster data-parallel trainer over MPI.
// Targets and what each may import are laid out in ../shared/DESIGN.md ("Rooms").
import Foundation
import PackageDescription

/// A system-library target: a module map and one shim header over a Debian -dev package.
func systemLibrary(_ name: String, pkgConfig: String? = nil, apt: String) -> Target {
    .systemLibrary(name: name, path: "Sources/\(name)", pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "pcs-mpi",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pcs-mpi", targets: ["pcs-mpi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        systemLibrary("CMPI", pkgConfig: "ompi-c", apt: "libopenmpi-dev"),
        systemLibrary("CDNNL", apt: "libdnnl-dev"),
        systemLibrary("COpenBLAS", pkgConfig: "openblas", apt: "libopenblas-dev"),
        systemLibrary("CHDF5", pkgConfig: "hdf5", apt: "libhdf5-dev"),
        systemLibrary("CPNG", pkgConfig: "libpng", apt: "libpng-dev"),
        systemLibrary("CJPEG", pkgConfig: "libturbojpeg", apt: "libturbojpeg0-dev"),

        // Rooms, bottom to top; each imports only the rooms above it in this list (README "Layout").
        .target(name: "Formats", dependencies: ["CHDF5"]),
        .target(name: "NN", dependencies: ["CDNNL", "COpenBLAS", "Formats"]),
        .target(name: "Imaging", dependencies: ["NN", "Formats", "CPNG", "CJPEG"]),
        .target(name: "Storage", dependencies: ["NN", "Formats"]),
        // C kernels, for loops Swift cannot compile per function for AVX2/F16C; each picks its copy at run time.
        // Half-precision conversion for `--grad-compression fp16` (Sources/CHalf).
        .target(name: "CHalf"),
        // The dense CRF's splat, blur, slice and softmax loops, with an AVX2 copy chosen at run time (Sources/CCRF).
        .target(name: "CCRF"),
        // The FMA-loop peak every benchmark reports against (Sources/CFMA).
        .target(name: "CFMA"),
        .target(name: "Distributed", dependencies: ["NN", "Formats", "CMPI", "CHalf", .product(name: "Yams", package: "Yams")]),
        .target(name: "Segmentation", dependencies: ["NN", "Formats", "Imaging", "Storage", "Distributed", "CCRF"]),
        .target(name: "SyntheticData", dependencies: ["NN", "Formats", "Imaging", "Distributed", "Segmentation"]),
        .target(name: "PCSformer", dependencies: ["NN", "Formats", "Imaging", "Storage", "Distributed", "Segmentation"]),
        .target(name: "DeepLab", dependencies: ["NN", "Formats", "Imaging", "Storage", "Distributed", "Segmentation"]),
        .target(
            name: "Benchmarks",
            dependencies: [
                "NN", "Formats", "Imaging", "Storage", "Distributed", "Segmentation", "SyntheticData", "PCSformer",
                "DeepLab", "COpenBLAS", "CFMA",
            ]),
        .executableTarget(
            name: "pcs-mpi",
            dependencies: [
                "NN", "Formats", "Imaging", "Storage", "Distributed", "Segmentation", "SyntheticData", "PCSformer",
                "DeepLab", "Benchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]),

        // A program that runs the collective checks on every rank; the DistributedTests launch it under `mpirun -n 2`.
        .executableTarget(name: "mpi-checks", dependencies: ["Distributed", "NN", "Formats"], path: "Tests/MPIChecks"),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "NN", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Formats", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "NN", "Formats", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "NN", "Formats", "CHalf", "TestSupport"]),
        .testTarget(
            name: "SegmentationTests",
            dependencies: ["Segmentation", "SyntheticData", "Storage", "Formats", "NN", "Imaging", "CCRF", "TestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(name: "SyntheticDataTests", dependencies: ["SyntheticData", "Segmentation", "NN"]),
        .testTarget(
            name: "PCSformerTests",
            dependencies: ["PCSformer", "Segmentation", "Storage", "Formats", "NN", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "DeepLabTests",
            dependencies: ["DeepLab", "Segmentation", "Storage", "Formats", "NN", "Imaging", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "CLITests", dependencies: ["NN", "Formats", "Storage", "Distributed", "Imaging", "Segmentation", "PCSformer", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)

// The libFuzzer program (Fuzz/Targets), declared only when scripts/fuzz.sh builds it (PCS_MPI_FUZZ=1, its own scratch
// folder, sanitizer flags): the normal build and the tests never compile or link it.
if ProcessInfo.processInfo.environment["PCS_MPI_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "pcs-fuzz", dependencies: ["Formats", "Imaging", "Storage", "Distributed", "Segmentation"], path: "Fuzz/Targets"))
    package.products.append(.executable(name: "pcs-fuzz", targets: ["pcs-fuzz"]))
}
