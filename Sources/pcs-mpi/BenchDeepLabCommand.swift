import ArgumentParser
import Benchmarks
import Distributed
import Foundation
import NN

/// `pcs-mpi bench deeplab`: the DeepLab-v2 training update per layout and whole-image inference per thread count,
/// beside deeplab-pytorch's own model in PyTorch.
struct BenchDeepLabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deeplab",
        abstract: "DeepLab-v2 training (train-deeplab under mpirun per layout) and whole-image MSC inference, against PyTorch.",
        discussion: """
        Training: generated 500x375 images with their masks, `train-deeplab --model deeplab` (ResNet-101 + ASPP from \
        random weights, MSC, frozen BatchNorm, crop 321, learning rate --lr, global batch 10: 5 × 2 micro-batches on 1 rank, 5 per rank \
        on 2) under `mpirun -n R --threads T` for each layout: images/s over the updates after the first (data \
        loading included), GFLOP/s against the OpenBLAS sgemm peak measured in this run, peak memory per rank. \
        Inference: infer-deeplab's prediction of one 500x375 image without the CRF (MSC max, bilinear upsampling, \
        softmax, argmax) in this process at each thread count: images/s, GFLOP/s against the sgemm peak at that \
        thread count, and this process's peak memory after it. For PyTorch on the same cores run \
        `python3 scripts/bench/bench_deeplab_torch.py train --upstream DEEPLAB_PYTORCH --json T.json` and \
        `... infer --upstream DEEPLAB_PYTORCH --json I.json` (deeplab-pytorch's own DeepLabV2_ResNet101_MSC) and pass \
        --torch-train T.json --torch-infer I.json: the speed and memory ratios are printed. Run it as one process, \
        from a release build; `--model tiny-deeplab --crop 64 --size 96x72 --batch 4 --layouts 1x1` runs in seconds.
        """)

    @Option(help: "Network: deeplab (ResNet-101, 21 classes) or tiny-deeplab.")
    var model: String = "deeplab"

    @OptionGroup var layouts: BenchLayoutOptions

    @Option(help: "Global batch of an update (a multiple of every layout's rank count); each rank's share runs as 2 micro-batches when even.")
    var batch: Int = 10

    @Option(help: "Training updates per layout (the first is not timed).")
    var steps: Int = 3

    @Option(help: "Training crop side (at least 16).")
    var crop: Int = 321

    @Option(help: "Learning rate of the backbone (ASPP 10× and 20×). From random weights with frozen BatchNorm, upstream's 2.5e-4 makes the loss NaN at the second update; the rate changes no work.")
    var lr: Float = 1e-9

    @Option(help: "Inference image size WxH (the generated 500x375 image, resized when different).")
    var size: String = "500x375"

    @Option(help: "Thread counts of inference, comma-separated.")
    var inferThreads: String = "1,2"

    @Option(help: "Timed predictions per thread count (after one untimed).")
    var inferRepeats: Int = 3

    @Option(help: "PyTorch's training results (JSON from bench_deeplab_torch.py train --json).")
    var torchTrain: String?

    @Option(help: "PyTorch's inference results (JSON from bench_deeplab_torch.py infer --json).")
    var torchInfer: String?

    @Flag(help: "Only training.")
    var trainOnly = false

    @Flag(help: "Only inference.")
    var inferOnly = false

    @Option(help: "Scratch folder (default: a new temporary folder, removed afterwards).")
    var dir: String?

    @OptionGroup var global: GlobalOptions

    var parsedInferThreads: [Int] { inferThreads.split(separator: ",").compactMap { Int($0) } }

    var parsedSize: (width: Int, height: Int)? {
        let p = size.split(separator: "x").compactMap { Int($0) }
        return p.count == 2 && p[0] >= 8 && p[1] >= 8 ? (p[0], p[1]) : nil
    }

    func validate() throws {
        guard model == "deeplab" || model == "tiny-deeplab" else { throw ValidationError("--model must be deeplab or tiny-deeplab; got '\(model)'") }
        guard steps >= 2, inferRepeats >= 1 else { throw ValidationError("--steps must be at least 2 (the first is not timed), --infer-repeats at least 1") }
        guard crop >= 16 else { throw ValidationError("--crop must be at least 16") }
        guard batch >= 1, lr > 0 else { throw ValidationError("--batch must be at least 1 and --lr positive") }
        if let bad = layouts.parsed.first(where: { batch % $0.ranks != 0 }) {
            throw ValidationError("--batch \(batch) does not split over \(bad.ranks) ranks")
        }
        guard parsedSize != nil else { throw ValidationError("--size must be WxH with both at least 8, e.g. 500x375; got '\(size)'") }
        guard !parsedInferThreads.isEmpty, parsedInferThreads.count == inferThreads.split(separator: ",").count,
              parsedInferThreads.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--infer-threads must be positive integers, e.g. 1,2; got '\(inferThreads)'")
        }
        guard !(trainOnly && inferOnly) else { throw ValidationError("--train-only and --infer-only exclude each other") }
    }

    func run() throws {
        let world = global.startWorld()
        guard world.size == 1 else { throw ValidationError("bench deeplab launches mpirun itself; run it without mpirun") }
        let torchTrain = try TorchRow.load(torchTrain, script: "bench_deeplab_torch.py")
        let torchInfer = try TorchRow.load(torchInfer, script: "bench_deeplab_torch.py")
        let scratch = dir.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("pcs-mpi-bench-deeplab-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let train = DeepLabTrainBenchmark(network: model, batch: batch, steps: steps, crop: crop, learningRate: lr)
        let shards = try train.prepare(in: scratch, world: world)
        let peaks = MachinePeaks.measure()
        print("bench deeplab: model \(model); " + peaks.description)
        let peak = peaks.sgemm
        // Inference first: this process's peak memory is then the prediction's (training runs in children).
        if !trainOnly { try benchInference(shards: shards, torch: torchInfer) }
        if !inferOnly { try benchTraining(train, shards: shards, in: scratch, peak: peak, torch: torchTrain) }
    }

    func benchInference(shards: URL, torch: [TorchRow]) throws {
        let (width, height) = parsedSize!
        let bench = DeepLabInferBenchmark(network: model, repeats: inferRepeats)
        let image = try DeepLabInferBenchmark.image(from: shards, width: width, height: height)
        let rows = try bench.measure(bench.makePredictor(), image: image, threadCounts: parsedInferThreads)
        let memory = PeakMemory.residentMiB().own
        print("bench deeplab: inference \(width)x\(height) (whole image, MSC max, bilinear, softmax, argmax; no CRF), \(inferRepeats) timed per thread count")
        print(String(format: "%.1f GFLOP per image (convolutions and products); peak resident memory of this process %.0f MiB",
                     (rows.first?.flopsPerImage ?? 0) / 1e9, memory))
        print("threads   images/s   s/image   GFLOP/s   % FMA   % sgemm (same threads)" + (torch.isEmpty ? "" : "   vs PyTorch (same threads)"))
        let saved = ComputeThreads.current
        defer { ComputeThreads.configure(saved) }
        for row in rows {
            ComputeThreads.configure(row.threads)
            let gflops = row.imagesPerSecond * row.flopsPerImage / 1e9, peak = SgemmPeak.measure()
            var line = String(format: "%7d %10.3f %9.2f %9.0f %6.0f%% %8.0f%% of %.0f", row.threads, row.imagesPerSecond,
                              1 / row.imagesPerSecond, gflops, 100 * gflops / FMAPeak.atThreads(row.threads),
                              100 * gflops / peak, peak)
            if let t = torch.first(where: { $0.what == "infer \(width)x\(height)" && $0.threads == row.threads }) {
                line += "   " + t.comparison(imagesPerSecond: row.imagesPerSecond, peakMiB: memory)
            }
            print(line)
        }
    }

    func benchTraining(_ bench: DeepLabTrainBenchmark, shards: URL, in scratch: URL, peak: Double, torch: [TorchRow]) throws {
        let rows = try layouts.parsed.map { try bench.measure(shards: shards, ranks: $0.ranks, threads: $0.threads, in: scratch) }
        let flops = bench.flopsPerImage()
        let splits = layouts.parsed.map { "\($0.ranks) rank(s): \(batch / $0.ranks / bench.accumulate(ranks: $0.ranks)) × \(bench.accumulate(ranks: $0.ranks))" }
        print("bench deeplab: train-deeplab, global batch \(batch) (\(splits.joined(separator: ", ")) per rank), crop \(crop), MSC, frozen BatchNorm, \(steps - 1) timed updates")
        print(String(format: "%.1f GFLOP per image (convolutions and products, counted in this process)", flops / 1e9))
        printTrainLayoutTable(rows, layouts: layouts.parsed, flopsPerImage: flops, peak: peak, torch: torch)
    }
}
