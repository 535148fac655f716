import Distributed
import Foundation
import NN

/// A per-pixel classifier small enough to train in a test, for the loop's global-batch losses: conv → BN →
/// ReLU → 1×1 conv to 3 classes over 6×6 images, cross-entropy with ignored pixels. Image i has `validPixels(i)`
/// labelled pixels (the rest 255), so the images of a batch weigh differently in a global mean.
final class SegStage: TrainingStage {
    final class Net: Module {
        let conv: Conv2d, bn = BatchNorm2d(4), head: Conv2d
        init() {
            var rng = SeededRandom(seed: 21)
            conv = Conv2d(3, 4, kernel: 3, padding: 1, rng: &rng)
            head = Conv2d(4, 3, kernel: 1, rng: &rng)
        }
        var children: [(name: String, module: Module)] { [("conv", conv), ("bn", bn), ("head", head)] }
    }

    let net = Net()
    var model: Module { net }
    let dataset: Int
    var modelRandom = SeededRandom(seed: 5)
    /// `sums`: the global-batch form (Σ over valid pixels, count); otherwise the per-rank mean.
    var sums = true
    /// Every pixel of this rank's images ignored (CSE's whole-image 255).
    var ignoreEverything = false
    var validPixels: (Int) -> Int = { i in i % 2 == 0 ? 3 : 30 }

    init(dataset: Int) {
        self.dataset = dataset
        net.setBatchNormMode(.frozen)
    }

    var datasetSize: Int { dataset }
    var sharedBuffers: [Tensor] { [net.bn.runningMean, net.bn.runningVar] }

    func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> (x: [Float], labels: [Int32], n: Int) {
        var x: [Float] = [], labels: [Int32] = []
        for i in indices {
            var r = SeededRandom(seed: 300 + UInt64(i))
            x += (0..<(3 * 36)).map { _ in r.nextFloat() - 0.5 }
            let valid = ignoreEverything ? 0 : validPixels(i)
            labels += (0..<36).map { p in p < valid ? Int32((p + i) % 3) : 255 }
        }
        return (x, labels, indices.count)
    }

    func loss(_ batch: (x: [Float], labels: [Int32], n: Int)) -> StageLoss {
        let logits = net.head(relu(net.bn(net.conv(Tensor(batch.x, shape: [batch.n, 3, 6, 6])))))
        guard sums else { return .mean(crossEntropyLoss(logits, labels: batch.labels)) }
        let count = Double(batch.labels.filter { $0 != 255 }.count)
        return .sums([.init(sum: crossEntropyLoss(logits, labels: batch.labels, reduction: .sum), count: count)])
    }
}

/// The largest difference between two parameter lists.
private func worstDifference(_ a: [Tensor], _ b: [Tensor]) -> Float {
    zip(a, b).map { x, y in zip(x.toArray(), y.toArray()).map { abs($0 - $1) }.max() ?? 0 }.max() ?? .infinity
}

