import Dispatch
import NN

/// Loads the next update's batches on a background queue while the current one trains, so the compute threads
/// never wait for decoding and augmentation. Batches are loaded strictly in order, each continuing the rank's
/// augmentation stream where the previous one left it, so the draws do not depend on timing. With gradient
/// accumulation an update's share of this rank is cut into `parts` contiguous micro-batches.
final class BatchLoader<Stage: TrainingStage> {
    private let stage: Stage
    private let sampler: DistributedSampler
    private let parts: Int
    private let queue = DispatchQueue(label: "pcs-mpi.batch-loader")
    private let group = DispatchGroup()
    private var result: Result<([Stage.Batch], SeededRandom), Error>?

    init(stage: Stage, sampler: DistributedSampler, parts: Int) {
        precondition(parts >= 1 && sampler.localBatch % parts == 0, "BatchLoader: \(sampler.localBatch) images per rank do not split into \(parts) micro-batches")
        self.stage = stage
        self.sampler = sampler
        self.parts = parts
    }

    /// Starts loading the micro-batches at `position`, drawing from `random`.
    func prefetch(_ position: DistributedSampler.Position, random: SeededRandom) {
        group.wait()
        group.enter()
        queue.async { [stage, sampler, parts] in
            var random = random
            let indices = sampler.batch(epoch: position.epoch, index: position.batch)
            let size = indices.count / parts
            self.result = Result {
                let batches = try (0..<parts).map { k in try stage.loadBatch(Array(indices[(k * size)..<((k + 1) * size)]), random: &random) }
                return (batches, random)
            }
            self.group.leave()
        }
    }

    /// The prefetched micro-batches and the augmentation stream after them (waits if they are still loading).
    func take() throws -> ([Stage.Batch], SeededRandom) {
        group.wait()
        guard let result else { preconditionFailure("BatchLoader.take() without a prefetch") }
        self.result = nil
        return try result.get()
    }

    /// Waits for a load in progress (keeping its result).
    func drain() { group.wait() }
}
