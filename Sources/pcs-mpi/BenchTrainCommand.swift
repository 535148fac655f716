import ArgumentParser
import Benchmarks
import Distributed
import Foundation
import NN

struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput at 1 rank × N threads and N ranks × 1 thread (through mpirun), with communication share.",
        discussion: """
        Generates a synthetic dataset (500x375 images), then runs `train-pc` (or `train-sp`) under \
        `mpirun -n R --threads T` for each layout in --layouts and reads its metrics.jsonl: images/s (steps after \
        the first), the share of step time spent waiting for gradient communication that backward did not hide, \
        the scaling efficiency relative to the first layout (same cores, different split), GFLOP/s against the \
        OpenBLAS sgemm peak measured here (the FLOPs of one image's step counted in this process), and the peak \
        memory of the largest rank over the layouts. --stage sp trains \
        on random sub-category labels (one bit per present class) and also times feature extraction (512x512, \
        this process's threads) and the k-means of one 4,155 × 1,024 class (VOC's person) with k = 10. Run it as \
        one process, from a release build.
        """)

    @Option(help: "Training stage: pc or sp.")
    var stage: String = "pc"

    @Option(help: "Network: pc or tiny-pc (sp or tiny-sp with --stage sp; default: the stage's Conformer-S).")
    var model: String?

    @OptionGroup var layouts: BenchLayoutOptions

    @Option(help: "Global batch (a multiple of every layout's rank count).")
    var batch: Int = 2

    @Option(help: "Steps per layout (the first is not timed).")
    var steps: Int = 3

    @Option(help: "Crop and pair sides.")
    var crop: Int = 512
    @Option(help: "Side of the cross-scale pair.")
    var pair: Int = 224

    @Option(help: "Scratch folder (default: a new temporary folder, removed afterwards).")
    var dir: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard stage == "pc" || stage == "sp" else { throw ValidationError("--stage must be pc or sp; got '\(stage)'") }
        guard steps >= 2 else { throw ValidationError("--steps must be at least 2 (the first is not timed)") }
        if let bad = layouts.parsed.first(where: { batch % $0.ranks != 0 }) {
            throw ValidationError("--batch \(batch) does not split over \(bad.ranks) ranks")
        }
    }

    func run() throws {
        let world = global.startWorld()
        guard world.size == 1 else { throw ValidationError("bench train launches mpirun itself; run it without mpirun") }
        let scratch = dir.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("pcs-mpi-bench-train-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let bench = TrainBenchmark(stage: stage == "sp" ? .sp : .pc, network: model ?? stage, batch: batch, steps: steps,
                                   crop: crop, pair: pair)
        let setup = try bench.prepare(in: scratch, world: world)
        let flops = bench.flopsPerImage()
        let peak = SgemmPeak.measure()
        print("bench train: stage \(stage), model \(bench.network), global batch \(batch), crop \(crop)\(stage == "pc" ? "/\(pair)" : ""), \(steps - 1) timed steps")
        print(String(format: "%.1f GFLOP per image (convolutions and products, counted in this process); sgemm peak %.0f GFLOP/s", flops / 1e9, peak))
        print("layout        images/s   step s   exposed comm   efficiency   GFLOP/s   % sgemm")
        var baseline: Double?
        for (ranks, threads) in layouts.parsed {
            let row = try bench.measure(setup, ranks: ranks, threads: threads, in: scratch)
            let efficiency = baseline.map { row.imagesPerSecond / $0 } ?? 1
            if baseline == nil { baseline = row.imagesPerSecond }
            let gflops = row.imagesPerSecond * flops / 1e9
            print(String(format: "%2d rank × %d thr %8.3f %8.2f %11.1f%% %11.0f%% %9.0f %8.0f%%", ranks, threads, row.imagesPerSecond,
                         row.stepSeconds, 100 * row.communicationShare, 100 * efficiency, gflops, 100 * gflops / peak))
        }
        // The kernel keeps one figure for all finished children: the largest rank of any layout.
        print(String(format: "peak resident memory of the largest rank over the layouts: %.0f MiB", PeakMemory.residentMiB().children))
        guard stage == "sp" else { return }
        print(String(format: "extract-features (512x512, 1 rank, this process's threads): %.2f images/s", try bench.featureExtractionRate(setup)))
        print(KMeansBenchmark.run())
        if dir != nil {
            let matrix = scratch.appendingPathComponent("kmeans-matrix.h5")
            try KMeansBenchmark.writeMatrix(matrix.path)
            print("scikit-learn on the same matrix: python scripts/bench/bench_kmeans_sklearn.py --matrix \(matrix.path) --threads \(ComputeThreads.current)")
        }
    }
}
