import Distributed
import Foundation
import NN
import PCSformer
import Segmentation
import Storage

/// `bench aff`, training: `train-aff` (upstream's recipe: crop 448, global batch 8, SGD, conv1a/b2 and every
/// BatchNorm frozen, the affinity losses) on generated 500×375 images under `mpirun -n R --threads T` for each
/// layout, read back from its metrics.jsonl (images/s over the steps after the first). The la/ha maps are a centred
/// box of the image's first class in a 16-pixel ring of "unsure" on background, so every pair kind occurs; the
/// FLOPs of one image's step are counted in this process.
public struct AffinityTrainBenchmark {
    /// `--model` of train-aff: aff (ResNet-38d) or tiny-aff.
    public var network: String
    public var batch: Int
    public var steps: Int
    public var crop: Int

    public init(network: String, batch: Int, steps: Int, crop: Int) {
        self.network = network
        self.batch = batch
        self.steps = steps
        self.crop = crop
    }

    public struct Setup {
        public var shards: URL
        public var labels: URL
    }

    public typealias Row = LayoutTrainRow

    public func prepare(in scratch: URL, world: Communicator) throws -> Setup {
        let shards = try BenchDataset.make(in: scratch, images: 2 * batch, seed: 9, shards: 2, world: world)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let labels = scratch.appendingPathComponent("crf-labels")
        var job = PerImageSetJob(name: "crf-labels", dataset: dataset, output: labels, settings: "bench aff boxes", command: "bench aff")
        job.attributes = [LabelSetAttributes.maps: [CRFLabelMaps.foregroundName, CRFLabelMaps.backgroundName].joined(separator: ",")]
        _ = try job.run(world: world, cost: { _ in 1 }, item: { id, writer in
            let record = try dataset.record(id)
            let label = UInt8(1 + (record.label.firstIndex(of: 1) ?? 0))
            let (w, h) = (record.width, record.height)
            func box(inset: Int) -> [UInt8] {
                (0..<(w * h)).map { p in
                    let (x, y) = (p % w, p / w)
                    return x >= w / 4 - inset && x < 3 * w / 4 + inset && y >= h / 4 - inset && y < 3 * h / 4 + inset ? label : 0
                }
            }
            // la: the box; ha: a larger box, so the ring between them is neither (255 after the merge).
            try writer.add(LabelMapRecord(id: id, width: w, height: h, maps: [CRFLabelMaps.foregroundName: box(inset: 0),
                                                                            CRFLabelMaps.backgroundName: box(inset: 16)]))
        })
        return Setup(shards: shards, labels: labels)
    }

    /// Trains with one layout and reads its metrics and peak memory (`LayoutTrainRow.measure`).
    public func measure(_ setup: Setup, ranks: Int, threads: Int, in scratch: URL) throws -> Row {
        try LayoutTrainRow.measure([
            "train-aff", "--data", setup.shards.path, "--labels", setup.labels.path, "--model", network,
            "--batch", "\(batch)", "--crop", "\(crop)", "--epochs", "1000", "--max-steps", "\(steps)", "--keep", "0"],
            ranks: ranks, threads: threads, batch: batch, in: scratch)
    }

    /// The FLOPs of one image's training step (forward, the affinities and losses, backward through what upstream
    /// trains), counted by running it once here.
    public func flopsPerImage() -> Double {
        let net = AffinityNet(network == "tiny-aff" ? .tiny : .full, seed: 1)
        net.freezeAsUpstream()
        let pairs = AffinityPairs(height: crop / 8, width: crop / 8)
        var rng = SeededRandom(seed: 2)
        let before = FlopCounter.count
        let features = net(Tensor(shape: [1, 3, crop, crop]), training: true, rng: &rng)
        let labels = AffinityLabels(labelMaps: [[UInt8](repeating: 0, count: (crop / 8) * (crop / 8))], pairs: pairs)
        affinityLoss(pairAffinity(features, pairs: pairs), labels: labels).backward()
        return FlopCounter.count - before
    }
}
