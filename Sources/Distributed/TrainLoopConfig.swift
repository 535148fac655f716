import Foundation
import NN

/// The optimiser a run trains with; the stage supplies its parameter groups (`TrainingStage.parameterGroups`).
public enum OptimizerChoice: Codable, Equatable {
    /// `torch.optim.AdamW` (β 0.9/0.999, ε 1e-8): PC and SP.
    case adamW
    /// `torch.optim.SGD` with momentum and coupled weight decay: AffinityNet (PSA's PolyOptimizer) and DeepLab.
    case sgd(momentum: Float)

    func make(_ groups: [ParameterGroup]) -> Optimizer {
        switch self {
        case .adamW: return AdamW(groups)
        case let .sgd(momentum): return SGD(groups, momentum: momentum)
        }
    }

    var type: Optimizer.Type {
        switch self {
        case .adamW: return AdamW.self
        case .sgd: return SGD.self
        }
    }
}

/// Settings of a training run that the loop itself uses (a stage's own settings live with the stage).
public struct TrainLoopConfig: Codable, Equatable {
    /// Length in epochs (PC, SP), unless `iterations` is set.
    public var epochs: Int
    /// Length in updates (DeepLab: 20,000), crossing epochs as needed; wins over `epochs`.
    public var iterations: Int?
    /// Images per update over all ranks and micro-batches.
    public var globalBatch: Int
    /// Micro-batches per update (`--accumulate`, deeplab-pytorch's `iter_size`); each rank's share of the global
    /// batch is cut into this many, and gradients are reduced once per update.
    public var accumulate: Int = 1
    /// Base learning rate and weight decay the stage's groups scale.
    public var learningRate: Float
    public var weightDecay: Float
    public var optimizer: OptimizerChoice = .adamW
    /// The learning-rate multiplier over the updates for every group that does not set its own (PC and SP:
    /// constant; DeepLab: poly refreshed every 10).
    public var schedule: LearningRateSchedule = .constant
    public var seed: UInt64
    /// Compare a parameter checksum across ranks every N updates (0: never).
    public var checkSync: Int
    public var bucketMegabytes: Int
    /// How gradients travel in the allreduce (`--grad-compression`).
    public var gradientCompression: GradientCompression = .none
    /// Write a checkpoint every N updates; nil: after the epochs of `checkpointEpochs` (epoch runs only).
    public var checkpointEvery: Int?
    /// Epochs after which a checkpoint is written; nil: upstream's rule (epoch 0, even epochs, every epoch ≥ 4).
    public var checkpointEpochs: [Int]?
    /// Checkpoints kept besides the final one (`--keep`); older ones are removed once a newer one is complete.
    public var keep: Int = 3
    /// Stop after this many updates (0: the full length); for tests and benchmarks.
    public var maxSteps: Int

    public init(epochs: Int, globalBatch: Int, learningRate: Float, weightDecay: Float, seed: UInt64 = 0, checkSync: Int = 0,
                bucketMegabytes: Int = 25, checkpointEpochs: [Int]? = nil, maxSteps: Int = 0) {
        self.epochs = epochs
        self.globalBatch = globalBatch
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.seed = seed
        self.checkSync = checkSync
        self.bucketMegabytes = bucketMegabytes
        self.checkpointEpochs = checkpointEpochs
        self.maxSteps = maxSteps
    }

    /// Upstream's rule (spec §3.5): after epoch 0, after every even epoch, and after every epoch from 4 on.
    public func writesCheckpoint(afterEpoch e: Int) -> Bool {
        checkpointEpochs.map { $0.contains(e) } ?? (e == 0 || e % 2 == 0 || e >= 4)
    }

    /// Updates in the whole run, for `batchesPerEpoch` updates per epoch.
    public func totalSteps(batchesPerEpoch: Int) -> Int {
        let length = iterations ?? epochs * batchesPerEpoch
        return maxSteps > 0 ? min(maxSteps, length) : length
    }

    /// Whether the checkpoint after update `step` is due (the final one is always written, apart from this).
    func writesCheckpoint(afterStep step: Int, endedEpoch: Int?) -> Bool {
        if let checkpointEvery { return step % checkpointEvery == 0 }
        guard iterations == nil, let endedEpoch else { return false }
        return writesCheckpoint(afterEpoch: endedEpoch)
    }
}

/// One update's figures, handed to the reporter on every rank (rank 0 prints and writes them).
public struct StepReport {
    public var step: Int
    public var epoch: Int
    /// The global-batch loss of the update.
    public var loss: Double
    /// Every parameter group's learning rate in this update, with the groups' names.
    public var learningRates: [(group: String, rate: Double)]
    public var imagesPerSecond: Double
    /// Seconds spent waiting for gradient communication after backward (not hidden by it).
    public var exposedCommunication: Double

    /// The first group's learning rate (the only one for PC and SP).
    public var learningRate: Double { learningRates.first?.rate ?? 0 }
}

/// How a run ended.
public enum TrainOutcome: Equatable {
    case finished(steps: Int)
    /// Stopped by SIGTERM/SIGUSR1 after writing the checkpoint.
    case preempted(checkpoint: URL)
}

/// A training run that cannot go on: a non-finite loss, ranks out of sync, a checkpoint of another run, settings
/// that do not fit together. One line, naming the step or file.
public struct TrainingError: Error, CustomStringConvertible, LocalizedError {
    public let description: String
    public var errorDescription: String? { description }
    public init(description: String) { self.description = description }
}
