import ArgumentParser
import Distributed
import Formats
import Foundation
import NN
import PCSformer
import Segmentation
import Storage

/// `pcs-mpi infer-cam`: multi-scale CAM inference (spec §4) over a shard set, split over the ranks.
struct InferCAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-cam",
        abstract: "Multi-scale CAMs of a trained PC or SP network for every image of a shard set, into HDF5 shards.",
        discussion: """
        Per image: long side 500 (PIL bicubic), the scales 0.25/1/1.5/2 floored to multiples of 16, each with its \
        mirror (8 passes), CAMs upsampled to the original size, summed and normalised per class as upstream \
        (spec §4.2). Output OUT/cams-*.h5 and OUT/cams-index.json: per id `cams` (K, H, W) float32 and `classes` \
        (K) int32, the present foreground classes (0-based). Under mpirun the images are balanced over the ranks \
        by size. An interrupted run continues where it stopped when started again with the same arguments \
        (complete parts are kept, their ids skipped). --attention, --heatmaps and --export-npy also write \
        upstream's attention PNGs, RGB heatmap overlays and out_cam/<id>.npy dicts.
        """)

    @Option(help: "Folder of the dataset shards.")
    var data: String

    @Option(help: "Shard set name (NAME-index.json).")
    var split: String = "train"

    @Option(help: "Output folder of the CAM shards.")
    var out: String

    @Option(help: "Network: \(ModelVariant.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: ModelVariant = .pc

    @Option(help: "Sub-prototypes per class of an SP network (its extra heads have (classes − 1)·k outputs).")
    var k: Int = 10

    @Option(help: "The trained stage checkpoint (.h5 from train-pc/train-sp, or upstream's .pth), loaded strictly.")
    var weights: String

    @Option(help: "CAM method: \(CAMMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: CAMMethod = .transcam

    @Option(help: "Comma-separated scales of the pyramid.")
    var scales: String = "0.25,1,1.5,2"

    @Option(help: "Long side of the first resize.")
    var longSide: Int = 500

    @Option(help: "Images per output part (each part is committed when full, so an interruption loses at most one part per rank).")
    var chunk: Int = 32

    @Option(help: "Seconds after which a part is committed even if it holds fewer than --chunk images.")
    var partSeconds: Double = 60

    @Option(help: "Folder for upstream's attention PNGs <id>_<class>.png (8-bit, 255·N/max N).")
    var attention: String?

    @Option(help: "Folder for heatmap overlays <id>_<class>.png (jet colour map on the image, RGB).")
    var heatmaps: String?

    @Option(help: "Folder for upstream's out_cam/<id>.npy dicts {class: (H, W) float32} (np.load(..., allow_pickle=True).item()).")
    var exportNpy: String?

    @OptionGroup var global: GlobalOptions

    func parsedScales() throws -> [Double] {
        let values = scales.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--scales must be positive numbers separated by commas; got '\(scales)'")
        }
        return values.map { $0! }
    }

    func validate() throws {
        _ = try parsedScales()
        guard longSide >= 16, chunk >= 1, k >= 1 else { throw ValidationError("--long-side must be ≥ 16, --chunk and --k ≥ 1") }
        guard partSeconds >= 0 else { throw ValidationError("--part-seconds must be ≥ 0") }
        try requireFile(weights, flag: "--weights")
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let conformer = try ConformerCheckpoint.loadForInference(model.config(classes: dataset.classNames.count + 1, k: k), path: weights)
        let cam = MultiScaleCAM(model: conformer, method: method, pyramid: CAMPyramid(longSide: longSide, scales: try parsedScales()))
        // The weights are identified by name, size and time, so a resumed run refuses parts made with other weights.
        // Rank 0 reads them and tells the others, so every rank stamps its parts alike.
        var identity = ""
        if world.isRoot {
            let attributes = try FileManager.default.attributesOfItem(atPath: weights)
            identity = "\(URL(fileURLWithPath: weights).lastPathComponent), \((attributes[.size] as? Int) ?? 0) bytes, "
                + "modified \((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        }
        identity = try world.broadcast(identity)
        let out = out
        LostRankWatch.recovery = { "infer-cam: the complete CAM parts in \(out) are kept: run the same command again to compute the rest" }
        let job = try CAMInferenceJob(dataset: dataset, cam: cam, weights: identity, output: URL(fileURLWithPath: out))
        job.chunk = chunk
        job.partSeconds = partSeconds
        job.attentionFolder = attention.map { URL(fileURLWithPath: $0) }
        job.heatmapFolder = heatmaps.map { URL(fileURLWithPath: $0) }
        job.npyFolder = exportNpy.map { URL(fileURLWithPath: $0) }
        let start = Date()
        let computed = try job.run(world: world)
        let total = world.allreduce(Int64(computed))
        let peak = world.allreduce(PeakMemory.residentMiB().own, op: .max)
        if world.isRoot {
            let seconds = Date().timeIntervalSince(start)
            Log.info(String(format: "infer-cam: %lld images in %.1f s (%.2f images/s over %d ranks, peak %.0f MiB per rank); CAMs in %@",
                            total, seconds, Double(total) / max(seconds, 1e-9), world.size, peak, out))
            try CAMInferenceStats(images: Int(total), seconds: seconds, ranks: world.size, peakMiBPerRank: peak)
                .write(into: URL(fileURLWithPath: out))
        }
    }
}
