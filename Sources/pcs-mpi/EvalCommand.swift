import ArgumentParser
import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// `pcs-mpi eval`: predictions against the dataset's masks, distributed over ranks.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score CAM seeds or label maps against the dataset's masks: per-class IoU, mIoU in both conventions.",
        discussion: """
        --type cam (default) reads the CAM set written by infer-cam (PREDICTIONS/cams-index.json) and makes seeds \
        with the constant background score --threshold (upstream's 0.46): argmax over (t, N_c…), ties to the lower \
        index. --sweep START:STOP:STEP scores every threshold in one pass over the data (upstream's --curve is \
        0.30:0.60:0.01). --type png reads PREDICTIONS/<id>.png label maps (255 = ignore). --type labels reads a label \
        set (crf-labels or cse output; --map names the map) and scores it as pseudo labels are reported: mIoU over \
        the pixels it does not ignore, and the share of pixels it ignores. Ground truth comes from \
        the shards' masks; pixels with ground truth 255 are ignored. Prints the per-class table (upstream's \
        convention: mean over all classes; deeplab-pytorch's: over classes present) and writes the numbers as \
        JSON to --out. Under mpirun the images are split over the ranks and the counts summed, so the result does \
        not depend on the rank count.
        """)

    enum PredictionType: String, ExpressibleByArgument, CaseIterable { case cam, png, labels }

    @Option(help: "Folder of the dataset shards.")
    var data: String

    @Option(help: "Shard set name.")
    var split: String = "train"

    @Option(help: "Folder of the predictions: infer-cam's output (--type cam) or <id>.png label maps (--type png).")
    var predictions: String

    @Option(help: "Prediction format: cam, png or labels.")
    var type: PredictionType = .cam

    @Option(help: "The map of a label set to score (--type labels): la or ha for crf-labels, labels for cse. Default: the set's first.")
    var map: String?

    @Option(help: "Background score of CAM seeds.")
    var threshold: Double = 0.46

    @Option(help: "Also score the thresholds START:STOP:STEP (STOP excluded) in the same pass, e.g. 0.30:0.60:0.01.")
    var sweep: String?

    @Option(help: "Write the seeds at --threshold as VOC-palette PNGs <id>.png into this folder (--type cam).")
    var seeds: String?

    @Option(help: "Write a contact sheet PNG of the first --sheet-images ids: image, ground truth, CAM overlay, seeds per row (--type cam), or image, ground truth and every map of the set (--type labels).")
    var contactSheet: String?

    @Option(help: "Rows of the contact sheet.")
    var sheetImages: Int = 8

    @Option(help: "JSON report to write (default: PREDICTIONS/eval.json).")
    var out: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard threshold >= 0 else { throw ValidationError("--threshold must be ≥ 0; got \(threshold)") }
        if let sweep, thresholdSweep(sweep) == nil {
            throw ValidationError("--sweep must be START:STOP:STEP with 0 ≤ START < STOP and STEP > 0; got '\(sweep)'")
        }
        if type != .cam, sweep != nil || seeds != nil {
            throw ValidationError("--sweep and --seeds need --type cam")
        }
        if type == .png, contactSheet != nil { throw ValidationError("--contact-sheet needs --type cam or labels") }
        guard sheetImages >= 1 else { throw ValidationError("--sheet-images must be at least 1") }
    }

    /// The JSON report: the table's numbers at --threshold, plus the sweep.
    struct Report: Encodable {
        var type: String
        var threshold: Double?
        var result: EvaluationReport
        var sweep: [SweepPoint]?
        /// --type labels: the map scored and the share of all pixels it ignores.
        var map: String? = nil
        var ignoredShare: Double? = nil
    }

    struct SweepPoint: Encodable {
        var threshold: Double
        var meanIoU: Double
        var deeplabMeanIoU: Double?
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let evaluation = SegmentationEvaluation(dataset: dataset)
        let job = EvaluationJob(evaluation, world: world)
        let folder = URL(fileURLWithPath: predictions)
        var report: Report
        switch type {
        case .png:
            let matrix = try job.countPNGPredictions(in: folder)
            report = Report(type: "png", threshold: nil, result: EvaluationReport(matrix, names: evaluation.labelNames, images: dataset.count), sweep: nil)
        case .labels:
            guard let set = try ShardedDataset.labelSet(in: folder, for: dataset, made: "crf-labels or cse") else {
                throw FileError(path: folder.path, what: "no label set here (a crf-labels or cse output folder holds NAME-index.json)")
            }
            guard let name = set.labelMapName(map) else {
                throw ValidationError("--map \(map ?? "?"): the label set holds \(set.labelMapNames.joined(separator: ", "))")
            }
            let (matrix, ignoredShare) = try job.countLabelMaps(set, map: name)
            report = Report(type: "labels", threshold: nil, result: EvaluationReport(matrix, names: evaluation.labelNames, images: dataset.count),
                            sweep: nil, map: name, ignoredShare: ignoredShare)
            if world.isRoot, let contactSheet {
                let ids = Array(dataset.ids.prefix(sheetImages))
                let sheet = try ContactSheet().render(ids: ids, dataset: dataset, labelSet: set, maps: set.labelMapNames)
                try AtomicFile.write(Data(try PNGCodec.encode(sheet)), to: URL(fileURLWithPath: contactSheet))
                Log.info("eval: contact sheet of \(ids.count) images (image | ground truth | \(set.labelMapNames.joined(separator: " | "))) in \(contactSheet)")
            }
        case .cam:
            let cams = try ShardedDataset.cams(directory: folder, for: dataset)
            let swept = sweep.flatMap(thresholdSweep) ?? []
            let matrices = try job.countCAMSeeds(cams, thresholds: [threshold] + swept,
                                                 seeds: seeds.map { URL(fileURLWithPath: $0) }, seedThreshold: threshold)
            let reports = matrices.map { EvaluationReport($0, names: evaluation.labelNames, images: dataset.count) }
            report = Report(type: "cam", threshold: threshold, result: reports[0],
                            sweep: sweep == nil ? nil : zip(swept, reports.dropFirst()).map {
                                SweepPoint(threshold: $0, meanIoU: $1.meanIoU, deeplabMeanIoU: $1.deeplabMeanIoU)
                            })
            if world.isRoot, let contactSheet {
                let ids = Array(dataset.ids.prefix(sheetImages))
                let sheet = try ContactSheet().render(ids: ids, dataset: dataset, cams: cams, threshold: Float(threshold))
                try AtomicFile.write(Data(try PNGCodec.encode(sheet)), to: URL(fileURLWithPath: contactSheet))
                Log.info("eval: contact sheet of \(ids.count) images (image | ground truth | CAM | seeds) in \(contactSheet)")
            }
        }
        guard world.isRoot else { return }
        if let threshold = report.threshold { print(String(format: "seeds at background score %.2f", threshold)) }
        print(report.result.table)
        if let share = report.ignoredShare, let map = report.map {
            print(String(format: "map %@: %.2f%% of the pixels ignored (255), the table is over the rest", map, 100 * share))
        }
        if let points = report.sweep, let best = points.max(by: { $0.meanIoU < $1.meanIoU }) {
            for point in points { print(String(format: "background score %.3f  mIoU %.3f%%", point.threshold, 100 * point.meanIoU)) }
            print(String(format: "best background score %.3f: mIoU %.3f%%", best.threshold, 100 * best.meanIoU))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let url = URL(fileURLWithPath: out ?? folder.appendingPathComponent("eval.json").path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(try encoder.encode(report), to: url)
    }
}
