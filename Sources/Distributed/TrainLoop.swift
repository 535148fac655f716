import Foundation
import NN

/// The training loop that PC, SP, AffinityNet and DeepLab share (see DESIGN.md).
///
/// Per update: this rank's slice of the global batch (`DistributedSampler`), cut into `accumulate` micro-batches
/// and loaded one update ahead on a background queue; for each micro-batch the forward pass and loss (the stage),
/// made a global-batch objective (`objective`), and backward; the gradients of the last micro-batch's backward
/// are averaged over the ranks as they become ready (`GradientReducer`, whose note says why every rank launches
/// its buckets in the same order and takes the same step whatever its batch held); then the optimiser's step
/// with the stage's parameter groups. A non-finite loss stops every rank with the update named (the last good
/// checkpoint stays). Checkpoints: BatchNorm statistics broadcast from rank 0, every rank's random streams
/// gathered, written by rank 0 (temporary name, then renamed), the `keep` newest kept besides the final one.
/// `resume` continues from a checkpoint so that the run gives the same losses, update for update, as one that
/// never stopped.
public final class TrainLoop<Stage: TrainingStage> {
    public let stage: Stage
    public let config: TrainLoopConfig
    public let world: Communicator
    public let runDirectory: URL
    /// Extra text stored in checkpoints (the command's full configuration, JSON).
    public var configRecord = "{}"
    public var report: (StepReport) -> Void = { _ in }
    /// Called on every rank after each epoch (and its checkpoint): where a stage evaluates (e.g. seed mIoU).
    /// Collective work is allowed here; every rank calls it at the same point.
    public var afterEpoch: (_ epoch: Int, _ step: Int) throws -> Void = { _, _ in }
    /// The reducer of the last `run` (for tests: `overlappedBuckets`).
    public private(set) var reducer: GradientReducer?

    public init(stage: Stage, config: TrainLoopConfig, world: Communicator, runDirectory: URL) {
        self.stage = stage
        self.config = config
        self.world = world
        self.runDirectory = runDirectory
    }

