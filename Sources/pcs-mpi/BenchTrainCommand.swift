import ArgumentParser
import Distributed
import Foundation
import NN
import Imaging
import PCSformer
import Segmentation

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
        let shards = try BenchDataset.make(in: scratch, images: 4 * batch * steps, seed: 5, shards: 4, world: world)

        let executable = MPILauncher.currentExecutable
        let network = model ?? stage
        var stageArguments = ["train-pc", "--pair", "\(pair)"]
        if stage == "sp" {
            let labels = scratch.appendingPathComponent("sub_labels.h5")
            try randomSubLabels(try ShardedDataset(directory: shards, name: "train"), k: 10).write(to: labels)
            stageArguments = ["train-sp", "--labels", labels.path]
        }
        let variant = ModelVariant(rawValue: network) ?? (stage == "sp" ? .sp : .pc)
        let flops = flopsPerImage(variant)
        let peak = SgemmPeak.measure()
        print("bench train: stage \(stage), model \(network), global batch \(batch), crop \(crop)\(stage == "pc" ? "/\(pair)" : ""), \(steps - 1) timed steps")
        print(String(format: "%.1f GFLOP per image (convolutions and products, counted in this process); sgemm peak %.0f GFLOP/s", flops / 1e9, peak))
        print("layout        images/s   step s   exposed comm   efficiency   GFLOP/s   % sgemm")
        var baseline: Double?
        for (ranks, threads) in layouts.parsed {
            let run = scratch.appendingPathComponent("run-\(ranks)x\(threads)")
            try MPILauncher.run(executable, ranks: ranks, arguments: stageArguments + ["--data", shards.path, "--out", run.path, "--model", network,
                                                               "--batch", "\(batch)", "--crop", "\(crop)",
                                                               "--epochs", "1000", "--max-steps", "\(steps)", "--threads", "\(threads)",
                                                               "--log-level", "warning"])
            let rows = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
                .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let timed = rows.dropFirst()
            let rates = timed.compactMap { $0["images_per_second"] as? Double }
            let exposed = timed.compactMap { $0["exposed_communication_s"] as? Double }
            guard !rates.isEmpty else { throw ValidationError("no timed steps in \(run.path)/metrics.jsonl") }
            let rate = rates.reduce(0, +) / Double(rates.count)
            let stepSeconds = Double(batch) / rate
            let commShare = exposed.reduce(0, +) / Double(max(exposed.count, 1)) / stepSeconds
            let efficiency = baseline.map { rate / $0 } ?? 1
            if baseline == nil { baseline = rate }
            let gflops = rate * flops / 1e9
            print(String(format: "%2d rank × %d thr %8.3f %8.2f %11.1f%% %11.0f%% %9.0f %8.0f%%", ranks, threads, rate, stepSeconds,
                         100 * commShare, 100 * efficiency, gflops, 100 * gflops / peak))
        }
        // The kernel keeps one figure for all finished children: the largest rank of any layout.
        print(String(format: "peak resident memory of the largest rank over the layouts: %.0f MiB", IOBenchmark.peakMemoryMiB().children))
        if stage == "sp" { try benchmarkFeaturesAndClustering(shards, network: network, scratch: scratch) }
    }

    /// The FLOPs of one image's training step (PC: the crop and its pair; SP: the crop), forward and backward,
    /// counted by running it once here; multiplied by images/s it gives the layouts' GFLOP/s.
    func flopsPerImage(_ variant: ModelVariant) -> Double {
        let conformer = Conformer(variant.config(k: 10), seed: 1)
        conformer.setBatchNormMode(.training)
        let c = conformer.config
        let labels = Tensor(shape: [1, c.numClasses - 1])
        let before = FlopCounter.count
        if stage == "sp" {
            let out = conformer(Tensor(shape: [1, 3, crop, crop]), training: true)
            SPTrainingStage.loss(out, labels: labels, subLabels: Tensor(shape: [1, c.subClasses]), subLossWeight: 1).backward()
        } else {
            PCTrainingStage.loss(conformer, crops: Tensor(shape: [1, 3, crop, crop]), pairs: Tensor(shape: [1, 3, pair, pair]), labels: labels).backward()
        }
        return FlopCounter.count - before
    }

    /// One bit per present class at a random cluster: what `cluster` would give, for timing only.
    func randomSubLabels(_ dataset: ShardedDataset, k: Int) throws -> SubCategoryLabels {
        let labels = try dataset.ids.map { try dataset.locate($0).reader.label($0) }
        var rng = SeededRandom(seed: 11)
        let clusters = (0..<labels[0].count).map { c in labels.filter { $0[c] == 1 }.map { _ in Int(rng.next() % UInt64(k)) } }
        return try SubCategoryLabels.build(ids: dataset.ids, imageLabels: labels, clusters: clusters, k: k, upstreamCompatible: false)
    }

    /// Feature extraction in this process (the PC network of the stage's size) and the k-means of one VOC-sized class.
    func benchmarkFeaturesAndClustering(_ shards: URL, network: String, scratch: URL) throws {
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let conformer = Conformer((network.hasPrefix("tiny") ? ModelVariant.tinyPC : .pc).config(classes: 21), seed: 1)
        conformer.setBatchNormMode(.inference)
        let extraction = FeatureExtraction(model: conformer)
        let images = try dataset.ids.prefix(4).map { try ImageFile.decodeRGB(try dataset.record($0).image, name: $0) }
        _ = extraction(images[0])
        let start = Date()
        for image in images { _ = extraction(image) }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "extract-features (512x512, 1 rank, this process's threads): %.2f images/s", Double(images.count) / seconds))
        print(KMeansBenchmark.run())
        if dir != nil {
            let matrix = scratch.appendingPathComponent("kmeans-matrix.h5")
            try KMeansBenchmark.writeMatrix(matrix.path)
            print("scikit-learn on the same matrix: python scripts/bench/bench_kmeans_sklearn.py --matrix \(matrix.path) --threads \(ComputeThreads.current)")
        }
    }
}
