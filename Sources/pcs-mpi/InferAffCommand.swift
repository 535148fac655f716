import ArgumentParser
import Distributed
import Formats
import Foundation
import Imaging
import NN
import PCSformer
import Segmentation
import Storage

/// `pcs-mpi infer-aff`: random-walk labels (spec §8.6) for a CAM set, over the ranks (`PerImageSetJob`).
struct InferAffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-aff",
        abstract: "Random-walk labels from AffinityNet's affinities and a CAM set (upstream's out_rw), into a label set.",
        discussion: """
        Per image (spec §8.6): AffinityNet on the image padded to multiples of 8, the affinities of the radius-5 \
        pairs, the class scores (background --bg, each present class's CAM) pooled 8×8 and spread by the random walk \
        (A^β column-normalised, 2^logt steps), bilinear upsampling, argmax and, unless --no-crf, the psa-label CRF. \
        Output OUT/rw-*.h5 and OUT/rw-index.json (map `labels`, what `cse --rw` reads), with --png DIR also \
        upstream's out_rw/<id>.png. Balanced over the ranks by size; an interrupted run resumes.
        """)

    enum Model: String, ExpressibleByArgument, CaseIterable { case aff, tinyAff = "tiny-aff" }

    @Option(help: "Folder of the dataset shards.")
    var data: String

    @Option(help: "Shard set name the CAMs were computed on.")
    var split: String = "train"

    @Option(help: "The CAM set (infer-cam's output folder).")
    var cams: String

    @Option(help: "AffinityNet weights: a train-aff checkpoint (.h5) or upstream's resnet38_aff.pth, loaded strictly.")
    var weights: String

    @Option(help: "Network: aff (ResNet-38d) or tiny-aff.")
    var model: Model = .aff

    @Option(help: "Output folder of the label set.")
    var out: String

    @Option(help: "Also write the labels as VOC-palette PNGs <id>.png into this folder.")
    var png: String?

    @Option(help: "Background score before the walk (PCSformer 0.46, TransCAM 0.42).")
    var bg: Float = 0.46

    @Option(help: "Exponent β of the affinities.")
    var beta: Double = 14

    @Option(help: "log₂ of the walk's length.")
    var logt: Int = 7

    @Flag(help: "Skip the psa-label CRF after the walk.")
    var noCrf = false

    @Option(help: "Images per output part (each part is committed when full).")
    var chunk: Int = 32

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try requireFile(weights, flag: "--weights")
        guard beta > 0, (0...12).contains(logt), chunk >= 1, bg >= 0 else {
            throw ValidationError("--beta must be positive, --logt 0…12, --chunk ≥ 1, --bg ≥ 0")
        }
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let camSet = try ShardedDataset.cams(directory: URL(fileURLWithPath: cams), for: dataset)
        let network = AffinityNet(model == .aff ? .full : .tiny)
        try network.load(try StateDict.load(path: weights), strict: true, source: weights)
        network.setBatchNormMode(.inference)
        var labeler = RandomWalkLabels(network: network)
        labeler.walk = RandomWalk(beta: beta, logT: logt)
        labeler.backgroundScore = bg
        if noCrf { labeler.crf = nil }
        let pngFolder = png.map { URL(fileURLWithPath: $0) }
        let attributes = try FileManager.default.attributesOfItem(atPath: weights)
        var job = PerImageSetJob(name: "rw", dataset: dataset, output: URL(fileURLWithPath: out),
                                 settings: "infer-aff \(model.rawValue) \(URL(fileURLWithPath: weights).lastPathComponent) \((attributes[.size] as? Int) ?? 0) bg \(bg) beta \(beta) logt \(logt) crf \(!noCrf) cams \(cams)\(png == nil ? "" : " png")",
                                 command: "infer-aff")
        job.chunk = chunk
        job.exportFolders = pngFolder.map { [$0] } ?? []
        job.attributes = [LabelSetAttributes.maps: PseudoLabeler.mapName]
        let labels = dataset.classNames.count + 1
        try job.run(world: world, cost: PerImageSetJob.pixelCount(in: dataset), item: { id, writer in
            guard camSet.contains(id) else { throw FileError(path: cams, what: "no CAMs for image \(id); run infer-cam on this split") }
            let record = try dataset.record(id)
            let image = try ImageFile.decodeRGB(record.image, name: "\(dataset.index.name)/\(id)")
            let maps = try camSet.camRecord(id).maps
            let listed = record.label.indices.filter { record.label[$0] == 1 }
            guard Set(listed).isSubset(of: maps.classes) else {
                throw FileError(path: cams, what: "image \(id) has classes \(listed) but CAMs only for \(maps.classes); the CAM set is not this split's")
            }
            let map = try labeler(image: image, cams: maps, id: id, labels: labels, threads: ComputeThreads.current)
            let labelRecord = LabelMapRecord(id: id, width: image.width, height: image.height, maps: [PseudoLabeler.mapName: map])
            try writer.add(labelRecord)
            if let pngFolder { try labelRecord.writePalettePNG(PseudoLabeler.mapName, into: pngFolder) }
        })
        if world.isRoot { Log.info("infer-aff: random-walk labels of \(dataset.count) images in \(out)") }
    }
}
