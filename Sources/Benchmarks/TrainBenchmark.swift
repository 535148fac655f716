import Distributed
import Formats
import Foundation
import Imaging
import NN
import PCSformer
import Segmentation
import Storage

/// `bench train`: `train-pc` (or `train-sp`) on generated 500×375 images under `mpirun -n R --threads T` for each
/// layout, read back from its metrics.jsonl: images/s over the steps after the first, and the share of step time
/// spent waiting for gradient communication that backward did not hide. The FLOPs of one image's step are counted
/// in this process, so that images/s becomes GFLOP/s.
public struct TrainBenchmark {
    public enum Stage: String { case pc, sp }

    public var stage: Stage
    /// A `--model` name of the stage's command.
    public var network: String
    public var batch: Int
    public var steps: Int
    public var crop: Int
    public var pair: Int

    public init(stage: Stage, network: String, batch: Int, steps: Int, crop: Int, pair: Int) {
        self.stage = stage
        self.network = network
        self.batch = batch
        self.steps = steps
        self.crop = crop
        self.pair = pair
    }

    /// The dataset every layout trains on and the stage's arguments (SP: random sub-category labels).
    public struct Setup {
        public var shards: URL
        public var stageArguments: [String]
    }

    public struct Row {
        public var ranks: Int, threads: Int
        public var imagesPerSecond: Double
        public var stepSeconds: Double
        /// Exposed communication over step time.
        public var communicationShare: Double
    }

    public func prepare(in scratch: URL, world: Communicator) throws -> Setup {
        let shards = try BenchDataset.make(in: scratch, images: 4 * batch * steps, seed: 5, shards: 4, world: world)
        switch stage {
        case .pc:
            return Setup(shards: shards, stageArguments: ["train-pc", "--pair", "\(pair)"])
        case .sp:
            let labels = scratch.appendingPathComponent("sub_labels.h5")
            try Self.randomSubLabels(try ShardedDataset(directory: shards, name: "train"), k: 10).write(to: labels)
            return Setup(shards: shards, stageArguments: ["train-sp", "--labels", labels.path])
        }
    }

    /// Trains with one layout and reads its metrics. `launcher` runs it elsewhere than on this node's mpirun
    /// (`TestHostBed.launcher`); `extra` are more flags of the train command (`--grad-compression fp16`).
    public func measure(_ setup: Setup, ranks: Int, threads: Int, in scratch: URL, launcher: [String]? = nil,
                        extra: [String] = []) throws -> Row {
        let run = scratch.appendingPathComponent("run-\(ranks)x\(threads)")
        defer { try? FileManager.default.removeItem(at: run) }
        try MPILauncher.run(MPILauncher.currentExecutable, ranks: ranks, arguments: setup.stageArguments + [
            "--data", setup.shards.path, "--out", run.path, "--model", network, "--batch", "\(batch)", "--crop", "\(crop)",
            "--epochs", "1000", "--max-steps", "\(steps)", "--threads", "\(threads)", "--conv-algorithm", ConvAlgorithm.preferred.rawValue, "--keep", "0", "--log-level", "warning"] + extra,
            launcher: launcher)
        let m = try TrainMetrics.read(run: run, batch: batch)
        return Row(ranks: ranks, threads: threads, imagesPerSecond: m.imagesPerSecond, stepSeconds: m.stepSeconds,
                   communicationShare: m.communicationShare)
    }

    /// The trainable parameters of the stage's network: the floats each rank all-reduces per update.
    public func trainableParameters() -> Int {
        let variant = ModelVariant(rawValue: network) ?? (stage == .sp ? .sp : .pc)
        return Conformer(variant.config(k: 10), seed: 1).parameters.filter(\.requiresGrad).reduce(0) { $0 + $1.elementCount }
    }

    /// The FLOPs of one image's training step (PC: the crop and its pair; SP: the crop), forward and backward,
    /// counted by running it once here.
    public func flopsPerImage() -> Double {
        let variant = ModelVariant(rawValue: network) ?? (stage == .sp ? .sp : .pc)
        let conformer = Conformer(variant.config(k: 10), seed: 1)
        conformer.setBatchNormMode(.training)
        let c = conformer.config
        let labels = Tensor(shape: [1, c.numClasses - 1])
        let before = FlopCounter.count
        switch stage {
        case .sp:
            let out = conformer(Tensor(shape: [1, 3, crop, crop]), training: true)
            SPTrainingStage.loss(out, labels: labels, subLabels: Tensor(shape: [1, c.subClasses]), subLossWeight: 1).backward()
        case .pc:
            PCTrainingStage.loss(conformer, crops: Tensor(shape: [1, 3, crop, crop]), pairs: Tensor(shape: [1, 3, pair, pair]), labels: labels).backward()
        }
        return FlopCounter.count - before
    }

    /// One bit per present class at a random cluster: what `cluster` would give, for timing only.
    static func randomSubLabels(_ dataset: ShardedDataset, k: Int) throws -> SubCategoryLabels {
        let labels = try dataset.ids.map { try dataset.locate($0).reader.label($0) }
        var rng = SeededRandom(seed: 11)
        let clusters = (0..<labels[0].count).map { c in labels.filter { $0[c] == 1 }.map { _ in Int(rng.next() % UInt64(k)) } }
        return try SubCategoryLabels.build(ids: dataset.ids, imageLabels: labels, clusters: clusters, k: k, upstreamCompatible: false)
    }

    /// Feature extraction (512×512) in this process with the PC network of the stage's size: images/s.
    public func featureExtractionRate(_ setup: Setup) throws -> Double {
        let dataset = try ShardedDataset(directory: setup.shards, name: "train")
        let conformer = Conformer((network.hasPrefix("tiny") ? ModelVariant.tinyPC : .pc).config(classes: 21), seed: 1)
        conformer.setBatchNormMode(.inference)
        let extraction = FeatureExtraction(model: conformer)
        let images = try dataset.ids.prefix(4).map { try ImageFile.decodeRGB(try dataset.record($0).image, name: $0) }
        _ = extraction(images[0])
        let start = Date()
        for image in images { _ = extraction(image) }
        return Double(images.count) / Date().timeIntervalSince(start)
    }
}
