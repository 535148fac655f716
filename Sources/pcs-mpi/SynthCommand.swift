import ArgumentParser
import Distributed
import Foundation
import Segmentation
import SyntheticData

/// `pcs-mpi synth`: a generated dataset in the VOC folder layout.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Generate a synthetic dataset in the VOC folder layout or COCO's.",
        discussion: """
        Each class has its own shape, colour and texture; every image holds 1-3 objects of random scale and \
        position, overlapping, on a cluttered textured background with distractor shapes of no class. The output \
        is deterministic for a seed and the same for any rank count. Layout: JPEGImages/, SegmentationClass/ \
        (VOC-palette PNG masks), Annotations/ (VOC XML), saliency_map_DRS/, ImageSets/Segmentation/{train,val}.txt, \
        classes.txt. Ingest it with `pcs-mpi ingest voc --root DIR --split DIR/ImageSets/Segmentation/train.txt`. \
        --format coco writes the same images in COCO's layout instead: images/ and \
        annotations/instances_{train,val}.json (sparse category ids, polygons, RLE, compressed RLE and crowd \
        regions); ingest it with `pcs-mpi ingest coco --images DIR/images --annotations \
        DIR/annotations/instances_train.json --name train` (and val).
        """)

    @Option(help: "Output folder (created if missing).")
    var out: String

    @Option(help: "Number of images.")
    var images: Int = 200

    @Option(help: "Image size as WIDTHxHEIGHT, each at least \(SyntheticScene.minimumSide).")
    var size: String = "128x128"

    @Option(help: "Number of classes, 1-20 (named after the first VOC classes).")
    var classes: Int = 5

    @Option(help: "Random seed; the same seed gives the same dataset.")
    var seed: UInt64 = 0

    @Option(help: "Fraction of the images listed in val.txt (the rest in train.txt).")
    var valFraction: Double = 0.25

    @Option(help: "Layout: voc (VOC 2012's folders) or coco (images/ + annotations/instances_{train,val}.json).")
    var format: String = "voc"

    @OptionGroup var global: GlobalOptions

    var dimensions: (width: Int, height: Int)? {
        let parts = size.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else { return nil }
        return (w, h)
    }

    func validate() throws {
        guard let d = dimensions else { throw ValidationError("--size must be WIDTHxHEIGHT, e.g. 128x96; got '\(size)'") }
        guard d.width >= SyntheticScene.minimumSide, d.height >= SyntheticScene.minimumSide, d.width <= 4096, d.height <= 4096 else {
            throw ValidationError("--size sides must be \(SyntheticScene.minimumSide)...4096; got '\(size)'")
        }
        guard (1...20).contains(classes) else { throw ValidationError("--classes must be 1...20; got \(classes)") }
        guard images >= 1 else { throw ValidationError("--images must be at least 1; got \(images)") }
        guard (0..<1).contains(valFraction) else { throw ValidationError("--val-fraction must be in [0, 1); got \(valFraction)") }
        guard format == "voc" || format == "coco" else { throw ValidationError("--format must be voc or coco; got '\(format)'") }
    }

    func run() throws {
        let world = global.startWorld()
        let d = dimensions!
        let config = SyntheticConfig(width: d.width, height: d.height, classes: classes, seed: seed)
        let writer = SyntheticDatasetWriter(config: config, images: images, valFraction: valFraction)
        if format == "coco" {
            try SyntheticCOCOWriter(writer).write(to: URL(fileURLWithPath: out), world: world)
        } else {
            try writer.write(to: URL(fileURLWithPath: out), world: world)
        }
        Log.info("synth: \(images) images of \(size), \(classes) classes, seed \(seed) → \(out) (train \(writer.trainCount), val \(images - writer.trainCount))")
    }
}
