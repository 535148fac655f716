import ArgumentParser
import DeepLab
import Distributed
import Formats
import Foundation
import Imaging
import NN
import Storage

/// `pcs-mpi train-deeplab`: DeepLab-v2 (ResNet-101, ASPP, MSC) on the CSE pseudo labels (spec §10.2), on the
/// shared loop.
struct TrainDeepLabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-deeplab",
        abstract: "Train DeepLab-v2 (ResNet-101 + ASPP, multi-scale inputs) on the pseudo labels of cse, or on the ground truth.",
        discussion: """
        deeplab-pytorch's VOC recipe (spec §10.2): random scale {0.5, 0.75, 1, 1.25, 1.5}, padding to the crop with \
        the mean colour and label 255, a random 321 crop, flip; the sum of the four MSC outputs' cross-entropies \
        (labels resized nearest to each output, 255 ignored), each a mean over the valid pixels of the global batch; \
        SGD momentum 0.9 with backbone weights at --lr, ASPP weights at 10× and ASPP biases at 20× without weight \
        decay; poly 0.9 refreshed every 10 updates; 20,000 updates of a global batch of 10 (--accumulate defaults \
        to 2 when it divides each rank's share, as upstream's 5 × iter_size 2); BatchNorm frozen (--batch-norm train for random weights); a checkpoint \
        every 5,000 updates. --init takes deeplab-pytorch's deeplabv1_resnet101-coco.pth or -imagenet.pth (loaded \
        non-strictly into the base network: the ASPP keeps its init, the report names what was skipped), a \
        torchvision ResNet-101 .pth (renamed; an initialisation only), or a DeepLab checkpoint. --resume auto, \
        preemption, metrics and --config work as in train-pc.
        """)

    @Option(help: "YAML file of settings (keys are the long option names); a flag wins over the file.")
    var config: String?
    @Option(help: "Folder of the dataset shards. Required, here or in --config.")
    var data: String?
    @Option(help: "Shard set name. Default: train.")
    var split: String?
    @Option(help: "The cse output folder (pseudo labels of that set), or `gt` for the shards' own masks. Required.")
    var labels: String?
    @Option(help: "Map of the label set to train on. Default: its first (cse writes `labels`).")
    var map: String?
    @Option(help: "Run folder. Required, here or in --config.")
    var out: String?
    @Option(help: "Network: deeplab (21 classes), deeplab-coco (81) or tiny-deeplab; the class count follows the dataset. Default: deeplab.")
    var model: String?
    @Option(name: .customLong("init"), help: "Initial weights (.pth or .h5): deeplab-pytorch's converted caffemodel, torchvision's ResNet-101, or a DeepLab checkpoint.")
    var initWeights: String?
    @Option(help: "Updates. Default: 20000.")
    var iterations: Int?
    @Option(help: "Global batch (images per update over all ranks). Default: 10.")
    var batch: Int?
    @Option(help: "Micro-batches per update. Default: 2 when it divides each rank's share, else 1.")
    var accumulate: Int?
    @Option(help: "Learning rate of the backbone (ASPP weights 10×, biases 20×). Default: 2.5e-4.")
    var lr: Float?
    @Option(help: "Weight decay (none on the ASPP biases). Default: 5e-4.")
    var weightDecay: Float?
    @Option(help: "SGD momentum. Default: 0.9.")
    var momentum: Float?
    @Option(help: "Refresh the poly learning rate every N updates. Default: 10.")
    var lrDecayEvery: Int?
    @Option(help: "Side of the square crop. Default: 321.")
    var crop: Int?
    @Option(help: "Random scales, comma-separated. Default: 0.5,0.75,1,1.25,1.5.")
    var scales: String?
    @Option(help: "BatchNorm: `frozen` (upstream: the init's running statistics, affine fixed) or `train` (batch statistics, affine learnt at 1×: for training from random weights, which frozen BatchNorm cannot). Default: frozen.")
    var batchNorm: String?
    @Option(help: "Run seed. Default: 0.")
    var seed: Int?
    @Option(help: "A checkpoint path, or `auto` for the newest complete one in --out.")
    var resume: String?
    @Option(help: "Write a checkpoint every N updates. Default: 5000.")
    var checkpointEvery: Int?
    @Option(help: "Checkpoints kept besides the final one. Default: 3.")
    var keep: Int?
    @Option(help: "Stop after this many updates (0: all). Default: 0.")
    var maxSteps: Int?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        var file = try RunConfig.load(yaml: config.map { URL(fileURLWithPath: $0) })
        let data: String = try file.require("data", flag: data), labels: String = try file.require("labels", flag: labels)
        let out: String = try file.require("out", flag: out)
        let split = try file.resolve("split", flag: split, default: "train")
        let map = try file.resolveOptional("map", flag: map)
        let modelName = try file.resolve("model", flag: model, default: "deeplab")
        let initWeights = try file.resolveOptional("init", flag: initWeights)
        let iterations = try file.resolve("iterations", flag: iterations, default: 20000)
        var loop = TrainLoopConfig(epochs: 1, globalBatch: try file.resolve("batch", flag: batch, default: 10),
                                   learningRate: try file.resolve("lr", flag: lr, default: 2.5e-4),
                                   weightDecay: try file.resolve("weight-decay", flag: weightDecay, default: 5e-4),
                                   seed: UInt64(try file.resolve("seed", flag: seed, default: 0)),
                                   maxSteps: try file.resolve("max-steps", flag: maxSteps, default: 0))
        loop.iterations = iterations
        let share = loop.globalBatch / max(world.size, 1)
        loop.accumulate = try file.resolve("accumulate", flag: accumulate, default: share % 2 == 0 ? 2 : 1)
        loop.checkpointEvery = try file.resolve("checkpoint-every", flag: checkpointEvery, default: 5000)
        loop.keep = try file.resolve("keep", flag: keep, default: 3)
        loop.optimizer = .sgd(momentum: try file.resolve("momentum", flag: momentum, default: 0.9))
        let every = try file.resolve("lr-decay-every", flag: lrDecayEvery, default: 10)
        let cropSize = try file.resolve("crop", flag: crop, default: 321)
        let scaleText = try file.resolve("scales", flag: scales, default: "0.5,0.75,1,1.25,1.5")
        let resume = try file.resolveOptional("resume", flag: resume)
        let batchNormMode = try file.resolve("batch-norm", flag: batchNorm, default: "frozen")
        try file.checkUnknownKeys()
        guard ["frozen", "train"].contains(batchNormMode) else {
            throw ValidationError("--batch-norm must be frozen or train; got '\(batchNormMode)'")
        }
        let scaleValues = scaleText.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !scaleValues.isEmpty, scaleValues.count == scaleText.split(separator: ",").count, scaleValues.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--scales must be positive numbers separated by commas; got '\(scaleText)'")
        }
        guard loop.learningRate > 0, loop.weightDecay >= 0, iterations >= 1, loop.globalBatch >= 1, loop.accumulate >= 1,
              loop.keep >= 0, every >= 1, cropSize >= 16 else {
            throw ValidationError("--lr must be positive, --weight-decay and --keep ≥ 0, --iterations, --batch, --accumulate and --lr-decay-every ≥ 1, --crop ≥ 16")
        }

        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let source: DeepLabLabelSource
        if labels == "gt" {
            source = .groundTruth
        } else {
            guard let set = try ShardedDataset.labelSet(in: URL(fileURLWithPath: labels), for: dataset, made: "cse") else {
                throw FileError(path: labels, what: "no label set here (run cse with --out \(labels), or pass --labels gt)")
            }
            guard let name = set.labelMapName(map) else {
                throw ValidationError("--map \(map ?? "?"): the label set holds \(set.labelMapNames.joined(separator: ", "))")
            }
            source = .labelSet(set, map: name)
        }
        guard let config = DeepLabConfig.named(modelName, classes: dataset.classNames.isEmpty ? nil : dataset.classNames.count + 1) else {
            throw ValidationError("--model must be one of \(DeepLabConfig.names.joined(separator: ", ")); got '\(modelName)'")
        }
        let network = DeepLabV2MSC(config, seed: loop.seed)
        if let initWeights {
            let (kind, report) = try DeepLabCheckpoint.loadInit(network, path: initWeights)
            if world.isRoot {
                Log.info("train-deeplab: \(initWeights) (\(kind.rawValue)): \(report.missingKeys.count) keys kept their init, \(report.unexpectedKeys.count) skipped\(report.unexpectedKeys.isEmpty ? "" : " (\(report.unexpectedKeys.prefix(4).joined(separator: ", "))\(report.unexpectedKeys.count > 4 ? ", …" : ""))")")
            }
        }
        if batchNormMode == "train" { network.setBatchNormMode(.training) } else { network.freezeBatchNorm() }
        let stage = try DeepLabTrainingStage(network: network, dataset: dataset, labels: source,
                                             augmentation: DeepLabAugmentation(scales: scaleValues, cropSize: cropSize))
        loop.schedule = .poly(maxIterations: iterations, power: 0.9, every: every)
        try TrainRun(directory: URL(fileURLWithPath: out), settings: file, resume: resume, command: "train-deeplab")
            .run(stage, loop: loop, world: world)
    }
}
