import ArgumentParser
import Distributed
import Foundation
import NN
import PCSformer
import Segmentation

/// The options `train-pc` and `train-sp` share. Each setting resolves as "flag, else --config file, else the
/// stage's default" (`StageDefaults`), and the resolved settings are saved as OUT/config.yaml.
struct TrainOptions: ParsableArguments {
    @Option(help: "YAML file of settings (keys are the long option names, e.g. `epochs: 14`, `resize-long: 320:640`); a flag given on the command line wins over the file. The resolved settings are saved as OUT/config.yaml.")
    var config: String?

    @Option(help: "Folder of the dataset shards (from `pcs-mpi ingest`). Required, here or in --config.")
    var data: String?

    @Option(help: "Shard set name (NAME-index.json). Default: train.")
    var split: String?

    @Option(help: "Run folder: checkpoints, metrics.jsonl, TensorBoard events, config.yaml. Required, here or in --config.")
    var out: String?

    @Option(help: "Network (pc, pc-coco, tiny-pc for train-pc; sp, sp-coco, tiny-sp for train-sp). Default: pc / sp.")
    var model: ModelVariant?

    @Option(name: .customLong("init"), help: "ImageNet Conformer checkpoint (.pth) to start from (spec §2.7 rules).")
    var initWeights: String?

    @Option(help: "Epochs. Default: 14 (PC), 20 (SP).")
    var epochs: Int?

    @Option(help: "Length in updates instead of epochs (crossing epochs as needed); wins over --epochs.")
    var iterations: Int?

    @Option(help: "Micro-batches per update: each rank's share of --batch is cut into this many, gradients are reduced once per update and the update equals the unaccumulated one. Default: 1.")
    var accumulate: Int?

    @Option(help: "Write a checkpoint every N updates (default: after epoch 0, even epochs and every epoch from 4, as upstream). The last update always writes one.")
    var checkpointEvery: Int?

    @Option(help: "Checkpoints kept besides the final one; older ones are removed once a newer one is complete. Default: 3.")
    var keep: Int?

    @Option(help: "Global batch (images per step over all ranks; a multiple of the rank count). Default: 4 (PC), 8 (SP).")
    var batch: Int?

    @Option(help: "AdamW learning rate (constant). Default: 5e-5.")
    var lr: Float?

    @Option(help: "AdamW decoupled weight decay. Default: 5e-4.")
    var weightDecay: Float?

    @Option(help: "Side of the square training crop (a multiple of 16). Default: 512.")
    var crop: Int?

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

    @Option(help: "How gradients travel in the allreduce: none (float32) or fp16 (half the bytes for slow links: each rank's gradients divided by the rank count and rounded to half precision, summed in float32 per step, the mean back in float32; as PyTorch DDP's fp16_compress_hook). Default: none.")
    var gradCompression: GradientCompression?

    @Option(help: "Stop after this many steps in all (0: run every epoch). Default: 0.")
    var maxSteps: Int?

    @Flag(inversion: .prefixedNo, help: "BatchNorm statistics over the global batch (synchronised over the ranks) instead of per rank. Default: off for PC (upstream's per-GPU statistics over 2 images), on for SP (upstream trained SP on one GPU, so its statistics cover the whole batch of 8).")
    var syncBn: Bool?

    /// The defaults that differ between the stages (spec §3.5, §6.3).
    struct StageDefaults {
        var model: ModelVariant, epochs: Int, batch: Int, syncBN: Bool, allowedModels: [ModelVariant], command: String
        static let pc = StageDefaults(model: .pc, epochs: 14, batch: 4, syncBN: false, allowedModels: [.pc, .pcCOCO, .tinyPC], command: "train-pc")
        static let sp = StageDefaults(model: .sp, epochs: 20, batch: 8, syncBN: true, allowedModels: [.sp, .spCOCO, .tinySP], command: "train-sp")
    }

    /// The settings after the rule "flag, else --config file, else default", checked.
    struct Settings {
        var data: String, split: String, out: String, model: ModelVariant, initWeights: String?
        var epochs: Int, iterations: Int?, accumulate: Int, checkpointEvery: Int?, keep: Int
        var batch: Int, lr: Float, weightDecay: Float, crop: Int, minLong: Int, maxLong: Int
        var seed: Int, resume: String?, checkSync: Int, bucketMb: Int, maxSteps: Int, syncBN: Bool
        var gradCompression: GradientCompression
    }

