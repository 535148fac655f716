import Formats
import Foundation
import Imaging
import NN
import Storage

/// Scores one image's label map against its mask (spec §5) into a `ConfusionMatrix`. Integer counts add up, so
/// `EvaluationJob` spreads the images over the ranks and sums the matrices; nothing here needs MPI.
public struct SegmentationEvaluation {
    public let dataset: ShardedDataset
    /// Class names with background first (index = label value).
    public let labelNames: [String]

    public init(dataset: ShardedDataset) {
        self.dataset = dataset
        labelNames = ["background"] + dataset.classNames
    }

    /// Counts the PNG prediction `<folder>/<id>.png` (palette or grey label map) of image `position`.
    public func countPNGPrediction(_ position: Int, in folder: URL, into matrix: inout ConfusionMatrix) throws {
        let id = dataset.ids[position]
        let path = folder.appendingPathComponent("\(id).png").path
        let prediction = try PNGCodec.decodeIndices(try ImageFile.readBytes(path), name: path)
        let truth = try truth(id, width: prediction.width, height: prediction.height, prediction: path)
        matrix.add(groundTruth: truth, prediction: prediction.pixels)
    }

    /// Counts the map `map` of image `position` from a label set (`crf-labels`, `cse`) over the pixels it does not
    /// ignore (prediction 255 is left out, as pseudo-label quality is reported), and adds the image's pixels and
    /// ignored pixels to `pixels` and `ignored`.
    public func countLabelMap(_ position: Int, set: ShardedDataset, map: String, into matrix: inout ConfusionMatrix,
                              pixels: inout Int64, ignored: inout Int64) throws {
        let id = dataset.ids[position]
        let setIndex = ShardIndex.url(directory: set.directory, name: set.index.name).path
        guard set.contains(id) else { throw FileError(path: setIndex, what: "no label map for image \(id)") }
        let prediction = try set.labelMap(id, name: map)
        let truth = try truth(id, width: prediction.width, height: prediction.height, prediction: setIndex)
        var keptTruth: [UInt8] = [], keptPrediction: [UInt8] = []
        keptTruth.reserveCapacity(truth.count)
        keptPrediction.reserveCapacity(truth.count)
        for (t, p) in zip(truth, prediction.pixels) {
            if p == 255 { ignored += 1; continue }
            guard Int(p) < labelNames.count else {
                throw FileError(path: setIndex, what: "\(id): label \(p) in map '\(map)' is not a class of the dataset (\(labelNames.count) labels)")
            }
            keptTruth.append(t)
            keptPrediction.append(p)
        }
        pixels += Int64(truth.count)
        matrix.add(groundTruth: keptTruth, prediction: keptPrediction)
    }

    /// The decoded ground-truth mask of `id`, checked against the prediction's size.
    func truth(_ id: String, width: Int, height: Int, prediction: String) throws -> [UInt8] {
        guard let maskBytes = try dataset.locate(id).reader.mask(id) else {
            throw FileError(path: dataset.directory.path, what: "image \(id) has no ground-truth mask in the shards")
        }
        let truth = try PNGCodec.decodeIndices(maskBytes, name: "\(dataset.index.name)/\(id) mask")
        guard width == truth.width, height == truth.height else {
            throw FileError(path: prediction, what: "\(id): prediction is \(width)x\(height), the mask \(truth.width)x\(truth.height)")
        }
        return truth.pixels
    }

    /// Counts the seeds of image `position` made from a CAM set (`infer-cam`'s output) for every threshold at once,
    /// into one confusion matrix per threshold. With `seeds`, also writes the label map at `seedThreshold` as a
    /// VOC-palette PNG `<seeds>/<id>.png`.
    public func countCAMSeeds(_ position: Int, cams: ShardedDataset, thresholds: [Double], into matrices: inout [ConfusionMatrix],
                              seeds: URL? = nil, seedThreshold: Double = 0.46) throws {
        precondition(matrices.count == thresholds.count, "countCAMSeeds: \(matrices.count) matrices for \(thresholds.count) thresholds")
        let id = dataset.ids[position]
        let camIndex = ShardIndex.url(directory: cams.directory, name: cams.index.name).path
        guard cams.contains(id) else { throw FileError(path: camIndex, what: "no CAMs for image \(id); run infer-cam on this split") }
        let record = try cams.camRecord(id).maps
        guard record.classes.allSatisfy({ $0 + 1 < labelNames.count }) else {
            throw FileError(path: camIndex, what: "\(id): CAM classes \(record.classes) outside the dataset's \(labelNames.count - 1)")
        }
        let truth = try truth(id, width: record.width, height: record.height, prediction: camIndex)
        let seedsOfImage = CAMSeeds(record)
        var prediction = [UInt8](repeating: 0, count: truth.count)
        for (t, threshold) in thresholds.enumerated() {
            seedsOfImage.prediction(threshold: Float(threshold), into: &prediction)
            matrices[t].add(groundTruth: truth, prediction: prediction)
        }
        if let seeds {
            let map = PixelImage(width: record.width, height: record.height, channels: 1,
                                 pixels: seedsOfImage.prediction(threshold: Float(seedThreshold)))
            try AtomicFile.write(Data(try PNGCodec.encodeIndexed(map)), to: seeds.appendingPathComponent("\(id).png"))
        }
    }
}

/// What `pcs-mpi eval` reports, in both conventions of spec §5; written as JSON beside the printed table.
public struct EvaluationReport: Codable {
    public var images: Int
    public var classes: [String]
    /// Upstream's: mean over all classes of TP/(T + P − TP + 1e-10).
    public var meanIoU: Double
    public var iou: [Double]
    public var precision: [Double]
    public var recall: [Double]
    /// deeplab-pytorch's: mean over classes that occur; NaN entries are written as null.
    public var deeplabMeanIoU: Double?
    public var deeplabIoU: [Double?]
    public var pixelAccuracy: Double?

    public init(_ matrix: ConfusionMatrix, names: [String], images: Int) {
        let u = matrix.upstream, d = matrix.deeplab
        self.images = images
        classes = names
        meanIoU = u.meanIoU
        iou = u.iou
        precision = u.precision
        recall = u.recall
        deeplabMeanIoU = d.meanIoU.isNaN ? nil : d.meanIoU
        deeplabIoU = d.iou.map { $0.isNaN ? nil : $0 }
        pixelAccuracy = d.pixelAccuracy.isNaN ? nil : d.pixelAccuracy
    }

    /// The per-class table, as upstream prints it (percentages).
    public var table: String {
        var lines = ["class                IoU    precision  recall"]
        for (i, name) in classes.enumerated() {
            lines.append(name.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: "%8.2f %10.2f %8.2f", 100 * iou[i], 100 * precision[i], 100 * recall[i]))
        }
        lines.append(String(format: "mIoU (all %d classes, upstream) %.2f", classes.count, 100 * meanIoU))
        if let deeplabMeanIoU { lines.append(String(format: "mIoU (classes present, deeplab)  %.2f", 100 * deeplabMeanIoU)) }
        return lines.joined(separator: "\n")
    }
}
