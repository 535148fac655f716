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

    @Option(help: "Folder of the dataset shards (from `pcs-mpi ingest`).")
    var data: String

    @Option(help: "Shard set name (NAME-index.json).")
    var split: String = "train"

    @Option(help: "Run folder: checkpoints, metrics.jsonl, TensorBoard events.")
    var out: String

    @Option(help: "Network: pc or tiny-pc.")
    var model: ModelVariant = .pc

    @Option(name: .customLong("init"), help: "ImageNet Conformer checkpoint (.pth) to start from (spec §2.7 rules).")
    var initWeights: String?

    @Option(help: "Epochs.")
    var epochs: Int = 14

    @Option(help: "Global batch (images per step over all ranks; a multiple of the rank count).")
    var batch: Int = 4

    @Option(help: "AdamW learning rate (constant).")
    var lr: Float = 5e-5

    @Option(help: "AdamW decoupled weight decay.")
    var weightDecay: Float = 5e-4

    @Option(help: "Side of the square training crop (a multiple of 16).")
    var crop: Int = 512

    @Option(help: "Side of the cross-scale pair (a multiple of 16).")
    var pair: Int = 224

    @Option(help: "Range of the random long side before cropping, MIN:MAX.")
    var resizeLong: String = "320:640"

    @Option(help: "Run seed: shuffling, augmentation and initialisation derive from it.")
    var seed: UInt64 = 0

    @Option(help: "Resume: a checkpoint path, or `auto` for the newest in --out (nothing there: start fresh).")
    var resume: String?

    @Option(help: "Compare a parameter checksum across ranks every N steps and stop if they differ (0: never).")
    var checkSync: Int = 0

    @Option(help: "Gradient bucket size in MB for the overlapped allreduce.")
    var bucketMb: Int = 25

    @Option(help: "Stop after this many steps in all (0: run every epoch).")
    var maxSteps: Int = 0

    @OptionGroup var global: GlobalOptions

    var longRange: (Int, Int)? {
        let parts = resizeLong.split(separator: ":").compactMap { Int($0) }
        return parts.count == 2 && parts[0] >= 16 && parts[0] <= parts[1] ? (parts[0], parts[1]) : nil
    }

    func validate() throws {
        guard [ModelVariant.pc, .tinyPC, .pcCOCO].contains(model) else { throw ValidationError("--model must be pc, pc-coco or tiny-pc for train-pc") }
        guard epochs >= 1, batch >= 1 else { throw ValidationError("--epochs and --batch must be at least 1") }
        guard crop % 16 == 0, pair % 16 == 0, crop > 0, pair > 0 else { throw ValidationError("--crop and --pair must be positive multiples of 16") }
        guard longRange != nil else { throw ValidationError("--resize-long must be MIN:MAX with 16 ≤ MIN ≤ MAX; got '\(resizeLong)'") }
        guard checkSync >= 0, bucketMb >= 1, maxSteps >= 0 else { throw ValidationError("--check-sync and --max-steps must be ≥ 0, --bucket-mb ≥ 1") }
        if let resume, resume != "auto", !FileManager.default.fileExists(atPath: resume) {
            throw ValidationError("--resume \(resume): no such checkpoint")
        }
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let conformer = Conformer(model.config(classes: dataset.classNames.count + 1), seed: seed)
        if let initWeights { try ConformerCheckpoint.loadImageNet(conformer, path: initWeights) }
        conformer.setBatchNormMode(.training)
        let (minLong, maxLong) = longRange!
        let augmentation = PCTrainAugmentation(cropSize: crop, pairSize: pair, resize: RandomResizeLong(minLong: minLong, maxLong: maxLong))
        let stage = try PCTrainingStage(conformer: conformer, dataset: dataset, augmentation: augmentation)
        let runDirectory = URL(fileURLWithPath: out)
        let config = TrainLoopConfig(epochs: epochs, globalBatch: batch, learningRate: lr, weightDecay: weightDecay, seed: seed,
                                     checkSync: checkSync, bucketMegabytes: bucketMb, maxSteps: maxSteps)
        let loop = TrainLoop(stage: stage, config: config, world: world, runDirectory: runDirectory)
        loop.configRecord = String(decoding: try JSONEncoder().encode(["command": CommandLine.arguments.joined(separator: " ")]), as: UTF8.self)
        let reporter = world.isRoot ? try TrainReporter(directory: runDirectory) : nil
        loop.report = { reporter?.record($0) }
        let resumeFrom: URL? = resume == "auto" ? TrainCheckpoint.newest(in: runDirectory) : resume.map { URL(fileURLWithPath: $0) }
        let outcome = try loop.run(resume: resumeFrom)
        reporter?.close()
        if case let .finished(steps) = outcome { Log.info("train-pc: \(steps) steps done; checkpoints in \(out)") }
    }
}
