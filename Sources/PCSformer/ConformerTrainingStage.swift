import Distributed
import Formats
import NN
import Storage

/// What the PC and SP stages share: a Conformer trained on a shard set. The loop's bookkeeping (model, dataset size,
/// the BatchNorm statistics broadcast before a checkpoint, the drop-path stream) comes from these two.
public protocol ConformerTrainingStage: TrainingStage {
    var conformer: Conformer { get }
    var dataset: ShardedDataset { get }
}

extension ConformerTrainingStage {
    public var model: Module { conformer }
    public var datasetSize: Int { dataset.count }
    public var sharedBuffers: [Tensor] { conformer.batchNorms().flatMap { [$0.runningMean, $0.runningVar] } }
    public var modelRandom: SeededRandom {
        get { conformer.rng }
        set { conformer.rng = newValue }
    }
}

extension Conformer {
    /// Checks that a dataset's classes (plus background) are this network's, naming the dataset if not.
    func checkClasses(of dataset: ShardedDataset) throws {
        let classes = dataset.classNames.count
        guard classes + 1 == config.numClasses else {
            throw FileError(path: dataset.directory.path, what: "the dataset has \(classes) classes; the model expects \(config.numClasses - 1) (plus background)")
        }
    }
}

extension Conformer {
    /// A Conformer to train: fresh (initialised from `seed`) or from the ImageNet weights at `imageNet` (spec §2.7),
    /// BatchNorm in training mode; with `synchronizedBatchNorm`, the BatchNorm statistics are summed over that
    /// communicator's ranks, so they cover the global batch.
    public static func forTraining(_ config: ConformerConfig, seed: UInt64, imageNet: String?,
                                   synchronizedBatchNorm world: Communicator?) throws -> Conformer {
        let conformer = Conformer(config, seed: seed)
        if let imageNet { try ConformerCheckpoint.loadImageNet(conformer, path: imageNet) }
        conformer.setBatchNormMode(.training)
        if let world {
            for bn in conformer.batchNorms() { bn.statisticsReducer = { world.allreduce(&$0) } }
        }
        return conformer
    }
}
