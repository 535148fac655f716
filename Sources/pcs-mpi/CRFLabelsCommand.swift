import ArgumentParser
import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// `pcs-mpi crf-labels`: the la/ha label maps of spec §7.3 for a CAM set, over the ranks (`PerImageSetJob`).
struct CRFLabelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf-labels",
        abstract: "Confident-foreground (la) and confident-background (ha) label maps from SP CAMs through the psa-label dense CRF.",
        discussion: """
        Per image (spec §7.3): seeds argmax(t, N_c…) for t = --la and t = --ha, each refined by the dense CRF on the \
        original RGB image (--preset psa-label by default: labels as unaries, gt_prob 0.7). Output OUT/crf-labels-*.h5 \
        and OUT/crf-labels-index.json: per id uint8 (H, W) maps `la` and `ha` (h5py: f["items/ID/la"][()]). With \
        --png DIR also upstream's folders DIR/out_crf_0.60/<id>.png and DIR/out_crf_0.25/<id>.png (VOC palette). \
        Under mpirun the images are balanced over the ranks by size; an interrupted run continues where it stopped \
        when started again with the same arguments.
        """)

    @Option(help: "Folder of the dataset shards.")
    var data: String

    @Option(help: "Shard set name (NAME-index.json) the CAMs were computed on.")
    var split: String = "train"

    @Option(help: "The CAM set of the SP network (infer-cam's output folder).")
    var cams: String

    @Option(help: "Output folder of the label shards.")
    var out: String

    @Option(help: "Background score of the confident-foreground map (upstream's --la).")
    var la: Float = 0.60

    @Option(help: "Background score of the confident-background map (upstream's --ha).")
    var ha: Float = 0.25

    @Option(help: "Also write upstream's out_crf_<t>/<id>.png folders under this folder.")
    var png: String?

    @Option(help: "Images per output part (each part is committed when full).")
    var chunk: Int = 32

    @OptionGroup var crf: CRFOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard la >= 0, ha >= 0 else { throw ValidationError("--la and --ha must be ≥ 0") }
        guard chunk >= 1 else { throw ValidationError("--chunk must be at least 1") }
        guard crf.preset.unarySource == .labels else { throw ValidationError("crf-labels refines label maps: --preset psa-label") }
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let camSet = try ShardedDataset.cams(directory: URL(fileURLWithPath: cams), for: dataset)
        let maker = CRFLabelMaps(labels: dataset.classNames.count + 1, foregroundThreshold: la, backgroundThreshold: ha,
                                 parameters: try crf.parameters())
        let folders = png.map { root in
            [la, ha].map { URL(fileURLWithPath: root).appendingPathComponent(CRFLabelMaps.upstreamFolder($0)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var job = PerImageSetJob(name: "crf-labels", dataset: dataset, output: URL(fileURLWithPath: out),
                                 settings: String(decoding: try encoder.encode(maker), as: UTF8.self) + (png == nil ? "" : " png"),
                                 command: "crf-labels")
        job.chunk = chunk
        job.exportFolders = folders ?? []
        job.attributes = [LabelSetAttributes.maps: [CRFLabelMaps.foregroundName, CRFLabelMaps.backgroundName].joined(separator: ",")]
        let start = Date()
        let computed = try job.run(world: world, cost: PerImageSetJob.pixelCount(in: dataset), item: { id, writer in
            guard camSet.contains(id) else {
                throw FileError(path: cams, what: "no CAMs for image \(id); run infer-cam on this split")
            }
            let image = try ImageFile.decodeRGB(try dataset.record(id).image, name: "\(dataset.index.name)/\(id)")
            let record = try maker(image: image, cams: try camSet.camRecord(id).maps, id: id, threads: ComputeThreads.current)
            try writer.add(record)
            if let folders {
                for (folder, name) in zip(folders, [CRFLabelMaps.foregroundName, CRFLabelMaps.backgroundName]) {
                    try record.writePalettePNG(name, into: folder)
                }
            }
        })
        let total = world.allreduce(Int64(computed))
        if world.isRoot {
            let seconds = Date().timeIntervalSince(start)
            Log.info(String(format: "crf-labels: %lld images in %.1f s (%.2f images/s over %d ranks) → %@", total, seconds,
                            Double(total) / max(seconds, 1e-9), world.size, out))
        }
    }
}
