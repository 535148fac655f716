// swift-tools-version:6.0
// pcs-mpi: PCSformer (weakly supervised semantic segmentation) as a CPU-cluster data-parallel trainer over MPI.
// Targets and what each may import are laid out in ../shared/DESIGN.md ("Rooms").
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

        .target(name: "NN", dependencies: ["CDNNL", "COpenBLAS", "CHDF5"]),
        .target(name: "Imaging", dependencies: ["NN", "CPNG", "CJPEG"]),
        .target(name: "Distributed", dependencies: ["NN", "CMPI", "CHDF5", .product(name: "Yams", package: "Yams")]),
        .target(name: "Segmentation", dependencies: ["NN", "Imaging", "Distributed"]),
        .target(name: "PCSformer", dependencies: ["NN", "Imaging", "Distributed", "Segmentation"]),
        .executableTarget(
            name: "pcs-mpi",
            dependencies: [
                "NN", "Imaging", "Distributed", "Segmentation", "PCSformer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]),

        // A program that runs the collective checks on every rank; the DistributedTests launch it under `mpirun -n 2`.
        .executableTarget(name: "mpi-checks", dependencies: ["Distributed", "NN"], path: "Tests/MPIChecks"),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "NNTests", dependencies: ["NN", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TestSupport"]),
        .testTarget(name: "SegmentationTests", dependencies: ["Segmentation", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "PCSformerTests", dependencies: ["PCSformer", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "CLITests", dependencies: ["NN", "Distributed", "Imaging", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
