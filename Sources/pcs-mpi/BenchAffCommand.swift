import ArgumentParser
import Benchmarks
import Distributed
import Foundation
import NN

/// `pcs-mpi bench aff`: the train-aff step per layout and the random walk per image size, beside PyTorch's.
struct BenchAffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aff",
        abstract: "AffinityNet training (train-aff under mpirun per layout) and the random walk (500x375, 640x480), against PyTorch.",
        discussion: """
        Training: generated 500x375 images with box-shaped la/ha maps, `train-aff --model aff` (ResNet-38d, crop 448, \
        global batch 8, frozen BatchNorm, the affinity losses, SGD) under `mpirun -n R --threads T` for each layout: \
        images/s over the steps after the first, GFLOP/s against the OpenBLAS sgemm peak measured here, peak memory \
        per rank. The walk: infer-aff's per-image work between AffinityNet and the CRF (pooling, the sparse walk \
        V·T^128, upsampling, argmax) at each thread count. For PyTorch on the same cores run \
        `python scripts/bench/bench_aff_torch.py train --upstream PSA --json T.json` and \
        `... walk --upstream PSA --save-inputs DIR --json W.json` (upstream PSA's own code) and pass \
        --torch-train T.json --walk-inputs DIR --torch-walk W.json: the ratios are printed, and the walk's labels are \
        compared with upstream's dense walk on the same inputs. Run it as one process, from a release build.
        """)

    @Option(help: "Network: aff or tiny-aff.")
    var model: String = "aff"

    @OptionGroup var layouts: BenchLayoutOptions

    @Option(help: "Global batch (a multiple of every layout's rank count).")
    var batch: Int = 8

    @Option(help: "Training steps per layout (the first is not timed).")
    var steps: Int = 3

    @Option(help: "Crop side (a multiple of 8).")
    var crop: Int = 448

    @Option(help: "Thread counts of the walk, comma-separated.")
    var walkThreads: String = "1,2"

    @Option(help: "Timed walks per size and thread count (after one untimed).")
    var walkRepeats: Int = 10

    @Option(help: "Walk inputs saved by bench_aff_torch.py walk --save-inputs (default: generated).")
    var walkInputs: String?

    @Option(help: "PyTorch's training results (JSON from bench_aff_torch.py train --json).")
    var torchTrain: String?

    @Option(help: "PyTorch's walk results (JSON from bench_aff_torch.py walk --json).")
    var torchWalk: String?

    @Flag(help: "Only the random walk.")
    var walkOnly = false

    @Option(help: "Scratch folder (default: a new temporary folder, removed afterwards).")
    var dir: String?

    @OptionGroup var global: GlobalOptions

    var parsedWalkThreads: [Int] { walkThreads.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard model == "aff" || model == "tiny-aff" else { throw ValidationError("--model must be aff or tiny-aff; got '\(model)'") }
        guard steps >= 2, walkRepeats >= 1 else { throw ValidationError("--steps must be at least 2 (the first is not timed), --walk-repeats at least 1") }
        guard crop % 8 == 0, crop >= 72 else { throw ValidationError("--crop must be a multiple of 8 of at least 72") }
        if let bad = layouts.parsed.first(where: { batch % $0.ranks != 0 }) {
            throw ValidationError("--batch \(batch) does not split over \(bad.ranks) ranks")
        }
        guard !parsedWalkThreads.isEmpty, parsedWalkThreads.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--walk-threads must be positive integers, e.g. 1,2; got '\(walkThreads)'")
        }
    }

    func run() throws {
        let world = global.startWorld()
        guard world.size == 1 else { throw ValidationError("bench aff launches mpirun itself; run it without mpirun") }
        let torchTrain = try TorchRow.load(torchTrain, script: "bench_aff_torch.py"), torchWalk = try TorchRow.load(torchWalk, script: "bench_aff_torch.py")
        if !walkOnly { try benchTraining(world: world, torch: torchTrain) }
        try benchWalk(torch: torchWalk)
    }

    func benchTraining(world: Communicator, torch: [TorchRow]) throws {
        let scratch = dir.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("pcs-mpi-bench-aff-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let bench = AffinityTrainBenchmark(network: model, batch: batch, steps: steps, crop: crop)
        let setup = try bench.prepare(in: scratch, world: world)
        let peaks = MachinePeaks.measure()
        var rows: [AffinityTrainBenchmark.Row] = []
        for (ranks, threads) in layouts.parsed { rows.append(try bench.measure(setup, ranks: ranks, threads: threads, in: scratch)) }
        let flops = bench.flopsPerImage()
        print("bench aff: train-aff, model \(model), global batch \(batch), crop \(crop), \(steps - 1) timed steps")
        print(String(format: "%.1f GFLOP per image (convolutions and products, counted in this process)", flops / 1e9))
        print(peaks.description + "; % FMA is against the FMA peak on the layout's ranks × threads")
        printTrainLayoutTable(rows, layouts: layouts.parsed, flopsPerImage: flops, peak: peaks.sgemm, torch: torch)
    }

    func benchWalk(torch: [TorchRow]) throws {
        let bench = RandomWalkBenchmark(repeats: walkRepeats)
        print("bench aff: random walk (infer-aff between AffinityNet and the CRF), \(walkInputs ?? "generated inputs")")
        print("size       threads   images/s   ms/image" + (walkInputs == nil ? "" : "   labels = upstream's") + (torch.isEmpty ? "" : "   vs PyTorch dense walk (same threads)"))
        for size in RandomWalkBenchmark.sizes {
            let inputs = try walkInputs.map { try RandomWalkBenchmark.Inputs.load(URL(fileURLWithPath: $0), width: size.width, height: size.height) }
                ?? .generated(width: size.width, height: size.height)
            for threads in parsedWalkThreads {
                let row = bench.measure(inputs, threads: threads)
                var line = String(format: "%4dx%-4d %8d %10.2f %10.2f", size.width, size.height, threads, row.imagesPerSecond, 1000 / row.imagesPerSecond)
                if let agreement = row.agreement { line += String(format: " %17.3f %%", 100 * agreement) }
                if let t = torch.first(where: { $0.what == "walk \(size.width)x\(size.height)" && $0.threads == threads }) {
                    line += String(format: "   %.0fx (%.3f images/s)", row.imagesPerSecond / t.images_per_s, t.images_per_s)
                }
                print(line)
            }
        }
        print(String(format: "peak resident memory of this process %.0f MiB", PeakMemory.residentMiB().own))
    }
}
