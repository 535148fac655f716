import ArgumentParser
import Benchmarks
import Distributed
import Foundation
import PCSformer

/// `pcs-mpi bench infer`: the 8-pass CAM inference of spec §4 on 500×375 images (or --size), through `infer-cam` under mpirun.
struct BenchInferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Multi-scale CAM inference throughput (8 passes per image, 500x375 or --size) at each RANKSxTHREADS layout, with GFLOP/s and peak memory.",
        discussion: """
        Generates a synthetic dataset of 500x375 images (--size), saves a randomly initialised network, counts the FLOPs \
        of one image's 8 passes in this process, measures the OpenBLAS sgemm peak, then runs `infer-cam` under \
        `mpirun -n R --threads T` for each layout and reads its infer-cam-stats.json. Images/s is end to end \
        (decode, pyramid, 8 passes, combination, HDF5 output), the first image included. Run it as one process, \
        from a release build. scripts/bench/bench_infer_torch.py measures PyTorch on the same images.
        """)

    @Option(help: "Network: pc, sp or tiny-pc.")
    var model: ModelVariant = .pc

    @OptionGroup var layouts: BenchLayoutOptions

    @Option(help: "Images per layout.")
    var images: Int = 8

    @Option(help: "Image size WIDTHxHEIGHT (COCO's are about 640x480; the pyramid scales the long side to 500 either way).")
    var size: String = "500x375"

    @Option(help: "Classes present per image (the CAMs combined and saved per image).")
    var classesPerImage: Int = 2

    @Option(help: "Scratch folder (default: a new temporary folder, removed afterwards). The images are in DIR/synth/JPEGImages.")
    var dir: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard images >= 1, (1...20).contains(classesPerImage) else { throw ValidationError("--images must be ≥ 1 and --classes-per-image 1…20") }
        guard dimensions != nil else { throw ValidationError("--size must be WIDTHxHEIGHT with sides 64…4096; got '\(size)'") }
    }

    var dimensions: (width: Int, height: Int)? {
        let parts = size.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ (64...4096).contains($0) }) else { return nil }
        return (parts[0], parts[1])
    }

    func run() throws {
        let world = global.startWorld()
        guard world.size == 1 else { throw ValidationError("bench infer launches mpirun itself; run it without mpirun") }
        let scratch = dir.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("pcs-mpi-bench-infer-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let bench = InferBenchmark(model: model, images: images, classesPerImage: classesPerImage,
                                   width: dimensions!.width, height: dimensions!.height)
        let setup = try bench.prepare(in: scratch, world: world)
        let peaks = MachinePeaks.measure()
        print(String(format: "bench infer: %@, %d images of %@, %d classes each, 8 passes (%.1f GFLOP per image in convolutions and products)",
                     model.rawValue, images, size, classesPerImage, setup.flopsPerImage / 1e9))
        print(peaks.description + "; % FMA is against the FMA peak on the layout's ranks × threads")
        print("layout          images/s   s/image   GFLOP/s   % FMA   % sgemm   peak MiB/rank")
        for (ranks, threads) in layouts.parsed {
            let row = try bench.measure(setup, ranks: ranks, threads: threads, in: scratch)
            let gflops = row.imagesPerSecond * setup.flopsPerImage / 1e9
            print(String(format: "%2d rank × %d thr %9.3f %9.2f %9.0f %6.0f%% %8.0f%% %12.0f", ranks, threads, row.imagesPerSecond,
                         1 / row.imagesPerSecond, gflops, 100 * gflops / FMAPeak.atThreads(ranks * threads),
                         100 * gflops / peaks.sgemm, row.peakMiBPerRank))
        }
    }
}
