import Dispatch
import NN

/// Loads the next batch on a background queue while the current one trains, so the compute threads never wait
/// for decoding and augmentation. Batches are loaded strictly in order, each continuing the rank's augmentation
/// stream where the previous one left it, so the draws do not depend on timing.
final class BatchLoader<Stage: TrainingStage> {
    private let stage: Stage
    private let sampler: DistributedSampler
    private let queue = DispatchQueue(label: "pcs-mpi.batch-loader")
    private let group = DispatchGroup()
    private var result: Result<(Stage.Batch, SeededRandom), Error>?

    init(stage: Stage, sampler: DistributedSampler) {
        self.stage = stage
        self.sampler = sampler
    }

    /// Starts loading the batch at `position`, drawing from `random`.
    func prefetch(_ position: DistributedSampler.Position, random: SeededRandom) {
        group.wait()
        group.enter()
        queue.async { [stage, sampler] in
            var random = random
            let indices = sampler.batch(epoch: position.epoch, index: position.batch)
            self.result = Result { (try stage.loadBatch(indices, random: &random), random) }
            self.group.leave()
        }
    }

    /// The prefetched batch and the augmentation stream after it (waits if it is still loading).
    func take() throws -> (Stage.Batch, SeededRandom) {
        group.wait()
        guard let result else { preconditionFailure("BatchLoader.take() without a prefetch") }
        self.result = nil
        return try result.get()
    }

    /// Waits for a load in progress (keeping its result).
    func drain() { group.wait() }
}
