import ArgumentParser
import Distributed
import Foundation
import Imaging
import NN
import PCSformer
import Segmentation
import Storage

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

    @OptionGroup var options: TrainOptions

    @Option(help: "Side of the cross-scale pair (a multiple of 16). Default: 224.")
    var pair: Int?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        var file = try RunConfig.load(yaml: options.config.map { URL(fileURLWithPath: $0) })
        let settings = try options.resolve(&file, .pc)
        let pair = try file.resolve("pair", flag: self.pair, default: 224)
        try file.checkUnknownKeys()
        guard pair % 16 == 0, pair > 0 else { throw ValidationError("--pair must be a positive multiple of 16") }
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: settings.data), name: settings.split)
        let conformer = try TrainOptions.model(settings, config: settings.model.config(classes: dataset.classNames.count + 1), world: world)
        let augmentation = PCTrainAugmentation(cropSize: settings.crop, pairSize: pair,
                                               resize: RandomResizeLong(minLong: settings.minLong, maxLong: settings.maxLong))
        let stage = try PCTrainingStage(conformer: conformer, dataset: dataset, augmentation: augmentation)
        try TrainOptions.train(stage, settings: settings, file: file, world: world, command: "train-pc")
    }
}
