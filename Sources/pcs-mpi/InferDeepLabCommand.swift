import ArgumentParser
import DeepLab
import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// `pcs-mpi infer-deeplab`: DeepLab-v2's predictions for a shard set, over the ranks (`PerImageSetJob`).
struct InferDeepLabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-deeplab",
        abstract: "Segment a shard set with a trained DeepLab-v2 (whole images, MSC max), optionally refined by the dense CRF.",
        discussion: """
        Per image (spec §10.3): the whole image, Caffe-normalised; the max over the MSC scales; logits upsampled \
        bilinearly to the image size; softmax; argmax → map `labels`. With --crf also map `crf`: the deeplab CRF \
        preset (10 iterations, Gaussian sxy 1 compat 3, bilateral sxy 67 srgb 3 compat 4) on the original image \
        (--upstream-crf-image: on deeplab-pytorch's mean-subtracted image cast to uint8, spec §12 Q11, for \
        bit-compatibility only). Output OUT/prediction-*.h5 and OUT/prediction-index.json, a label set that \
        `eval --type labels --map labels|crf` scores; with --png DIR the maps as VOC-palette PNGs DIR/labels/<id>.png \
        (and DIR/crf/<id>.png). Balanced over the ranks by size; an interrupted run resumes.
        """)

    @Option(help: "Folder of the dataset shards.")
    var data: String
    @Option(help: "Shard set name to segment.")
    var split: String = "val"
    @Option(help: "DeepLab weights: a train-deeplab checkpoint (.h5) or a deeplab-pytorch checkpoint (.pth), loaded strictly.")
    var weights: String
    @Option(help: "Network: \(DeepLabConfig.names.joined(separator: ", ")) (the class count comes from --weights).")
    var model: String = "deeplab"
    @Option(help: "Output folder of the prediction set.")
    var out: String
    @Flag(help: "Also refine the predictions with the deeplab dense-CRF preset (map `crf`).")
    var crf = false
    @Flag(help: "With --crf: give the CRF deeplab-pytorch's mean-subtracted image cast to uint8 instead of the true image.")
    var upstreamCrfImage = false
    @Option(help: "Also write the maps as VOC-palette PNGs under this folder (labels/<id>.png, crf/<id>.png).")
    var png: String?
    @Option(help: "Images per output part (each part is committed when full).")
    var chunk: Int = 16

    @OptionGroup var global: GlobalOptions

    static let labelsMap = "labels", crfMap = "crf"

    func validate() throws {
        try requireFile(weights, flag: "--weights")
        guard DeepLabConfig.names.contains(model) else {
            throw ValidationError("--model must be one of \(DeepLabConfig.names.joined(separator: ", ")); got '\(model)'")
        }
        guard chunk >= 1 else { throw ValidationError("--chunk must be at least 1") }
        if upstreamCrfImage, !crf { throw ValidationError("--upstream-crf-image needs --crf") }
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let network = try DeepLabCheckpoint.loadTrained(model: model, path: weights)
        if !dataset.classNames.isEmpty, network.config.classes != dataset.classNames.count + 1 {
            throw FileError(path: weights, what: "a \(network.config.classes)-class network for a dataset of \(dataset.classNames.count + 1) classes")
        }
        var predictor = DeepLabPredictor(network: network, crf: crf ? CRFPreset.deeplab.parameters() : nil)
        predictor.upstreamCRFImage = upstreamCrfImage
        let maps = crf ? [Self.labelsMap, Self.crfMap] : [Self.labelsMap]
        let pngFolders = png.map { root in maps.map { URL(fileURLWithPath: root).appendingPathComponent($0) } }
        let attributes = try FileManager.default.attributesOfItem(atPath: weights)
        var job = PerImageSetJob(name: "prediction", dataset: dataset, output: URL(fileURLWithPath: out),
                                 settings: "infer-deeplab \(model) \(URL(fileURLWithPath: weights).lastPathComponent) \((attributes[.size] as? Int) ?? 0) crf \(crf) upstream-image \(upstreamCrfImage)\(png == nil ? "" : " png")",
                                 command: "infer-deeplab")
        job.chunk = chunk
        job.exportFolders = pngFolders ?? []
        job.attributes = [LabelSetAttributes.maps: maps.joined(separator: ",")]
        let start = Date()
        let computed = try job.run(world: world, cost: PerImageSetJob.pixelCount(in: dataset), item: { id, writer in
            let image = try ImageFile.decodeRGB(try dataset.record(id).image, name: "\(dataset.index.name)/\(id)")
            let (labels, refined) = try predictor(image, threads: ComputeThreads.current)
            var values = [Self.labelsMap: labels]
            if let refined { values[Self.crfMap] = refined }
            let record = LabelMapRecord(id: id, width: image.width, height: image.height, maps: values)
            try writer.add(record)
            if let pngFolders {
                for (folder, name) in zip(pngFolders, maps) { try record.writePalettePNG(name, into: folder) }
            }
        })
        let total = world.allreduce(Int64(computed))
        if world.isRoot {
            let seconds = Date().timeIntervalSince(start)
            Log.info(String(format: "infer-deeplab: %lld images in %.1f s (%.2f images/s over %d ranks) → %@", total, seconds,
                            Double(total) / max(seconds, 1e-9), world.size, out))
        }
    }
}
