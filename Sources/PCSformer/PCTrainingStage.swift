import Distributed
import Foundation
import Imaging
import NN
import Storage

/// The PC stage (spec §3): each image is augmented (§3.2) into a crop and its bilinear pair (§3.3); both go
/// through the network in training mode; the loss is the mean of the two multilabel soft margin losses (§3.4).
/// The loop (`TrainLoop`) does the rest.
public final class PCTrainingStage: ConformerTrainingStage {
    public let conformer: Conformer
    public let dataset: ShardedDataset
    public let augmentation: PCTrainAugmentation

    /// One rank's batch: crops (n, 3, S, S) and pairs (n, 3, P, P) as flat CHW floats, labels (n, C − 1).
    public struct Batch {
        public var images: [Float]
        public var pairs: [Float]
        public var labels: [Float]
        public var count: Int
    }

    public init(conformer: Conformer, dataset: ShardedDataset, augmentation: PCTrainAugmentation) throws {
        try conformer.checkClasses(of: dataset)
        self.conformer = conformer
        self.dataset = dataset
        self.augmentation = augmentation
    }

    public func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> Batch {
        var batch = Batch(images: [], pairs: [], labels: [], count: indices.count)
        for i in indices {
            let id = dataset.ids[i]
            let record = try dataset.record(id)
            let image = try ImageFile.decodeRGB(record.image, name: "\(dataset.index.name)/\(id)")
            let (crop, pair) = augmentation.apply(image, rng: &random)
            batch.images += crop
            batch.pairs += pair
            batch.labels += record.label
        }
        return batch
    }

    public func loss(_ batch: Batch) -> StageLoss {
        let (n, s, p) = (batch.count, augmentation.crop.size, augmentation.pairSize)
        return .mean(Self.loss(conformer, crops: Tensor(batch.images, shape: [n, 3, s, s]), pairs: Tensor(batch.pairs, shape: [n, 3, p, p]),
                         labels: Tensor(batch.labels, shape: [n, conformer.config.numClasses - 1])))
    }

    /// The §3.4 loss of one step: the mean of the classification losses of the crops and of their pairs, each a
    /// training-mode forward (the crops first).
    public static func loss(_ conformer: Conformer, crops: Tensor, pairs: Tensor, labels: Tensor) -> Tensor {
        func loss(_ x: Tensor) -> Tensor {
            let out = conformer(x, training: true)
            return PCSformerLoss.classification(convLogits: out.convLogits, transLogits: out.transLogits, labels: labels)
        }
        let crop = loss(crops)
        return scale(add(crop, loss(pairs)), 0.5)
    }
}
