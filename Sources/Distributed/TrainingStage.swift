import NN

/// One training stage (PC, SP, AffinityNet, DeepLab): what it trains and how a batch and its loss are made.
/// Everything else — epochs or iterations, sampling, accumulation, gradient reduction, the optimiser,
/// checkpoints, signals, reporting — is `TrainLoop`'s, so no stage repeats it.
public protocol TrainingStage: AnyObject {
    associatedtype Batch

    /// The network, with its parameters and buffers under their state-dict names. Frozen parameters
    /// (`requiresGrad` false, see `Module.freeze`) are left out of the reducer and the optimiser.
    var model: Module { get }
    /// Images in the training set (the sampler draws indices below this).
    var datasetSize: Int { get }
    /// Tensors every rank must hold identically in a checkpoint (BatchNorm running statistics): broadcast from
    /// rank 0 before each one is written.
    var sharedBuffers: [Tensor] { get }
    /// The stage's own random stream used inside `loss` (drop path), saved and restored with checkpoints.
    var modelRandom: SeededRandom { get set }

    /// Loads and augments this rank's images `indices`. Runs on a background thread: must not record autograd ops
    /// or touch the model.
    func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> Batch

    /// Forward pass and loss of one batch (recorded for backward).
    func loss(_ batch: Batch) -> StageLoss

    /// The optimiser's parameter groups over the trainable parameters (state-dict names, in state-dict order),
    /// from the run's base learning rate and weight decay. The default is one group of all of them.
    func parameterGroups(_ trainable: [(name: String, tensor: Tensor)], learningRate: Float, weightDecay: Float) -> [ParameterGroup]
}

extension TrainingStage {
    public func parameterGroups(_ trainable: [(name: String, tensor: Tensor)], learningRate: Float, weightDecay: Float) -> [ParameterGroup] {
        [ParameterGroup(trainable.map(\.tensor), learningRate: learningRate, weightDecay: weightDecay)]
    }
}
