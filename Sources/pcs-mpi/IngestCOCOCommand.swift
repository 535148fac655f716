import ArgumentParser
import Foundation
import Segmentation

struct IngestCOCOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco",
        abstract: "Ingest MS-COCO 2014 or any COCO-format set (images + instances JSON), with masks rasterised from polygons and RLE.",
        discussion: """
        Labels: the file's categories (COCO 2014: 80; a COCO-format export of your own: its own list; contiguous \
        index = rank of the category id, names from the file, at most 254) among all of an image's annotations. \
        --expect-coco80 refuses anything but the standard 80 (ids and names). Masks: non-crowd instances painted in annotation order (later ones win), crowd regions 255 \
        (ignore) where no instance is; background 0; class c is label c+1. The annotation file is streamed, not \
        loaded whole.
        """)

    @Option(help: "Image folder, e.g. train2014/.")
    var images: String

    @Option(help: "Instances file, e.g. annotations/instances_train2014.json.")
    var annotations: String

    @Flag(help: "Keep images that have no annotations (all-background masks, empty labels).")
    var keepEmpty = false

    @Option(help: "Saliency-map folder (<image stem>.png grey maps, e.g. DRS's, which cse needs); every image must have one.")
    var saliency: String?

    @Flag(help: "Refuse a category list other than MS-COCO's standard 80 (same ids and names).")
    var expectCoco80 = false

    @OptionGroup var output: IngestOutputOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        let source = try COCOIngestSource(images: URL(fileURLWithPath: images), annotations: URL(fileURLWithPath: annotations),
                                          keepEmpty: keepEmpty, expectCOCO80: expectCoco80, saliency: saliency.map { URL(fileURLWithPath: $0) })
        try output.ingest(defaultName: URL(fileURLWithPath: images).lastPathComponent, classNames: source.classNames,
                          source: "coco:\(annotations)", count: source.count, world: world, makeRecord: source.record)
    }
}
