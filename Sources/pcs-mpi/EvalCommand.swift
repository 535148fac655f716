import ArgumentParser
import Distributed
import Foundation
import NN
import Segmentation

/// `pcs-mpi eval`: predictions against the dataset's masks, distributed over ranks.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score label-map predictions against the dataset's masks: per-class IoU, mIoU in both conventions.",
        discussion: """
        --type png reads PREDICTIONS/<id>.png (palette or grey label maps, 255 = ignore) for every id of the shard \
        set. Ground truth comes from the shards' masks; pixels with ground truth 255 are ignored. Prints the \
        per-class table (upstream's convention: mean over all classes; deeplab-pytorch's: over classes present) \
        and writes the numbers as JSON to --out. Under mpirun the images are split over the ranks and the counts \
        summed, so the result does not depend on the rank count. (CAM-shard input and the threshold sweep arrive \
        with infer-cam.)
        """)

    @Option(help: "Folder of the dataset shards.")
    var data: String

    @Option(help: "Shard set name.")
    var split: String = "val"

    @Option(help: "Folder of the predictions.")
    var predictions: String

    @Option(help: "Prediction format: png.")
    var type: String = "png"

    @Option(help: "JSON report to write (default: PREDICTIONS/eval.json).")
    var out: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard type == "png" else { throw ValidationError("--type must be png (CAM shards arrive with infer-cam); got '\(type)'") }
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let evaluation = SegmentationEvaluation(dataset: dataset)
        let matrix = try evaluation.countPNGPredictions(in: URL(fileURLWithPath: predictions), world: world)
        guard world.isRoot else { return }
        let report = EvaluationReport(matrix, names: evaluation.labelNames, images: dataset.count)
        print(report.table)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let url = URL(fileURLWithPath: out ?? URL(fileURLWithPath: predictions).appendingPathComponent("eval.json").path)
        try AtomicFile.write(try encoder.encode(report), to: url)
    }
}
