import ArgumentParser
import Distributed
import Foundation
import Segmentation

/// `pcs-mpi ingest voc`: PASCAL VOC (+ SBD), or a folder in its layout.
struct IngestVOCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "voc",
        abstract: "Ingest PASCAL VOC 2012 (+ SBD) or a folder in its layout (e.g. from `pcs-mpi synth`).",
        discussion: """
        Labels come from Annotations/<id>.xml (every <name> that is a class name). The class list is \
        ROOT/classes.txt when present, else VOC's 20 classes.
        """)

    @Option(help: "The VOC2012 folder (holding JPEGImages/ and Annotations/).")
    var root: String

    @Option(help: "Split list: ids, or upstream's '/JPEGImages/ID.jpg /SegmentationClassAug/ID.png' lines.")
    var split: String

    @Option(help: "Mask folder, absolute or under ROOT (default: SegmentationClassAug, else SegmentationClass).")
    var aug: String?

    @Option(help: "Saliency-map folder, absolute or under ROOT (default: saliency_map_DRS when present).")
    var saliency: String?

    @OptionGroup var output: IngestOutputOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        let source = try VOCIngestSource(root: URL(fileURLWithPath: root), list: URL(fileURLWithPath: split), masks: aug, saliency: saliency)
        let listName = URL(fileURLWithPath: split).deletingPathExtension().lastPathComponent
        try output.ingest(defaultName: listName, classNames: source.classNames, source: "voc:\(root)", count: source.ids.count,
                          world: world, makeRecord: source.record)
    }
}
