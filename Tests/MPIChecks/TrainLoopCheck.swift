import Distributed
import Foundation
import NN

/// A stage small enough to train in a test: CheckNet's layers with BatchNorm in training mode (per-rank
/// statistics), dropout drawn from the model's stream, and augmentation noise drawn from the rank's stream, so
/// that an exact resume needs every piece of state a checkpoint keeps.
final class CheckStage: TrainingStage {
    let net = CheckNet()
    let dataset: Int
    /// A step at which the loss is made NaN (to test the stop), or nil.
    var poisonStep: Int?
    var steps = 0
    var modelRandom = SeededRandom(seed: 5)
    /// Off for comparisons across rank counts: each rank draws noise and dropout from its own streams.
    var noise = true
    var dropoutP: Float = 0.2
    /// Multiplies the loss (a huge one overflows the optimiser's state while the loss stays finite).
    var lossScale: Float = 1
    /// The optimiser's groups, when not the default single one.
    var groups: (([(name: String, tensor: Tensor)], Float, Float) -> [ParameterGroup])?

    final class Wrapped: Module {
        let net: CheckNet
        init(_ net: CheckNet) { self.net = net }
        var children: [(name: String, module: Module)] { [("conv", net.conv), ("bn", net.bn), ("head", net.head)] }
    }
    lazy var model: Module = Wrapped(net)

    init(dataset: Int) {
        self.dataset = dataset
        net.bn.mode = .training
    }

    var datasetSize: Int { dataset }
    var sharedBuffers: [Tensor] { [net.bn.runningMean, net.bn.runningVar] }

    func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> (x: [Float], labels: [Float], n: Int) {
        var x: [Float] = []
        for i in indices { x += net.image(seed: UInt64(i)).map { noise ? $0 + 0.1 * (random.nextFloat() - 0.5) : $0 } }
        let labels = indices.flatMap { i in (0..<4).map { Float(($0 + i) % 2) } }
        return (x, labels, indices.count)
    }

    func parameterGroups(_ trainable: [(name: String, tensor: Tensor)], learningRate: Float, weightDecay: Float) -> [ParameterGroup] {
        groups?(trainable, learningRate, weightDecay) ?? [ParameterGroup(trainable.map(\.tensor), learningRate: learningRate, weightDecay: weightDecay)]
    }

    func loss(_ batch: (x: [Float], labels: [Float], n: Int)) -> StageLoss {
        steps += 1
        let x = batch.x

        let input = Tensor(x, shape: [batch.n, 3, 8, 8])
        let features = dropout(relu(net.bn(net.conv(input))), p: dropoutP, training: true, rng: &modelRandom)
        let logits = net.head(features.plain().reshaped([batch.n, 8 * 8 * 8]))
        let loss = multilabelSoftMarginLoss(logits, Tensor(batch.labels, shape: [batch.n, 4]))
        // A NaN input would not do: ReLU turns NaN into 0. The loss itself is poisoned.
        return .mean(steps == poisonStep ? scale(loss, .nan) : lossScale == 1 ? loss : scale(loss, lossScale))
    }
}

/// Uninterrupted run vs. a run stopped after epoch 1 and resumed from its epoch-0 checkpoint: the same losses,
/// step for step; a NaN loss stops every rank with the step named; a signal writes a checkpoint and stops.
func trainLoopChecks(_ world: Communicator, directory: URL, check: (Bool, String) -> Void) throws {
    func run(_ config: TrainLoopConfig, folder: String, resume: URL? = nil, poison: Int? = nil, signalAt: Int? = nil) throws -> ([Double], TrainOutcome) {
        let stage = CheckStage(dataset: 12)
        stage.poisonStep = poison
        let loop = TrainLoop(stage: stage, config: config, world: world, runDirectory: directory.appendingPathComponent(folder))
        var losses: [Double] = []
        loop.report = { r in
            losses.append(r.loss)
            if r.step == signalAt, world.rank == world.size - 1 { raise(SIGUSR1) }
        }
        let outcome = try loop.run(resume: resume)
        return (losses, outcome)
    }
    let config = TrainLoopConfig(epochs: 3, globalBatch: 4, learningRate: 0.01, weightDecay: 0.01, seed: 3, checkSync: 2,
                                 checkpointEpochs: [0, 1])
    let (straight, outcome) = try run(config, folder: "straight")
    check(outcome == .finished(steps: 9) && straight.count == 9, "3 epochs of 3 steps: \(outcome), \(straight.count) losses")
    guard straight.count == 9 else { return }

    // Evaluation hook after every epoch, and a poly schedule in the reported learning rates.
    var scheduled = config
    scheduled.schedule = .poly(maxIterations: 9, power: 1)
    let stage = CheckStage(dataset: 12)
    let loop = TrainLoop(stage: stage, config: scheduled, world: world, runDirectory: directory.appendingPathComponent("hooks"))
    var epochsSeen: [Int] = [], rates: [Double] = []
    loop.afterEpoch = { epoch, _ in epochsSeen.append(epoch) }
    loop.report = { rates.append($0.learningRate) }
    _ = try loop.run()
    check(epochsSeen == [0, 1, 2], "afterEpoch after every epoch: \(epochsSeen)")
    check(rates.count == 9 && abs(rates[0] - 0.01) < 1e-9 && abs(rates[8] - 0.01 / 9) < 1e-9, "poly schedule: \(rates)")

    var shorter = config
    shorter.epochs = 2
    _ = try run(shorter, folder: "stopped")
    let epoch0 = directory.appendingPathComponent("stopped").appendingPathComponent(TrainCheckpoint.fileName(step: 3))
    check(FileManager.default.fileExists(atPath: epoch0.path), "checkpoint after epoch 0 at step 3")
    let (resumed, _) = try run(config, folder: "resumed", resume: epoch0)
    check(resumed == Array(straight[3...]), "resumed losses \(resumed) equal the uninterrupted \(Array(straight[3...]))")
    check(try TrainCheckpoint.newest(in: directory.appendingPathComponent("stopped"))?.lastPathComponent == TrainCheckpoint.fileName(step: 6),
          "--resume auto picks the newest checkpoint")

    do {
        _ = try run(config, folder: "nan", poison: 5)
        check(false, "a NaN loss must stop the run")
    } catch {
        check("\(error)".contains("step 5"), "NaN stop names the step: \(error)")
    }

    let (_, preempted) = try run(config, folder: "signal", signalAt: 2)
    if case let .preempted(url) = preempted {
        check(url.lastPathComponent == TrainCheckpoint.fileName(step: 2), "signal checkpoint at step 2: \(url.lastPathComponent)")
    } else {
        check(false, "a signal must stop the run with a checkpoint: \(preempted)")
    }
}
