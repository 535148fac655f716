import ArgumentParser
import Distributed
import Formats
import Foundation
import NN
import PCSformer
import Storage

/// `pcs-mpi train-aff`: AffinityNet on the la/ha maps (spec §8.5), data-parallel over the ranks on the shared loop.
struct TrainAffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-aff",
        abstract: "Train AffinityNet (ResNet-38d + 448-channel head) on crf-labels' la/ha maps, from the ResNet-38 ImageNet weights.",
        discussion: """
        Upstream's recipe (spec §8.5): crop 448, colour jitter, flip, global batch 8, 8 epochs, SGD with the poly \
        schedule (power 0.9) over the whole run, pretrained weights at --lr 0.01 and the new heads at 10×, weight \
        decay 5e-4, conv1a and b2 frozen and every BatchNorm frozen. The loss bg/4 + fg/4 + neg/2 is a global-batch \
        loss: each term's sums and counts are totalled over the ranks. --momentum defaults to upstream's effective \
        5e-4 (its PolyOptimizer passes the weight decay into SGD's momentum slot, spec §12 Q6, and the published \
        numbers used it); 0.9 is what was meant. --init takes the MXNet file ilsvrc-cls_rna-a1_cls1000_ep-0001.params \
        (renamed as spec §8.7) or a .pth/.h5 state dict, loaded into the backbone; the heads keep their init. \
        Checkpoints, --resume auto, preemption, metrics and --config work as in train-pc.
        """)

    enum Model: String, ExpressibleByArgument, ConfigRepresentable, CaseIterable { case aff, tinyAff = "tiny-aff" }

    @Option(help: "YAML file of settings (keys are the long option names); a flag wins over the file.")
    var config: String?
    @Option(help: "Folder of the dataset shards. Required, here or in --config.")
    var data: String?
    @Option(help: "Shard set name. Default: train.")
    var split: String?
    @Option(help: "The crf-labels output folder (maps la and ha) for that set. Required, here or in --config.")
    var labels: String?
    @Option(help: "Run folder. Required, here or in --config.")
    var out: String?
    @Option(help: "Network: aff or tiny-aff. Default: aff.")
    var model: Model?
    @Option(name: .customLong("init"), help: "ResNet-38 ImageNet weights (.params, .pth or .h5) for the backbone.")
    var initWeights: String?
    @Option(help: "Epochs. Default: 8.")
    var epochs: Int?
    @Option(help: "Length in updates instead of epochs.")
    var iterations: Int?
    @Option(help: "Global batch. Default: 8.")
    var batch: Int?
    @Option(help: "Micro-batches per update. Default: 1.")
    var accumulate: Int?
    @Option(help: "Learning rate of the pretrained weights (the heads get 10×). Default: 0.01.")
    var lr: Float?
    @Option(help: "Weight decay. Default: 5e-4.")
    var weightDecay: Float?
    @Option(help: "SGD momentum. Default: 5e-4 (upstream's effective value; 0.9 was intended).")
    var momentum: Float?
    @Option(help: "Side of the square crop (a multiple of 8). Default: 448.")
    var crop: Int?
    @Option(help: "Run seed. Default: 0.")
    var seed: Int?
    @Option(help: "A checkpoint path, or `auto` for the newest complete one in --out.")
    var resume: String?
    @Option(help: "Write a checkpoint every N updates. Default: after every epoch.")
    var checkpointEvery: Int?
    @Option(help: "Checkpoints kept besides the final one. Default: 3.")
    var keep: Int?
    @Option(help: "Stop after this many updates (0: all). Default: 0.")
    var maxSteps: Int?
    @Flag(help: "Label the crop's padding 255 (ignored) as PSA did, instead of PCSformer's 0 (background) (spec §12 Q4).")
    var padLabelsIgnore = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        var file = try RunConfig.load(yaml: config.map { URL(fileURLWithPath: $0) })
        let data: String = try file.require("data", flag: data), labels: String = try file.require("labels", flag: labels)
        let out: String = try file.require("out", flag: out)
        let split = try file.resolve("split", flag: split, default: "train")
        let model = try file.resolve("model", flag: model, default: .aff)
        let initWeights = try file.resolveOptional("init", flag: initWeights)
        var loop = TrainLoopConfig(epochs: try file.resolve("epochs", flag: epochs, default: 8),
                                   globalBatch: try file.resolve("batch", flag: batch, default: 8),
                                   learningRate: try file.resolve("lr", flag: lr, default: 0.01),
                                   weightDecay: try file.resolve("weight-decay", flag: weightDecay, default: 5e-4),
                                   seed: UInt64(try file.resolve("seed", flag: seed, default: 0)),
                                   maxSteps: try file.resolve("max-steps", flag: maxSteps, default: 0))
        loop.iterations = try file.resolveOptional("iterations", flag: iterations)
        loop.accumulate = try file.resolve("accumulate", flag: accumulate, default: 1)
        loop.checkpointEvery = try file.resolveOptional("checkpoint-every", flag: checkpointEvery)
        loop.checkpointEpochs = Array(0..<max(loop.epochs, 1))
        loop.keep = try file.resolve("keep", flag: keep, default: 3)
        loop.optimizer = .sgd(momentum: try file.resolve("momentum", flag: momentum, default: 5e-4))
        let cropSize = try file.resolve("crop", flag: crop, default: 448)
        let resume = try file.resolveOptional("resume", flag: resume)
        let padIgnore = try file.resolve("pad-labels-ignore", flag: padLabelsIgnore ? true : nil, default: false)
        try file.checkUnknownKeys()
        guard loop.learningRate > 0, loop.weightDecay >= 0, loop.epochs >= 1, loop.globalBatch >= 1, loop.accumulate >= 1, loop.keep >= 0 else {
            throw ValidationError("--lr must be positive, --weight-decay and --keep ≥ 0, --epochs, --batch and --accumulate ≥ 1")
        }

        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let labelSet = try ShardedDataset.output(directory: URL(fileURLWithPath: labels), name: "crf-labels", for: dataset, made: "crf-labels")
        let network = AffinityNet(model == .aff ? .full : .tiny, seed: loop.seed)
        if let initWeights {
            let weights = MXNetParams.isParamsFile(initWeights) ? try ResNet38Weights.loadMXNet(initWeights) : try StateDict.load(path: initWeights)
            let report = try network.backbone.load(weights, strict: false, source: initWeights)
            Log.info("train-aff: \(initWeights): backbone loaded (\(report.missingKeys.count) missing, \(report.unexpectedKeys.count) unexpected, \(report.misShapedKeys.count) mis-shaped)")
        }
        network.freezeAsUpstream()
        let stage = try AffinityTrainingStage(network: network, dataset: dataset, labelSet: labelSet, cropSize: cropSize)
        stage.padLabelsIgnore = padIgnore
        // Poly over the whole run, refreshed every update (spec §8.5).
        let batchesPerEpoch = dataset.count / loop.globalBatch
        loop.schedule = .poly(maxIterations: max(1, loop.iterations ?? loop.epochs * batchesPerEpoch), power: 0.9)
        try TrainRun(directory: URL(fileURLWithPath: out), settings: file, resume: resume, command: "train-aff")
            .run(stage, loop: loop, world: world)
    }
}
