import ArgumentParser
import Distributed
import Formats
import Foundation
import Imaging
import Segmentation
import Storage

/// `pcs-mpi cse`: the pseudo labels DeepLab trains on (spec §9), over the ranks.
struct CSECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cse",
        abstract: "Conflict self-elimination: pseudo labels from saliency, SP attention and random-walk labels (spec §9).",
        discussion: """
        Per image, exactly as upstream's SP_2/CSE_voc.py: background score 1 − saliency/255, each listed class's \
        attention min-max normalised, scores below --fg zeroed, a pixel where more than one score exceeds \
        --conflict ignored (255), background on a salient or attended pixel (≥ --bg on 0–255; attention above --att \
        counts as 255) ignored, every label the random walk disagrees with ignored, and an image with less than 1 % \
        foreground entirely ignored. Saliency comes from the dataset shards (ingest with saliency maps), attention \
        from the SP network's CAM set (infer-cam's output folder) or a folder of <id>_<c>.png attention maps, \
        random-walk labels from a label set (--rw-map names its map) or a folder of <id>.png. Output: a label set \
        OUT/pseudo-labels-*.h5 (map `labels`, values 0…C and 255), with --png DIR also palette PNGs. \
        --upstream-layout DIR instead reads and writes upstream's own folders (voc12/trainaug_cls.txt, \
        VOC2012/saliency_map_DRS/, save/attention/train_aug/, save/out_rw/ → save/pseudo_label/).
        """)

    @Option(help: "Folder of the dataset shards (with saliency maps).")
    var data: String?

    @Option(help: "Shard set name.")
    var split: String = "train"

    @Option(help: "Attention: the SP network's CAM set (infer-cam --out), or a folder of <id>_<c>.png maps.")
    var attention: String?

    @Option(help: "Random-walk labels: a label set folder, or a folder of <id>.png label maps.")
    var rw: String?

    @Option(help: "The map of the --rw label set to use. Default: its first.")
    var rwMap: String?

    @Option(help: "Output folder of the pseudo-label set.")
    var out: String?

    @Option(help: "Also write the pseudo labels as VOC-palette PNGs <id>.png into this folder.")
    var png: String?

    @Option(help: "Run on upstream's own folder layout under this folder instead (see the discussion).")
    var upstreamLayout: String?

    @Option(help: "Foreground classes for --upstream-layout (VOC 20, COCO 80).")
    var classes: Int = 20

    @Option(help: "A pixel where more than one score exceeds this is a conflict (upstream's `conflict`).")
    var conflict: Double = 0.9

    @Option(help: "Scores below this are zeroed (upstream's `fg_thr`).")
    var fg: Double = 0.4

    @Option(help: "Salient-or-attended pixels at or above this (0–255) cannot be background (upstream's `bg_thr`).")
    var bg: Double = 32

    @Option(help: "Attention above this marks a pixel as attended (upstream's `att_thr`).")
    var att: Double = 0.8

    @Option(help: "Images per output part (each part is committed when full).")
    var chunk: Int = 32

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if upstreamLayout == nil {
            guard data != nil, attention != nil, rw != nil, out != nil else {
                throw ValidationError("give --data, --attention, --rw and --out (or --upstream-layout DIR)")
            }
        } else if data != nil || attention != nil || rw != nil || out != nil {
            throw ValidationError("--upstream-layout reads and writes its own folders: leave out --data, --attention, --rw and --out")
        }
        guard (1...254).contains(classes), chunk >= 1 else { throw ValidationError("--classes must be 1…254 and --chunk ≥ 1") }
    }

    func run() throws {
        let world = global.startWorld()
        let cse = ConflictSelfElimination(conflict: conflict, foreground: fg, background: bg, attention: att)
        if let upstreamLayout {
            let layout = try CSEUpstreamLayout(root: URL(fileURLWithPath: upstreamLayout), classes: classes)
            if world.isRoot { try FileManager.default.createDirectory(at: layout.output, withIntermediateDirectories: true) }
            world.barrier()
            for i in world.share(layout.entries.count) { try layout.run(i, cse: cse) }
            world.barrier()
            if world.isRoot { Log.info("cse: \(layout.entries.count) pseudo labels in \(layout.output.path)") }
            return
        }
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data!), name: split)
        let labeler = PseudoLabeler(cse: cse, attention: try attentionSource(dataset), randomWalk: try randomWalkSource(dataset))
        let pngFolder = png.map { URL(fileURLWithPath: $0) }
        var job = PerImageSetJob(name: "pseudo-labels", dataset: dataset, output: URL(fileURLWithPath: out!),
                                 settings: "cse conflict \(conflict) fg \(fg) bg \(bg) att \(att) attention \(attention!) rw \(rw!) \(rwMap ?? "")\(png == nil ? "" : " png")",
                                 command: "cse")
        job.chunk = chunk
        job.exportFolders = pngFolder.map { [$0] } ?? []
        job.attributes = [LabelSetAttributes.maps: PseudoLabeler.mapName]
        try job.run(world: world, cost: PerImageSetJob.pixelCount(in: dataset), item: { id, writer in
            let record = try labeler(id, dataset: dataset)
            try writer.add(record)
            if let pngFolder { try record.writePalettePNG(PseudoLabeler.mapName, into: pngFolder) }
        })
        if world.isRoot { Log.info("cse: \(dataset.count) pseudo labels in \(out!)") }
    }

    /// A CAM set (checked against the dataset) when the folder holds one, else a folder of attention PNGs.
    func attentionSource(_ dataset: ShardedDataset) throws -> AttentionSource {
        let folder = URL(fileURLWithPath: attention!)
        if FileManager.default.fileExists(atPath: ShardIndex.url(directory: folder, name: CAMSetAttributes.name).path) {
            return .cams(try ShardedDataset.cams(directory: folder, for: dataset))
        }
        guard FileManager.default.fileExists(atPath: folder.path) else { throw ValidationError("--attention \(folder.path): no such folder") }
        return .pngFolder(folder)
    }

    /// A label set (checked against the dataset) when the folder holds one, else a folder of label PNGs.
    func randomWalkSource(_ dataset: ShardedDataset) throws -> LabelSource {
        let folder = URL(fileURLWithPath: rw!)
        if let set = try ShardedDataset.labelSet(in: folder, for: dataset, made: "infer-aff") {
            guard let map = set.labelMapName(rwMap) else {
                throw ValidationError("--rw-map \(rwMap ?? "?"): the label set holds \(set.labelMapNames.joined(separator: ", "))")
            }
            return .labelSet(set, map: map)
        }
        guard FileManager.default.fileExists(atPath: folder.path) else { throw ValidationError("--rw \(folder.path): no such folder") }
        return .pngFolder(folder)
    }
}
