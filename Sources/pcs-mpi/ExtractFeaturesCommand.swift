import ArgumentParser
import Distributed
import Foundation
import NN
import PCSformer
import Segmentation
import Storage

/// `pcs-mpi extract-features`: the SP stage's image features (spec §6.1), distributed over the ranks.
struct ExtractFeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract-features",
        abstract: "Global-average CNN features of the PC network for every image of a shard set (input of `cluster`).",
        discussion: """
        Each image is warped to --side × --side (PIL bicubic, aspect ratio discarded as upstream), normalised, not \
        flipped; the feature is the spatial mean of the final CNN map (1,024-d for Conformer-S). Output: HDF5 with \
        `features` (N, D) float32 in dataset order and `ids`. Under mpirun the images are split over the ranks.
        """)

    @Option(help: "Folder of the dataset shards.")
    var data: String

    @Option(help: "Shard set name.")
    var split: String = "train"

    @Option(help: "The PC checkpoint (.h5 from train-pc, or upstream's .pth), loaded strictly.")
    var weights: String

    @Option(help: "Network of the checkpoint: pc, pc-coco or tiny-pc.")
    var model: ModelVariant = .pc

    @Option(help: "Side of the square warp.")
    var side: Int = 512

    @Option(help: "Output HDF5 file.")
    var out: String

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard side > 0, side % 16 == 0 else { throw ValidationError("--side must be a positive multiple of 16; got \(side)") }
        try requireFile(weights, flag: "--weights")
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let conformer = try ConformerCheckpoint.loadForInference(model.config(classes: dataset.classNames.count + 1), path: weights)
        let start = Date()
        let features = try FeatureExtraction(model: conformer, side: side).run(dataset, world: world)
        if world.isRoot {
            let url = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try features.write(to: url, attributes: ["weights": URL(fileURLWithPath: weights).lastPathComponent, "side": "\(side)"])
            let seconds = Date().timeIntervalSince(start)
            Log.info(String(format: "extract-features: %d × %d in %.1f s (%.2f images/s over %d ranks) → %@", dataset.count,
                            features.dimension, seconds, Double(dataset.count) / max(seconds, 1e-9), world.size, out))
        }
    }
}