/// The loop's optimiser groups, accumulation, frozen layers, global-batch losses, lock-step ranks and checkpoint
/// retention. References with fewer ranks run on every rank alone (`Communicator.selfOnly`), in a folder of
/// their own.
func trainLoopFeatureChecks(_ world: Communicator, directory: URL, check: (Bool, String) -> Void) throws {
    let solo = Communicator.selfOnly()
    func folder(_ name: String, _ communicator: Communicator) -> URL {
        directory.appendingPathComponent(communicator.size == 1 && world.size > 1 ? "\(name)-solo\(world.rank)" : name)
    }

    // SGD with momentum, three groups (their own rates and decays, poly refreshed every 2 updates): resuming
    // gives the same losses and parameters, update for update, as the run that never stopped.
    func sgdRun(_ folderName: String, epochs: Int, resume: URL? = nil) throws -> ([Double], [Tensor]) {
        let stage = CheckStage(dataset: 12)
        stage.groups = { trainable, lr, wd in
            let byName = Dictionary(uniqueKeysWithValues: trainable.map { ($0.name, $0.tensor) })
            return [ParameterGroup(["conv.weight", "bn.weight"].compactMap { byName[$0] }, learningRate: lr, weightDecay: wd, name: "base"),
                    ParameterGroup(["conv.bias", "bn.bias"].compactMap { byName[$0] }, learningRate: 2 * lr, weightDecay: 0, name: "biases"),
                    ParameterGroup(["head.weight", "head.bias"].compactMap { byName[$0] }, learningRate: 10 * lr, weightDecay: wd, name: "head")]
        }
        var config = TrainLoopConfig(epochs: epochs, globalBatch: 4, learningRate: 0.002, weightDecay: 1e-3, seed: 4, checkpointEpochs: [0])
        config.optimizer = .sgd(momentum: 0.9)
        config.schedule = .poly(maxIterations: 9, power: 0.9, every: 2)
        let loop = TrainLoop(stage: stage, config: config, world: world, runDirectory: directory.appendingPathComponent(folderName))
        var losses: [Double] = [], rates: [[Double]] = []
        loop.report = { losses.append($0.loss); rates.append($0.learningRates.map(\.rate)) }
        _ = try loop.run(resume: resume)
        if resume == nil, epochs == 3 {
            check(rates.count == 9 && rates[0] == rates[1] && rates[1] != rates[2] && abs(rates[0][2] - 10 * rates[0][0]) < 1e-9,
                  "three groups, poly held for 2 updates: \(rates.prefix(3))")
        }
        return (losses, stage.model.parameters)
    }
    let (sgdStraight, sgdParameters) = try sgdRun("sgd-straight", epochs: 3)
    _ = try sgdRun("sgd-stopped", epochs: 1)
    let (sgdResumed, sgdResumedParameters) = try sgdRun("sgd-resumed", epochs: 3,
        resume: directory.appendingPathComponent("sgd-stopped").appendingPathComponent(TrainCheckpoint.fileName(step: 3)))
    check(sgdResumed == Array(sgdStraight.dropFirst(3)), "SGD resume: losses \(sgdResumed) vs \(Array(sgdStraight.dropFirst(3)))")
    check(worstDifference(sgdParameters, sgdResumedParameters) == 0, "SGD resume: parameters differ by \(worstDifference(sgdParameters, sgdResumedParameters))")

    // 1 rank × accumulate 2 × 1 image = 1 rank × 2 images = 2 ranks × 1 image, with frozen BatchNorm (no noise
    // or dropout: those draw from per-rank streams).
    func accumulationRun(_ name: String, on communicator: Communicator, accumulate: Int) throws -> (parameters: [Tensor], trainable: Int) {
        let stage = CheckStage(dataset: 6)
        stage.noise = false
        stage.dropoutP = 0
        stage.model.setBatchNormMode(.frozen)
        var config = TrainLoopConfig(epochs: 1, globalBatch: 2, learningRate: 0.05, weightDecay: 0.01, seed: 8)
        config.accumulate = accumulate
        let loop = TrainLoop(stage: stage, config: config, world: communicator, runDirectory: folder(name, communicator))
        _ = try loop.run()
        return (stage.model.parameters, loop.reducer?.parameterCount ?? -1)
    }
    let accumulated = try accumulationRun("accumulate", on: solo, accumulate: 2)
    let oneRank = try accumulationRun("one-rank", on: solo, accumulate: 1)
    let allRanks = try accumulationRun("all-ranks", on: world, accumulate: 1)
    check(accumulated.trainable == 4, "frozen BatchNorm weights are not in the reducer: \(accumulated.trainable) of 6 registered")
    check(worstDifference(accumulated.parameters, oneRank.parameters) < 1e-6,
          "accumulate 2 × 1 image vs 2 images: \(worstDifference(accumulated.parameters, oneRank.parameters))")
    check(worstDifference(allRanks.parameters, oneRank.parameters) < 1e-6,
          "\(world.size) ranks vs 1 rank: \(worstDifference(allRanks.parameters, oneRank.parameters))")

    // Global-batch loss: images whose valid-pixel counts differ 10× give the same SGD update on 1 rank × 2 images
    // as on 2 ranks × 1 image; the per-rank mean does not (so this check can fail).
    func segmentationRun(_ name: String, on communicator: Communicator, sums: Bool, ignoreOnRank1: Bool = false,
                         steps: Int = 1, checkSync: Int = 0) throws -> [Tensor] {
        let stage = SegStage(dataset: 8)
        stage.sums = sums
        stage.ignoreEverything = ignoreOnRank1 && communicator.rank == 1
        var config = TrainLoopConfig(epochs: 4, globalBatch: 2, learningRate: 0.5, weightDecay: 0, seed: 2, checkSync: checkSync,
                                     maxSteps: steps)
        config.optimizer = .sgd(momentum: 0)
        _ = try TrainLoop(stage: stage, config: config, world: communicator, runDirectory: folder(name, communicator)).run()
        return stage.model.parameters
    }
    let globalOnOne = try segmentationRun("ce-one-rank", on: solo, sums: true)
    let globalOnAll = try segmentationRun("ce-all-ranks", on: world, sums: true)
    check(worstDifference(globalOnOne, globalOnAll) < 1e-6, "global-batch cross-entropy: 1 vs \(world.size) ranks differ by \(worstDifference(globalOnOne, globalOnAll))")
    if world.size == 2 {
        let perRankMean = try segmentationRun("ce-per-rank-mean", on: world, sums: false)
        let gap = worstDifference(perRankMean, globalOnAll)
        check(gap > 1e-3, "the per-rank mean must give another update than the global batch (gap \(gap))")

        // One rank's batches entirely ignored: the ranks stay bit-identical (--check-sync every update) and
        // nothing hangs (the harness has a time limit), in both loss forms.
        for sums in [true, false] {
            let lockStep = try segmentationRun("ignored-\(sums)", on: world, sums: sums, ignoreOnRank1: true, steps: 4, checkSync: 1)
            var checksum = lockStep.flatMap { $0.toArray() }.map(Double.init)
            var low = checksum
            world.allreduce(&low, op: .min)
            world.allreduce(&checksum, op: .max)
            check(low == checksum, "rank 1 with every pixel ignored (\(sums ? "sums" : "mean")): parameters differ between ranks")
        }
    }

    // The overlap probe with frozen BatchNorm: the first bucket starts before backward ends.
    let probe = CheckStage(dataset: 4)
    probe.model.setBatchNormMode(.frozen)
    let trainable = probe.model.parameters.filter(\.requiresGrad)
    let reducer = GradientReducer(parameters: trainable, world: world, bucketBytes: 40)
    reducer.prepareForStep()
    var probeRandom = SeededRandom(seed: 9)
    guard case let .mean(probeLoss) = probe.loss(try probe.loadBatch([world.rank], random: &probeRandom)) else { return }
    reducer.backwardWillStart(graph: true)
    probeLoss.backward()
    reducer.finish()
    check(reducer.bucketCount >= 2 && reducer.overlappedBuckets == reducer.bucketCount,
          "frozen BatchNorm: \(reducer.overlappedBuckets) of \(reducer.bucketCount) buckets started during backward")

    // --keep 2: a checkpoint every update, 6 updates: the final one and the 2 before it remain.
    var keepConfig = TrainLoopConfig(epochs: 2, globalBatch: 4, learningRate: 0.01, weightDecay: 0, seed: 1)
    keepConfig.checkpointEvery = 1
    keepConfig.keep = 2
    let keepFolder = directory.appendingPathComponent("keep")
    _ = try TrainLoop(stage: CheckStage(dataset: 12), config: keepConfig, world: world, runDirectory: keepFolder).run()
    let kept = try TrainCheckpoint.all(in: keepFolder).map(\.lastPathComponent)
    check(kept == [4, 5, 6].map(TrainCheckpoint.fileName), "--keep 2 leaves \(kept)")

    // A finite loss whose gradients overflow AdamW's second moment: the run stops at once, naming a parameter.
    let overflow = CheckStage(dataset: 12)
    overflow.lossScale = 1e30
    do {
        _ = try TrainLoop(stage: overflow, config: TrainLoopConfig(epochs: 1, globalBatch: 4, learningRate: 0.01, weightDecay: 0),
                          world: world, runDirectory: directory.appendingPathComponent("overflow")).run()
        check(false, "an overflowing optimiser state must stop the run")
    } catch {
        check("\(error)".contains("step 1:") && "\(error)".contains("not finite") && "\(error)".contains(".weight"), "\(error)")
    }

    // Iterations instead of epochs: 5 updates cross into the second epoch (3 updates each) and stop there.
    var iterationConfig = TrainLoopConfig(epochs: 1, globalBatch: 4, learningRate: 0.01, weightDecay: 0, seed: 1)
    iterationConfig.iterations = 5
    let iterationStage = CheckStage(dataset: 12)
    let outcome = try TrainLoop(stage: iterationStage, config: iterationConfig, world: world,
                                runDirectory: directory.appendingPathComponent("iterations")).run()
    check(outcome == .finished(steps: 5), "--iterations 5: \(outcome)")
}