    public func run(resume: URL? = nil) throws -> TrainOutcome {
        let sampler = try DistributedSampler(datasetSize: stage.datasetSize, globalBatch: config.globalBatch, rank: world.rank,
                                             worldSize: world.size, seed: config.seed)
        guard config.accumulate >= 1, sampler.localBatch % config.accumulate == 0 else {
            throw TrainingError(description: "--accumulate \(config.accumulate) does not divide the \(sampler.localBatch) images each rank trains per update (global batch \(config.globalBatch) over \(world.size) ranks)")
        }
        let trainable = stage.model.namedParameterList.filter { $0.tensor.requiresGrad }
        let names = Dictionary(uniqueKeysWithValues: trainable.map { (ObjectIdentifier($0.tensor), $0.name) })
        let groups = stage.parameterGroups(trainable, learningRate: config.learningRate, weightDecay: config.weightDecay)
            .map { group -> ParameterGroup in
                var group = group
                if group.schedule == .constant { group.schedule = config.schedule }
                return group
            }
        try checkGroups(groups, names: names)
        let reducer = GradientReducer(parameters: trainable.map(\.tensor), world: world, bucketBytes: config.bucketMegabytes << 20,
                                      compression: config.gradientCompression)
        self.reducer = reducer
        let optimizer = config.optimizer.make(groups)
        var position = DistributedSampler.Position()
        var augmentation = sampler.augmentationRandom()
        var step = 0
        if let resume {
            let loaded = try TrainCheckpoint.read(resume, into: stage.model, parameterNames: trainable.map(\.name), optimizer: config.optimizer.type)
            guard loaded.ranks.count == world.size else {
                throw TrainingError(description: "\(resume.path): written by \(loaded.ranks.count) rank(s); resume it with the same rank count, not \(world.size)")
            }
            optimizer.importState(loaded.optimizer, names: names)
            position = loaded.position
            step = loaded.step
            augmentation = loaded.ranks[world.rank].augmentation
            stage.modelRandom = loaded.ranks[world.rank].model
            Log.info("resume: step \(step), epoch \(position.epoch), batch \(position.batch) from \(resume.lastPathComponent)")
        }
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        TrainSignals.install()

        let totalSteps = config.totalSteps(batchesPerEpoch: sampler.batchesPerEpoch)
        let progress = ProgressReporter("train", total: totalSteps, unit: "steps", enabled: world.isRoot)
        progress.resume(at: step)
        let loader = BatchLoader(stage: stage, sampler: sampler, parts: config.accumulate)
        if step < totalSteps { loader.prefetch(position, random: augmentation) }
        while step < totalSteps {
            let start = DispatchTime.now().uptimeNanoseconds
            let (batches, randomAfter) = try loader.take()
            let next = sampler.advanced(position)
            augmentation = randomAfter
            if step + 1 < totalSteps { loader.prefetch(next, random: augmentation) }

            let rates = optimizer.learningRates
            let loss = try update(batches, reducer: reducer, step: step, position: position)
            optimizer.step()
            // Every rank holds the same parameters and state, so every rank stops here alike.
            if let bad = optimizer.nonFinite {
                throw TrainingError(description: "step \(step + 1): \(names[ObjectIdentifier(bad)] ?? "a parameter") or its optimiser state is not finite after the update (learning rate too high?); stopping, \(keptCheckpoint)")
            }
            step += 1
            position = next

            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let endedEpoch: Int? = position.batch == 0 ? position.epoch - 1 : nil
            report(StepReport(step: step, epoch: endedEpoch ?? position.epoch, loss: loss,
                              learningRates: zip(groups, rates).map { ($0.name, Double($1)) },
                              imagesPerSecond: Double(config.globalBatch) / seconds,
                              exposedCommunication: reducer.exposedSeconds))
            progress.advance()
            if config.checkSync > 0, step % config.checkSync == 0, !reducer.parametersInSync() {
                throw TrainingError(description: "parameters differ between ranks at step \(step) (--check-sync)")
            }
            let stopRequested = world.allreduce(Int64(TrainSignals.stopRequested ? 1 : 0), op: .max) > 0
            if stopRequested {
                loader.drain()
                let url = try checkpoint(step: step, position: position, random: augmentation, optimizer: optimizer, names: names)
                progress.finish()
                TrainSignals.acknowledge()
                Log.info("train: stop requested; checkpoint \(url.lastPathComponent) written at step \(step); resume with --resume auto")
                return .preempted(checkpoint: url)
            }
            // The run always ends with a checkpoint, whatever the rule (also when cut short by --max-steps):
            // every run leaves its model.
            let final = step == totalSteps
            if final || config.writesCheckpoint(afterStep: step, endedEpoch: endedEpoch) {
                loader.drain() // HDF5 is not thread-safe: the next batch's reads finish before the checkpoint is written
                try checkpoint(step: step, position: position, random: augmentation, optimizer: optimizer, names: names, final: final)
            }
            if let endedEpoch {
                loader.drain()
                try afterEpoch(endedEpoch, step)
            }
        }
        loader.drain()
        progress.finish()
        return .finished(steps: step)
    }

    /// Forward, loss and backward of every micro-batch of one update, the reduction after the last; returns the
    /// update's global-batch loss. Every rank runs the same collectives in the same order, whatever its batch.
    func update(_ batches: [Stage.Batch], reducer: GradientReducer, step: Int, position: DistributedSampler.Position) throws -> Double {
        for p in reducer.buckets.flatMap(\.parameters) { p.grad = nil }
        var loss = 0.0
        for (k, batch) in batches.enumerated() {
            reducer.prepareForStep(sync: k == batches.count - 1)
            let (objective, value) = objective(stage.loss(batch), microBatches: batches.count)
            guard value.isFinite else {
                Autograd.reset()
                throw TrainingError(description: "the loss is \(value) at step \(step + 1) (epoch \(position.epoch), batch \(position.batch)); stopping, \(keptCheckpoint)")
            }
            loss += value
            let graph = objective?.requiresGrad ?? false
            reducer.backwardWillStart(graph: graph)
            if let objective, graph { objective.backward() } else { Autograd.reset() }
        }
        reducer.finish()
        return loss
    }

