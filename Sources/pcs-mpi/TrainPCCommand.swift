import ArgumentParser
import Distributed
import Foundation
import Imaging
import NN
import PCSformer
import Segmentation

/// `pcs-mpi train-pc`: the pair-wise cross-scale stage (spec §3), data-parallel over the ranks.
struct TrainPCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-pc",
        abstract: "Train the PC network (pair-wise cross-scale) on HDF5 shards, data-parallel over MPI ranks.",
        discussion: """
        Defaults are upstream's (global batch 4, 14 epochs, AdamW lr 5e-5, weight decay 5e-4, crop 512 with its \
        224 pair). The global batch is split over the ranks; gradients are averaged while backward runs. \
        Checkpoints go to OUT/checkpoint-<step>.h5 after epochs 0, 2, 4, 5, … (the /model group is the state dict: \
        `pcs-mpi convert` and `infer-cam` read it). SIGTERM or SIGUSR1 (Slurm's preemption warning) finish the \
        step, write a checkpoint and exit 0; `--resume auto` continues from the newest. Rank 0 writes \
        OUT/metrics.jsonl and TensorBoard event files.
        """)

    @Option(help: "YAML file of settings (keys are the long option names, e.g. `epochs: 14`, `resize-long: 320:640`); a flag given on the command line wins over the file. The resolved settings are saved as OUT/config.yaml.")
    var config: String?

    @Option(help: "Folder of the dataset shards (from `pcs-mpi ingest`). Required, here or in --config.")
    var data: String?

    @Option(help: "Shard set name (NAME-index.json). Default: train.")
    var split: String?

    @Option(help: "Run folder: checkpoints, metrics.jsonl, TensorBoard events, config.yaml. Required, here or in --config.")
    var out: String?

    @Option(help: "Network: pc, pc-coco or tiny-pc. Default: pc.")
    var model: ModelVariant?

    @Option(name: .customLong("init"), help: "ImageNet Conformer checkpoint (.pth) to start from (spec §2.7 rules).")
    var initWeights: String?

    @Option(help: "Epochs. Default: 14.")
    var epochs: Int?

    @Option(help: "Global batch (images per step over all ranks; a multiple of the rank count). Default: 4.")
    var batch: Int?

    @Option(help: "AdamW learning rate (constant). Default: 5e-5.")
    var lr: Float?

    @Option(help: "AdamW decoupled weight decay. Default: 5e-4.")
    var weightDecay: Float?

    @Option(help: "Side of the square training crop (a multiple of 16). Default: 512.")
    var crop: Int?

    @Option(help: "Side of the cross-scale pair (a multiple of 16). Default: 224.")
    var pair: Int?

    @Option(help: "Range of the random long side before cropping, MIN:MAX. Default: 320:640.")
    var resizeLong: String?

    @Option(help: "Run seed: shuffling, augmentation and initialisation derive from it. Default: 0.")
    var seed: Int?

    @Option(help: "Resume: a checkpoint path, or `auto` for the newest in --out (nothing there: start fresh).")
    var resume: String?

    @Option(help: "Compare a parameter checksum across ranks every N steps and stop if they differ (0: never). Default: 0.")
    var checkSync: Int?

    @Option(help: "Gradient bucket size in MB for the overlapped allreduce. Default: 25.")
    var bucketMb: Int?

    @Option(help: "Stop after this many steps in all (0: run every epoch). Default: 0.")
    var maxSteps: Int?

    @Flag(help: "BatchNorm statistics over the global batch (synchronised over the ranks) instead of per rank (upstream's per-GPU statistics, the default).")
    var syncBn = false

    @OptionGroup var global: GlobalOptions

    /// The settings after the rule "flag, else --config file, else default", checked.
    struct Settings {
        var data: String, split: String, out: String, model: ModelVariant, initWeights: String?
        var epochs: Int, batch: Int, lr: Float, weightDecay: Float, crop: Int, pair: Int, minLong: Int, maxLong: Int
        var seed: Int, resume: String?, checkSync: Int, bucketMb: Int, maxSteps: Int, syncBN: Bool
    }

    func resolve(_ file: inout RunConfig) throws -> Settings {
        let resizeLong = try file.resolve("resize-long", flag: self.resizeLong, default: "320:640")
        let range = resizeLong.split(separator: ":").compactMap { Int($0) }
        guard range.count == 2, range[0] >= 16, range[0] <= range[1] else {
            throw ValidationError("--resize-long must be MIN:MAX with 16 ≤ MIN ≤ MAX; got '\(resizeLong)'")
        }
        let settings = Settings(
            data: try file.require("data", flag: data), split: try file.resolve("split", flag: split, default: "train"),
            out: try file.require("out", flag: out), model: try file.resolve("model", flag: model, default: .pc),
            initWeights: try file.resolveOptional("init", flag: initWeights),
            epochs: try file.resolve("epochs", flag: epochs, default: 14), batch: try file.resolve("batch", flag: batch, default: 4),
            lr: try file.resolve("lr", flag: lr, default: 5e-5), weightDecay: try file.resolve("weight-decay", flag: weightDecay, default: 5e-4),
            crop: try file.resolve("crop", flag: crop, default: 512), pair: try file.resolve("pair", flag: pair, default: 224),
            minLong: range[0], maxLong: range[1], seed: try file.resolve("seed", flag: seed, default: 0),
            resume: try file.resolveOptional("resume", flag: resume), checkSync: try file.resolve("check-sync", flag: checkSync, default: 0),
            bucketMb: try file.resolve("bucket-mb", flag: bucketMb, default: 25), maxSteps: try file.resolve("max-steps", flag: maxSteps, default: 0),
            syncBN: try file.resolve("sync-bn", flag: syncBn ? true : nil, default: false))
        try file.checkUnknownKeys()
        guard [ModelVariant.pc, .tinyPC, .pcCOCO].contains(settings.model) else { throw ValidationError("--model must be pc, pc-coco or tiny-pc for train-pc") }
        guard settings.epochs >= 1, settings.batch >= 1 else { throw ValidationError("--epochs and --batch must be at least 1") }
        guard settings.crop % 16 == 0, settings.pair % 16 == 0, settings.crop > 0, settings.pair > 0 else {
            throw ValidationError("--crop and --pair must be positive multiples of 16")
        }
        guard settings.checkSync >= 0, settings.bucketMb >= 1, settings.maxSteps >= 0, settings.seed >= 0 else {
            throw ValidationError("--check-sync, --max-steps and --seed must be ≥ 0, --bucket-mb ≥ 1")
        }
        if let resume = settings.resume, resume != "auto", !FileManager.default.fileExists(atPath: resume) {
            throw ValidationError("--resume \(resume): no such checkpoint")
        }
        return settings
    }

    func run() throws {
        let world = global.startWorld()
        var file = try RunConfig.load(yaml: config.map { URL(fileURLWithPath: $0) })
        let settings = try resolve(&file)
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: settings.data), name: settings.split)
        let conformer = Conformer(settings.model.config(classes: dataset.classNames.count + 1), seed: UInt64(settings.seed))
        if let initWeights = settings.initWeights { try ConformerCheckpoint.loadImageNet(conformer, path: initWeights) }
        conformer.setBatchNormMode(.training)
        if settings.syncBN {
            for bn in conformer.batchNorms { bn.statisticsReducer = { world.allreduce(&$0) } }
        }
        let augmentation = PCTrainAugmentation(cropSize: settings.crop, pairSize: settings.pair,
                                               resize: RandomResizeLong(minLong: settings.minLong, maxLong: settings.maxLong))
        let stage = try PCTrainingStage(conformer: conformer, dataset: dataset, augmentation: augmentation)
        let runDirectory = URL(fileURLWithPath: settings.out)
        let loopConfig = TrainLoopConfig(epochs: settings.epochs, globalBatch: settings.batch, learningRate: settings.lr,
                                         weightDecay: settings.weightDecay, seed: UInt64(settings.seed), checkSync: settings.checkSync,
                                         bucketMegabytes: settings.bucketMb, maxSteps: settings.maxSteps)
        let loop = TrainLoop(stage: stage, config: loopConfig, world: world, runDirectory: runDirectory)
        loop.configRecord = try file.yamlText()
        if world.isRoot {
            try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
            try file.write(to: runDirectory.appendingPathComponent("config.yaml"), header: "pcs-mpi train-pc, resolved settings")
        }
        let reporter = world.isRoot ? try TrainReporter(directory: runDirectory) : nil
        loop.report = { reporter?.record($0) }
        let resumeFrom: URL? = settings.resume == "auto" ? TrainCheckpoint.newest(in: runDirectory) : settings.resume.map { URL(fileURLWithPath: $0) }
        let outcome = try loop.run(resume: resumeFrom)
        reporter?.close()
        if case let .finished(steps) = outcome { Log.info("train-pc: \(steps) steps done; checkpoints in \(settings.out)") }
    }
}

extension ModelVariant: ConfigRepresentable {}
