import Distributed
import Formats
import Foundation
import Imaging
import NN

/// Writes a generated dataset in the VOC folder layout, so that every stage can run without downloads:
///
///     DIR/JPEGImages/<id>.jpg            the images
///     DIR/SegmentationClass/<id>.png     ground-truth masks, VOC palette (0 background, c+1 class c, 255 ignore)
///     DIR/Annotations/<id>.xml           VOC-style objects with names and boxes (the image-level label source)
///     DIR/saliency_map_DRS/<id>.png      grey saliency maps (named as upstream expects them)
///     DIR/ImageSets/Segmentation/{train,val}.txt
///     DIR/classes.txt                    the class names, one per line
///
/// Under `mpirun -n N` rank r renders images i with i mod N = r; every image depends only on (seed, i), and
/// rank 0 writes the lists, so the folder is the same for any rank count.
public struct SyntheticDatasetWriter {
    public var config: SyntheticConfig
    public var images: Int
    /// Fraction of the images (the last ones) listed in `val.txt`.
    public var valFraction: Double
    public var jpegQuality: Int

    public init(config: SyntheticConfig, images: Int, valFraction: Double = 0.25, jpegQuality: Int = 92) {
        self.config = config
        self.images = images
        self.valFraction = valFraction
        self.jpegQuality = jpegQuality
    }

    public static func id(_ i: Int) -> String { String(format: "synth_%06d", i) }

    /// Number of images listed in `train.txt` (the rest are `val`).
    public var trainCount: Int { max(1, images - Int((Double(images) * valFraction).rounded())) }

    public func write(to root: URL, world: Communicator) throws {
        let fm = FileManager.default
        for folder in ["JPEGImages", "SegmentationClass", "Annotations", "saliency_map_DRS", "ImageSets/Segmentation"] {
            try fm.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let names = SyntheticScene.classNames(count: config.classes)
        let mine = world.share(images)
        let progress = ProgressReporter("synth", total: mine.underestimatedCount, unit: "images", enabled: world.isRoot)
        for i in mine {
            let id = Self.id(i)
            let sample = SyntheticScene.render(index: i, config: config)
            let w = sample.width, h = sample.height
            let jpeg = try JPEGCodec.encode(PixelImage(width: w, height: h, channels: 3, pixels: sample.rgb), quality: jpegQuality)
            try AtomicFile.write(Data(jpeg), to: root.appendingPathComponent("JPEGImages/\(id).jpg"))
            let mask = try PNGCodec.encodeIndexed(PixelImage(width: w, height: h, channels: 1, pixels: sample.mask))
            try AtomicFile.write(Data(mask), to: root.appendingPathComponent("SegmentationClass/\(id).png"))
            let saliency = try PNGCodec.encode(PixelImage(width: w, height: h, channels: 1, pixels: sample.saliency))
            try AtomicFile.write(Data(saliency), to: root.appendingPathComponent("saliency_map_DRS/\(id).png"))
            let labelled = sample.imageLabels
            let visible = sample.objects.filter { labelled[$0.classIndex] > 0 }
            let xml = Self.annotationXML(id: id, width: w, height: h, objects: visible, names: names)
            try AtomicFile.write(Data(xml.utf8), to: root.appendingPathComponent("Annotations/\(id).xml"))
            progress.advance()
        }
        progress.finish()
        world.barrier()
        if world.isRoot {
            let ids = (0..<images).map(Self.id)
            try AtomicFile.write(Data((ids[..<trainCount].joined(separator: "\n") + "\n").utf8),
                                 to: root.appendingPathComponent("ImageSets/Segmentation/train.txt"))
            try AtomicFile.write(Data((ids[trainCount...].joined(separator: "\n") + (trainCount < images ? "\n" : "")).utf8),
                                 to: root.appendingPathComponent("ImageSets/Segmentation/val.txt"))
            try AtomicFile.write(Data((names.joined(separator: "\n") + "\n").utf8), to: root.appendingPathComponent("classes.txt"))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try encoder.encode(config), to: root.appendingPathComponent("synth.json"))
        }
        world.barrier()
    }

    /// A VOC-style annotation: one `<object>` per visible object, with its class name and 1-based box.
    static func annotationXML(id: String, width: Int, height: Int, objects: [SyntheticObject], names: [String]) -> String {
        var xml = "<annotation>\n\t<folder>synth</folder>\n\t<filename>\(id).jpg</filename>\n"
        xml += "\t<size>\n\t\t<width>\(width)</width>\n\t\t<height>\(height)</height>\n\t\t<depth>3</depth>\n\t</size>\n"
        xml += "\t<segmented>1</segmented>\n"
        for o in objects {
            xml += "\t<object>\n\t\t<name>\(names[o.classIndex])</name>\n\t\t<pose>Unspecified</pose>\n"
            xml += "\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n"
            xml += "\t\t<bndbox>\n\t\t\t<xmin>\(o.xmin)</xmin>\n\t\t\t<ymin>\(o.ymin)</ymin>\n"
            xml += "\t\t\t<xmax>\(o.xmax)</xmax>\n\t\t\t<ymax>\(o.ymax)</ymax>\n\t\t</bndbox>\n\t</object>\n"
        }
        return xml + "</annotation>\n"
    }
}