    /// The micro-batch's share of the global-batch objective, to back-propagate on this rank (nil or without a
    /// graph when this rank's batch has nothing to learn from), and that share's value over all ranks. One small
    /// allreduce. The reducer then averages the gradients over the ranks, so a `sums` term is multiplied by the
    /// rank count here (see `StageLoss`).
    func objective(_ loss: StageLoss, microBatches: Int) -> (Tensor?, Double) {
        let parts = Double(microBatches)
        switch loss {
        case let .mean(t):
            let value = world.allreduce(Double(t.toArray()[0]), op: .sum) / Double(world.size)
            return (microBatches == 1 ? t : scale(t, Float(1 / parts)), value / parts)
        case let .sums(terms):
            var totals = terms.map { Double($0.sum.toArray()[0]) } + terms.map(\.count)
            world.allreduce(&totals)
            var objective: Tensor?
            var value = 0.0
            for (t, term) in terms.enumerated() {
                let count = totals[terms.count + t]
                guard count > 0 else { continue }
                value += term.weight * totals[t] / count
                guard term.sum.requiresGrad else { continue }
                let scaled = scale(term.sum, Float(term.weight * Double(world.size) / (count * parts)))
                objective = objective.map { add($0, scaled) } ?? scaled
            }
            return (objective, value / parts)
        }
    }

    /// What a stop leaves to resume from, for its message.
    var keptCheckpoint: String {
        guard let last = try? TrainCheckpoint.newest(in: runDirectory) else { return "no checkpoint was written yet" }
        return "the last checkpoint \(last.lastPathComponent) in \(runDirectory.path) is kept"
    }

    /// Every trainable parameter in exactly one group, and nothing else.
    func checkGroups(_ groups: [ParameterGroup], names: [ObjectIdentifier: String]) throws {
        var seen = Set<ObjectIdentifier>()
        for group in groups {
            for p in group.parameters {
                let id = ObjectIdentifier(p)
                guard names[id] != nil else { throw TrainingError(description: "parameter group '\(group.name)' holds a frozen or foreign tensor \(p.shape)") }
                guard seen.insert(id).inserted else { throw TrainingError(description: "\(names[id]!) is in two parameter groups") }
            }
        }
        if let missing = names.first(where: { !seen.contains($0.key) }) {
            throw TrainingError(description: "trainable parameter \(missing.value) is in no parameter group")
        }
    }

    /// Writes a checkpoint for the position about to be trained; `random` is this rank's augmentation stream as
    /// it must be before that position's batch is loaded. Then removes the checkpoints beyond `keep` (rank 0).
    @discardableResult
    func checkpoint(step: Int, position: DistributedSampler.Position, random: SeededRandom, optimizer: Optimizer,
                    names: [ObjectIdentifier: String], final: Bool = false) throws -> URL {
        for buffer in stage.sharedBuffers {
            var values = buffer.toArray()
            world.broadcast(&values, root: 0)
            values.withUnsafeBufferPointer { buffer.storage.floats.update(from: $0.baseAddress!, count: values.count) }
            buffer.version += 1
        }
        let ranks = try world.gather(RankRandomState(augmentation: random, model: stage.modelRandom))
        let url = runDirectory.appendingPathComponent(TrainCheckpoint.fileName(step: step))
        if let ranks {
            try TrainCheckpoint.write(to: url, model: stage.model, optimizer: optimizer.exportState(names: names), step: step,
                                      position: position, ranks: ranks, config: configRecord)
            Log.info("checkpoint: \(url.lastPathComponent) (epoch \(position.epoch), step \(step))")
            try TrainCheckpoint.prune(in: runDirectory, keep: config.keep, except: final ? url : nil)
        }
        world.barrier()
        return url
    }
}
