import ArgumentParser
import Distributed
import Foundation
import Imaging
import NN
import PCSformer
import Segmentation
import Storage

/// `pcs-mpi train-sp`: the sub-prototype stage (spec §6.3), data-parallel over the ranks.
struct TrainSPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-sp",
        abstract: "Train the SP network (21-way and (C − 1)·k-way heads) on HDF5 shards and `cluster`'s sub-category labels.",
        discussion: """
        Defaults are upstream's (global batch 8, 20 epochs, AdamW lr 5e-5, weight decay 5e-4, crop 512, no pair, \
        sub-category loss weight 1), starting from the ImageNet weights given with --init (upstream does not start \
        from the PC weights; those only feed the features of `cluster`). Checkpoints, resume, preemption, metrics \
        and --config work as in train-pc. Typical: `mpirun -n 8 pcs-mpi train-sp --data SHARDS --labels \
        sub_labels.h5 --init Conformer_small_patch16.pth --out RUN`.
        """)

    @OptionGroup var options: TrainOptions

    @Option(help: "Sub-category labels from `pcs-mpi cluster` (HDF5). Required, here or in --config.")
    var labels: String?

    @Option(help: "Weight w of the sub-category loss: ℓ20 + w·ℓsub. Default: 1.")
    var subclsWeight: Float?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        var file = try RunConfig.load(yaml: options.config.map { URL(fileURLWithPath: $0) })
        let settings = try options.resolve(&file, .sp)
        let labelsPath: String = try file.require("labels", flag: labels)
        let weight = try file.resolve("subcls-weight", flag: subclsWeight, default: 1)
        try file.checkUnknownKeys()
        guard weight >= 0 else { throw ValidationError("--subcls-weight must be ≥ 0") }
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: settings.data), name: settings.split)
        let subLabels = try SubCategoryLabels.read(URL(fileURLWithPath: labelsPath))
        let config = settings.model.config(classes: dataset.classNames.count + 1, k: subLabels.k)
        let conformer = try TrainOptions.model(settings, config: config, world: world)
        let augmentation = PCTrainAugmentation(cropSize: settings.crop, pairSize: 0,
                                               resize: RandomResizeLong(minLong: settings.minLong, maxLong: settings.maxLong))
        let stage = try SPTrainingStage(conformer: conformer, dataset: dataset, augmentation: augmentation, subLabels: subLabels,
                                        subLossWeight: weight)
        try TrainOptions.train(stage, settings: settings, file: file, world: world, command: "train-sp")
    }
}
