import DeepLab
import Distributed
import Foundation
import NN

/// `bench deeplab`, training: `train-deeplab` with deeplab-pytorch's VOC recipe (spec §10.2: random scale, pad, a
/// `crop`² crop, flip; MSC with its four cross-entropies; SGD with the 1×/10×/20× groups; frozen BatchNorm) on
/// generated 500×375 images under `mpirun -n R --threads T` for each layout, read back from its metrics.jsonl
/// (images/s over the updates after the first, data loading included). The labels are the shards' own masks
/// (`--labels gt`): where the labels come from changes no work. The network starts from its random weights, the
/// BatchNorm statistics staying at their initial values (frozen BatchNorm computes the same either way). Without
/// the statistics of a pretrained init nothing normalises the Caffe-scale inputs, the logits reach ~1e7 and
/// upstream's learning rate (2.5e-4) makes the loss NaN at the second update (and train-deeplab stop): the benchmark
/// trains at `learningRate` (1e-9 by default), which changes no work.
///
/// Upstream's update is 5 images × iter_size 2; here each rank's share of the global batch is cut into two
/// micro-batches when it is even, else taken whole (train-deeplab's default), so 1 rank runs 5 × 2 and 2 ranks
/// 5 each: every forward sees 5 images, as upstream's GPU did.
public struct DeepLabTrainBenchmark {
    /// `--model` of train-deeplab: deeplab (ResNet-101) or tiny-deeplab.
    public var network: String
    public var batch: Int
    public var steps: Int
    public var crop: Int
    public var learningRate: Float

    public init(network: String, batch: Int, steps: Int, crop: Int, learningRate: Float = 1e-9) {
        self.network = network
        self.batch = batch
        self.steps = steps
        self.crop = crop
        self.learningRate = learningRate
    }

    /// Micro-batches per update on each of `ranks` ranks: 2 when the share splits evenly, else 1.
    public func accumulate(ranks: Int) -> Int { (batch / ranks) % 2 == 0 ? 2 : 1 }

    /// The shards every layout trains on (twice the global batch, with masks).
    public func prepare(in scratch: URL, world: Communicator) throws -> URL {
        try BenchDataset.make(in: scratch, images: 2 * batch, seed: 13, shards: 2, world: world)
    }

    /// Trains with one layout and reads its metrics and peak memory (`LayoutTrainRow.measure`).
    public func measure(shards: URL, ranks: Int, threads: Int, in scratch: URL) throws -> LayoutTrainRow {
        try LayoutTrainRow.measure([
            "train-deeplab", "--data", shards.path, "--labels", "gt", "--model", network, "--batch", "\(batch)",
            "--accumulate", "\(accumulate(ranks: ranks))", "--crop", "\(crop)", "--lr", "\(learningRate)", "--max-steps", "\(steps)", "--keep", "0"],
            ranks: ranks, threads: threads, batch: batch, in: scratch)
    }

    /// The FLOPs of one image's share of an update (the four MSC passes' forward, backward through every
    /// convolution weight, BatchNorm frozen), counted by running it once here.
    public func flopsPerImage() -> Double {
        guard let config = DeepLabConfig.named(network) else { preconditionFailure("unknown DeepLab model \(network)") }
        let net = DeepLabV2MSC(config, seed: 1)
        net.freezeBatchNorm()
        let before = FlopCounter.count
        let outputs = net.logits(Tensor(shape: [1, 3, crop, crop]))
        let terms = DeepLabTrainingStage.lossTerms(outputs, labels: [UInt8](repeating: 0, count: crop * crop), height: crop, width: crop)
        terms.dropFirst().reduce(terms[0].sum) { add($0, $1.sum) }.backward()
        return FlopCounter.count - before
    }
}
