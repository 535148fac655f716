import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// The SP stage (spec §6.3): the augmentation of §3.2 without the pair, one forward pass in training mode, and
/// the loss ℓ20 + w · ℓsub, where ℓ20 is the PC loss of §3.4 on the 21-way heads and ℓsub the multilabel soft margin
/// of the summed (C − 1)·k-way heads against the image's sub-category vector (`SubCategoryLabels`, looked up by id).
public final class SPTrainingStage: ConformerTrainingStage {
    public let conformer: Conformer
    public let dataset: ShardedDataset
    public let augmentation: PCTrainAugmentation
    public let subLabels: SubCategoryLabels
    /// w, upstream's `--subcls_loss_weight` as its driver script sets it (1).
    public let subLossWeight: Float

    /// One rank's batch: crops (n, 3, S, S) as flat CHW floats, labels (n, C − 1), sub-category labels (n, (C − 1)·k).
    public struct Batch {
        public var images: [Float]
        public var labels: [Float]
        public var subLabels: [Float]
        public var count: Int
    }

    public init(conformer: Conformer, dataset: ShardedDataset, augmentation: PCTrainAugmentation, subLabels: SubCategoryLabels,
                subLossWeight: Float) throws {
        try conformer.checkClasses(of: dataset)
        guard conformer.config.subClasses == subLabels.width, subLabels.classes == dataset.classNames.count else {
            throw FileError(path: dataset.directory.path, what: "the labels have \(subLabels.classes) classes × k = \(subLabels.k); the model expects \(conformer.config.numClasses - 1) classes and \(conformer.config.subClasses) sub-categories")
        }
        if let missing = dataset.ids.first(where: { subLabels.vector(for: $0) == nil }) {
            throw FileError(path: dataset.directory.path, what: "image \(missing) has no sub-category label (was `cluster` run on this split?)")
        }
        self.conformer = conformer
        self.dataset = dataset
        self.augmentation = augmentation
        self.subLabels = subLabels
        self.subLossWeight = subLossWeight
    }

    public func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> Batch {
        var batch = Batch(images: [], labels: [], subLabels: [], count: indices.count)
        for i in indices {
            let id = dataset.ids[i]
            let record = try dataset.record(id)
            let image = try ImageFile.decodeRGB(record.image, name: "\(dataset.index.name)/\(id)")
            batch.images += augmentation.apply(image, rng: &random).image
            batch.labels += record.label
            batch.subLabels += subLabels.vector(for: id)!
        }
        return batch
    }

    public func loss(_ batch: Batch) -> StageLoss {
        let (n, s) = (batch.count, augmentation.crop.size)
        let out = conformer(Tensor(batch.images, shape: [n, 3, s, s]), training: true)
        return .mean(Self.loss(out, labels: Tensor(batch.labels, shape: [n, conformer.config.numClasses - 1]),
                               subLabels: Tensor(batch.subLabels, shape: [n, conformer.config.subClasses]), subLossWeight: subLossWeight))
    }

    /// ℓ20 + w · ℓsub for one forward's outputs.
    public static func loss(_ out: ConformerOutput, labels: Tensor, subLabels: Tensor, subLossWeight: Float) -> Tensor {
        guard let sc = out.subConvLogits, let st = out.subTransLogits else { preconditionFailure("SP loss: the network has no sub-category heads") }
        let main = PCSformerLoss.classification(convLogits: out.convLogits, transLogits: out.transLogits, labels: labels)
        return add(main, scale(multilabelSoftMarginLoss(add(sc, st), subLabels), subLossWeight))
    }
}
