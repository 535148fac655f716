import Foundation
import NN

/// Settings of a training run that the loop itself uses (a stage's own settings live with the stage).
public struct TrainLoopConfig: Codable, Equatable {
    public var epochs: Int
    /// Images per optimiser step over all ranks.
    public var globalBatch: Int
    public var learningRate: Float
    public var weightDecay: Float
    public var seed: UInt64
    /// Compare a parameter checksum across ranks every N steps (0: never).
    public var checkSync: Int
    public var bucketMegabytes: Int
    /// Epochs after which a checkpoint is written; nil: upstream's rule (epoch 0, even epochs, every epoch ≥ 4).
    public var checkpointEpochs: [Int]?
    /// Stop after this many steps (0: run all epochs); for tests and benchmarks.
    public var maxSteps: Int
    /// Learning-rate multiplier over the steps (PC and SP: constant; DeepLab: poly).
    public var schedule: LearningRateSchedule = .constant

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
}

/// One step's figures, handed to the reporter on every rank (rank 0 prints and writes them).
public struct StepReport {
    public var step: Int
    public var epoch: Int
    public var loss: Double
    public var learningRate: Double
    public var imagesPerSecond: Double
    /// Seconds spent waiting for gradient communication after backward (not hidden by it).
    public var exposedCommunication: Double
}

/// How a run ended.
public enum TrainOutcome: Equatable {
    case finished(steps: Int)
    /// Stopped by SIGTERM/SIGUSR1 after writing the checkpoint.
    case preempted(checkpoint: URL)
}

/// The training loop that PC, SP, AffinityNet and DeepLab share (see DESIGN.md).
///
/// Per step: this rank's slice of the global batch (`DistributedSampler`), loaded one step ahead on a background
/// queue; forward and loss (the stage); backward with gradients averaged over the ranks as they become ready
/// (`GradientReducer`); the AdamW step. The loss is averaged over the ranks too; a non-finite one stops every rank
/// with the step named (the last good checkpoint stays). Checkpoints: BatchNorm statistics broadcast from rank 0,
/// every rank's random streams gathered, written by rank 0 (temporary name, then renamed). `resume` continues
/// from a checkpoint so that the run gives the same losses, step for step, as one that never stopped.
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

    public init(stage: Stage, config: TrainLoopConfig, world: Communicator, runDirectory: URL) {
        self.stage = stage
        self.config = config
        self.world = world
        self.runDirectory = runDirectory
    }

    public struct TrainingError: Error, CustomStringConvertible, LocalizedError {
        public let description: String
        public var errorDescription: String? { description }
    }

    public func run(resume: URL? = nil) throws -> TrainOutcome {
        let sampler = try DistributedSampler(datasetSize: stage.datasetSize, globalBatch: config.globalBatch, rank: world.rank,
                                             worldSize: world.size, seed: config.seed)
        let named = stage.model.state("").compactMap { entry -> (String, Tensor)? in
            if case let .parameter(name, t) = entry { return (name, t) } else { return nil }
        }
        let names = Dictionary(uniqueKeysWithValues: named.map { (ObjectIdentifier($0.1), $0.0) })
        let reducer = GradientReducer(parameters: named.map(\.1), world: world, bucketBytes: config.bucketMegabytes << 20)
        let optimizer = AdamW([ParameterGroup(named.map(\.1), learningRate: config.learningRate, weightDecay: config.weightDecay)],
                              schedule: config.schedule)
        var position = DistributedSampler.Position()
        var augmentation = sampler.augmentationRandom()
        var step = 0
        if let resume {
            let loaded = try TrainCheckpoint.read(resume, into: stage.model, parameterNames: named.map(\.0))
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

        let totalSteps = config.maxSteps > 0 ? min(config.maxSteps, config.epochs * sampler.batchesPerEpoch) : config.epochs * sampler.batchesPerEpoch
        let progress = ProgressReporter("train", total: totalSteps, unit: "steps", enabled: world.isRoot)
        progress.advance(by: step)
        let loader = BatchLoader(stage: stage, sampler: sampler)
        loader.prefetch(position, random: augmentation)
        while position.epoch < config.epochs && (config.maxSteps == 0 || step < config.maxSteps) {
            let start = DispatchTime.now().uptimeNanoseconds
            let (batch, randomAfter) = try loader.take()
            let next = sampler.advanced(position)
            augmentation = randomAfter
            if next.epoch < config.epochs { loader.prefetch(next, random: augmentation) }

            for (_, p) in named { p.grad = nil }
            reducer.prepareForStep()
            let loss = stage.loss(batch)
            let globalLoss = world.allreduce(Double(loss.toArray()[0]), op: .sum) / Double(world.size)
            guard globalLoss.isFinite else {
                throw TrainingError(description: "the loss is \(globalLoss) at step \(step + 1) (epoch \(position.epoch), batch \(position.batch)); stopping, the last checkpoint in \(runDirectory.path) is kept")
            }
            loss.backward()
            reducer.finish()
            optimizer.step()
            step += 1
            position = next

            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            report(StepReport(step: step, epoch: position.batch == 0 ? position.epoch - 1 : position.epoch, loss: globalLoss,
                              learningRate: Double(config.learningRate * config.schedule.multiplier(at: step - 1)),
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
                Log.info("train: stop requested; checkpoint \(url.lastPathComponent) written at step \(step); resume with --resume auto")
                return .preempted(checkpoint: url)
            }
            // The final epoch always ends with a checkpoint, whatever the rule, and so does a run cut short by
            // --max-steps: every run leaves its model.
            let epochCheckpoint = position.batch == 0 && (config.writesCheckpoint(afterEpoch: position.epoch - 1) || position.epoch == config.epochs)
            if epochCheckpoint || (config.maxSteps > 0 && step == config.maxSteps) {
                loader.drain() // HDF5 is not thread-safe: the next batch's reads finish before the checkpoint is written
                try checkpoint(step: step, position: position, random: augmentation, optimizer: optimizer, names: names)
            }
            if position.batch == 0 {
                loader.drain()
                try afterEpoch(position.epoch - 1, step)
            }
        }
        loader.drain()
        progress.finish()
        return .finished(steps: step)
    }

    /// Writes a checkpoint for the position about to be trained; `random` is this rank's augmentation stream as
    /// it must be before that position's batch is loaded.
    @discardableResult
    func checkpoint(step: Int, position: DistributedSampler.Position, random: SeededRandom, optimizer: AdamW,
                    names: [ObjectIdentifier: String]) throws -> URL {
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
        }
        world.barrier()
        return url
    }
}