    func resolve(_ file: inout RunConfig, _ defaults: StageDefaults) throws -> Settings {
        let resizeLong = try file.resolve("resize-long", flag: self.resizeLong, default: "320:640")
        let range = resizeLong.split(separator: ":").compactMap { Int($0) }
        guard range.count == 2, range[0] >= 16, range[0] <= range[1] else {
            throw ValidationError("--resize-long must be MIN:MAX with 16 ≤ MIN ≤ MAX; got '\(resizeLong)'")
        }
        let settings = Settings(
            data: try file.require("data", flag: data), split: try file.resolve("split", flag: split, default: "train"),
            out: try file.require("out", flag: out), model: try file.resolve("model", flag: model, default: defaults.model),
            initWeights: try file.resolveOptional("init", flag: initWeights),
            epochs: try file.resolve("epochs", flag: epochs, default: defaults.epochs),
            iterations: try file.resolveOptional("iterations", flag: iterations),
            accumulate: try file.resolve("accumulate", flag: accumulate, default: 1),
            checkpointEvery: try file.resolveOptional("checkpoint-every", flag: checkpointEvery),
            keep: try file.resolve("keep", flag: keep, default: 3),
            batch: try file.resolve("batch", flag: batch, default: defaults.batch),
            lr: try file.resolve("lr", flag: lr, default: 5e-5), weightDecay: try file.resolve("weight-decay", flag: weightDecay, default: 5e-4),
            crop: try file.resolve("crop", flag: crop, default: 512),
            minLong: range[0], maxLong: range[1], seed: try file.resolve("seed", flag: seed, default: 0),
            resume: try file.resolveOptional("resume", flag: resume), checkSync: try file.resolve("check-sync", flag: checkSync, default: 0),
            bucketMb: try file.resolve("bucket-mb", flag: bucketMb, default: 25), maxSteps: try file.resolve("max-steps", flag: maxSteps, default: 0),
            syncBN: try file.resolve("sync-bn", flag: syncBn, default: defaults.syncBN),
            gradCompression: try file.resolve("grad-compression", flag: gradCompression, default: GradientCompression.none))
        guard defaults.allowedModels.contains(settings.model) else {
            throw ValidationError("--model must be \(defaults.allowedModels.map(\.rawValue).joined(separator: ", ")) for \(defaults.command)")
        }
        guard settings.epochs >= 1, settings.batch >= 1 else { throw ValidationError("--epochs and --batch must be at least 1") }
        guard (settings.iterations ?? 1) >= 1, (settings.checkpointEvery ?? 1) >= 1, settings.accumulate >= 1 else {
            throw ValidationError("--iterations, --checkpoint-every and --accumulate must be at least 1")
        }
        guard settings.keep >= 0 else { throw ValidationError("--keep must be ≥ 0") }
        guard settings.lr > 0, settings.lr.isFinite, settings.weightDecay >= 0, settings.weightDecay.isFinite else {
            throw ValidationError("--lr must be a positive number and --weight-decay ≥ 0; got \(settings.lr) and \(settings.weightDecay)")
        }
        guard settings.crop % 16 == 0, settings.crop > 0 else { throw ValidationError("--crop must be a positive multiple of 16") }
        guard settings.checkSync >= 0, settings.bucketMb >= 1, settings.maxSteps >= 0, settings.seed >= 0 else {
            throw ValidationError("--check-sync, --max-steps and --seed must be ≥ 0, --bucket-mb ≥ 1")
        }
        if let resume = settings.resume, resume != "auto", !FileManager.default.fileExists(atPath: resume) {
            throw ValidationError("--resume \(resume): no such checkpoint")
        }
        return settings
    }

    /// The Conformer the stage trains, from these settings (see `Conformer.forTraining`).
    static func model(_ settings: Settings, config: ConformerConfig, world: Communicator) throws -> Conformer {
        try Conformer.forTraining(config, seed: UInt64(settings.seed), imageNet: settings.initWeights,
                                  synchronizedBatchNorm: settings.syncBN ? world : nil)
    }

    /// Trains `stage` with the shared loop under these settings (`TrainRun`).
    static func train<Stage: TrainingStage>(_ stage: Stage, settings: Settings, file: RunConfig, world: Communicator, command: String) throws {
        let loopConfig = TrainLoopConfig(epochs: settings.epochs, globalBatch: settings.batch, learningRate: settings.lr,
                                         weightDecay: settings.weightDecay, seed: UInt64(settings.seed), checkSync: settings.checkSync,
                                         bucketMegabytes: settings.bucketMb, maxSteps: settings.maxSteps)
        var loop = loopConfig
        loop.iterations = settings.iterations
        loop.accumulate = settings.accumulate
        loop.checkpointEvery = settings.checkpointEvery
        loop.keep = settings.keep
        loop.gradientCompression = settings.gradCompression
        let run = TrainRun(directory: URL(fileURLWithPath: settings.out), settings: file, resume: settings.resume, command: command)
        try run.run(stage, loop: loop, world: world)
    }
}

extension ModelVariant: ConfigRepresentable {}
extension GradientCompression: ConfigRepresentable, ExpressibleByArgument {}
