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
        one process, from a release build. With --hosts N (root; scripts/hosts) each layout runs once on this node \
        and then with its ranks spread over N test hosts (network namespaces, TCP only) for each link shape in \
        --shapes: the efficiency column is then against the same layout on one host, and the bytes each rank \
        all-reduces per update are printed.
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

    @Option(help: "Spread each layout's ranks over this many test hosts (scripts/hosts, as root) after running it on one (0: one host only).")
    var hosts: Int = 0

    @Option(name: [.customLong("shapes"), .customLong("shape")],
            help: "Link shapes for --hosts, comma-separated: none or RATE:DELAY for tc netem (e.g. none,10gbit:0.05ms,1gbit:0.2ms); --shape is the same option.")
    var shapes: String = "none,10gbit:0.05ms,1gbit:0.2ms"

    @Option(help: "Gradients on the wire: none or fp16 (train's --grad-compression).")
    var gradCompression: String = "none"

    @Option(help: "Micro-batches per update (train's --accumulate): one allreduce per K micro-batches.")
    var accumulate: Int = 1

    @Option(help: "Gradient bucket size in MB (train's --bucket-mb): smaller buckets start sending earlier in backward.")
    var bucketMb: Int = 25

    @Option(help: "Scratch folder (default: a new temporary folder, removed afterwards).")
    var dir: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard stage == "pc" || stage == "sp" else { throw ValidationError("--stage must be pc or sp; got '\(stage)'") }
        guard steps >= 2 else { throw ValidationError("--steps must be at least 2 (the first is not timed)") }
        if let bad = layouts.parsed.first(where: { batch % ($0.ranks * accumulate) != 0 }) {
            throw ValidationError("--batch \(batch) does not split over \(bad.ranks) ranks × \(accumulate) micro-batches")
        }
        guard hosts >= 0, accumulate >= 1, bucketMb >= 1 else { throw ValidationError("--hosts must be ≥ 0, --accumulate and --bucket-mb ≥ 1") }
        guard gradCompression == "none" || gradCompression == "fp16" else {
            throw ValidationError("--grad-compression must be none or fp16; got '\(gradCompression)'")
        }
        guard parsedShapes.count == shapes.split(separator: ",").count, !parsedShapes.isEmpty else {
            throw ValidationError("--shapes must be none or RATE:DELAY, comma-separated; got '\(shapes)'")
        }
    }

    var parsedShapes: [TestHostBed.LinkShape] { shapes.split(separator: ",").compactMap { TestHostBed.LinkShape(String($0)) } }

    func run() throws {
        let world = global.startWorld()
        guard world.size == 1 else { throw ValidationError("bench train launches mpirun itself; run it without mpirun") }
        let scratch = dir.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("pcs-mpi-bench-train-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let bench = TrainBenchmark(stage: stage == "sp" ? .sp : .pc, network: model ?? stage, batch: batch, steps: steps,
                                   crop: crop, pair: pair)
        let setup = try bench.prepare(in: scratch, world: world)
        let flops = bench.flopsPerImage()
        let peaks = MachinePeaks.measure()
        print("bench train: stage \(stage), model \(bench.network), global batch \(batch), crop \(crop)\(stage == "pc" ? "/\(pair)" : ""), \(steps - 1) timed steps")
        print(String(format: "%.1f GFLOP per image (convolutions and products, counted in this process)", flops / 1e9))
        print(peaks.description + "; % FMA is against the FMA peak on the layout's ranks × threads")
        let extra = ["--grad-compression", gradCompression, "--accumulate", "\(accumulate)", "--bucket-mb", "\(bucketMb)"]
        let bed = hosts > 0 ? try TestHostBed(count: hosts) : nil
        if bed != nil {
            let bytes = Double(bench.trainableParameters() * (gradCompression == "fp16" ? 2 : 4))
            print(String(format: "each rank all-reduces %.1f MB of gradients per update (%@), sending about 2(R−1)/R of it in a ring",
                         bytes / 1e6, gradCompression == "fp16" ? "half precision" : "float32"))
        }
        print("layout                                    images/s   step s   exposed comm   efficiency   GFLOP/s   % FMA   % sgemm")
        func report(_ what: String, _ row: TrainBenchmark.Row, against baseline: Double) {
            let gflops = row.imagesPerSecond * flops / 1e9
            print(what.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: " %8.3f %8.2f %11.1f%% %11.0f%% %9.0f %6.0f%% %8.0f%%",
                  row.imagesPerSecond, row.stepSeconds, 100 * row.communicationShare, 100 * row.imagesPerSecond / baseline, gflops,
                  100 * gflops / FMAPeak.atThreads(row.ranks * row.threads), 100 * gflops / peaks.sgemm))
        }
        var firstLayout: Double?
        for (ranks, threads) in layouts.parsed {
            let row = try bench.measure(setup, ranks: ranks, threads: threads, in: scratch, extra: extra)
            // Without hosts the first layout is the reference of the others (same cores, another split); with
            // hosts each layout on one host is the reference of its multi-host rows.
            let baseline = bed == nil ? (firstLayout ?? row.imagesPerSecond) : row.imagesPerSecond
            if firstLayout == nil { firstLayout = row.imagesPerSecond }
            report("\(ranks) rank × \(threads) thr, 1 host", row, against: baseline)
            guard let bed, ranks > 1 else { continue }
            for shape in parsedShapes {
                try bed.shape(shape)
                defer { try? bed.shape(TestHostBed.LinkShape("none")!) }
                let spread = try bench.measure(setup, ranks: ranks, threads: threads, in: scratch, launcher: bed.launcher, extra: extra)
                report("\(ranks) rank × \(threads) thr, \(bed.count) hosts \(shape)", spread, against: row.imagesPerSecond)
            }
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
