import Distributed
import Formats
import Foundation
import Imaging
import Segmentation

/// Writes the generated dataset in COCO's own layout, so the COCO path (`ingest coco`, the 81-class
/// configurations) runs without downloads and at any scale:
///
///     DIR/images/<id>.jpg                          the images (the same pixels as the VOC layout's JPEGImages)
///     DIR/annotations/instances_{train,val}.json   COCO instances files
///     DIR/saliency_map_DRS/<id>.png                the saliency maps CSE needs (`ingest coco --saliency`)
///
/// The categories keep COCO's habit of sparse ids (class c of C gets COCO's `ids[c·80/C]`) and are named after the
/// VOC classes, so ingest has to index them by id order and take the file's names. Each image's annotations are one
/// per class present (the pixels the VOC layout's mask gives that class), written in turn as polygons (rectangles on
/// the pixel edges, which pycocotools rasterises to exactly those pixels), uncompressed RLE and compressed RLE, and
/// one crowd annotation (`iscrowd` 1, RLE) over the mask's 255 band, so `ingest coco` rebuilds the VOC layout's
/// mask and labels exactly. Annotation ids are `100·image id + k`.
///
/// Under `mpirun -n N` rank r renders the images i with i mod N = r into a fragment file; rank 0 joins the
/// fragments in image order, so the files are the same for any rank count. Memory: rank 0 holds the fragments of
/// one split (a few KB an image).
public struct SyntheticCOCOWriter {
    /// The images, their count, seed, split and JPEG quality: the VOC writer's settings, so both layouts hold the
    /// same dataset.
    public var voc: SyntheticDatasetWriter
    var config: SyntheticConfig { voc.config }
    var images: Int { voc.images }

    public init(_ voc: SyntheticDatasetWriter) { self.voc = voc }

    /// The category id of class `c` of `classes`.
    public static func categoryID(_ c: Int, classes: Int) -> Int { COCOCategories.ids[c * COCOCategories.count / classes] }

    public func write(to root: URL, world: Communicator) throws {
        let fm = FileManager.default
        let imagesFolder = root.appendingPathComponent("images"), annotations = root.appendingPathComponent("annotations")
        let saliency = root.appendingPathComponent("saliency_map_DRS")
        for folder in [imagesFolder, annotations, saliency] { try fm.createDirectory(at: folder, withIntermediateDirectories: true) }
        let classes = SyntheticScene.classNames(count: config.classes)
        let mine = world.share(images)
        let fragment = annotations.appendingPathComponent(".fragment-r\(world.rank)")
        var lines = ""
        let progress = ProgressReporter("synth", total: mine.underestimatedCount, unit: "images", enabled: world.isRoot)
        for i in mine {
            let id = SyntheticDatasetWriter.id(i)
            let sample = SyntheticScene.render(index: i, config: config)
            let jpeg = try JPEGCodec.encode(PixelImage(width: sample.width, height: sample.height, channels: 3, pixels: sample.rgb), quality: voc.jpegQuality)
            try AtomicFile.write(Data(jpeg), to: imagesFolder.appendingPathComponent("\(id).jpg"))
            let map = try PNGCodec.encode(PixelImage(width: sample.width, height: sample.height, channels: 1, pixels: sample.saliency))
            try AtomicFile.write(Data(map), to: saliency.appendingPathComponent("\(id).png"))
            lines += "\(i)\t" + Self.entry(index: i, fileName: "\(id).jpg", sample: sample, classes: classes.count) + "\n"
            progress.advance()
        }
        progress.finish()
        try AtomicFile.write(Data(lines.utf8), to: fragment)
        world.barrier()
        if world.isRoot {
            var entries = [String](repeating: "", count: images)
            for rank in 0..<world.size {
                let url = annotations.appendingPathComponent(".fragment-r\(rank)")
                for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
                    let tab = line.firstIndex(of: "\t")!
                    entries[Int(line[..<tab])!] = String(line[line.index(after: tab)...])
                }
                try fm.removeItem(at: url)
            }
            let categories = classes.enumerated().map { c, name in
                "{\"id\":\(Self.categoryID(c, classes: classes.count)),\"name\":\"\(name)\",\"supercategory\":\"synthetic\"}"
            }.joined(separator: ",")
            let train = voc.trainCount
            for (split, range) in [("train", 0..<train), ("val", train..<images)] {
                let parts = entries[range].map { $0.split(separator: "\t", maxSplits: 1).map(String.init) }
                let json = "{\"info\":{\"description\":\"pcs-mpi synth, seed \(config.seed)\"},\"licenses\":[],\"images\":["
                    + parts.map { $0[0] }.joined(separator: ",") + "],\"annotations\":["
                    + parts.compactMap { $0.count > 1 && !$0[1].isEmpty ? $0[1] : nil }.joined(separator: ",")
                    + "],\"categories\":[\(categories)]}\n"
                try AtomicFile.write(Data(json.utf8), to: annotations.appendingPathComponent("instances_\(split).json"))
            }
        }
        world.barrier()
    }

    /// One image's `images` element, a tab, and its `annotations` elements joined by commas.
    static func entry(index i: Int, fileName: String, sample: SyntheticSample, classes: Int) -> String {
        let (w, h) = (sample.width, sample.height)
        let imageID = i + 1
        var annotations: [String] = []
        func annotation(_ pixels: [UInt8], category: Int, crowd: Bool, kind: Int) {
            var (x0, y0, x1, y1, area) = (w, h, -1, -1, 0)
            for p in pixels.indices where pixels[p] != 0 {
                (x0, y0, x1, y1) = (min(x0, p % w), min(y0, p / w), max(x1, p % w), max(y1, p / w))
                area += 1
            }
            guard area > 0 else { return }
            let segmentation: String
            switch crowd ? 1 : kind % 3 {
            case 0:
                segmentation = "[" + COCOMask.rectanglePolygons(mask: pixels, height: h, width: w)
                    .map { "[" + $0.map { String($0) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
            case 1:
                let counts = COCOMask.rle(mask: pixels, height: h, width: w).counts.map(String.init).joined(separator: ",")
                segmentation = "{\"counts\":[\(counts)],\"size\":[\(h),\(w)]}"
            default:
                let string = COCOMask.compressedCounts(COCOMask.rle(mask: pixels, height: h, width: w).counts)
                let escaped = string.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                segmentation = "{\"counts\":\"\(escaped)\",\"size\":[\(h),\(w)]}"
            }
            annotations.append("{\"id\":\(100 * imageID + annotations.count),\"image_id\":\(imageID),\"category_id\":\(category),"
                + "\"segmentation\":\(segmentation),\"area\":\(area),\"bbox\":[\(x0),\(y0),\(x1 - x0 + 1),\(y1 - y0 + 1)],\"iscrowd\":\(crowd ? 1 : 0)}")
        }
        let present = (0..<classes).filter { c in sample.mask.contains(UInt8(c + 1)) }
        for (k, c) in present.enumerated() {
            annotation(sample.mask.map { $0 == UInt8(c + 1) ? 1 : 0 }, category: SyntheticCOCOWriter.categoryID(c, classes: classes), crowd: false, kind: i + k)
        }
        // The void band: a crowd region of a class the image has (crowd categories count among the image's labels).
        if let first = present.first {
            annotation(sample.mask.map { $0 == SyntheticScene.ignoreLabel ? 1 : 0 }, category: SyntheticCOCOWriter.categoryID(first, classes: classes),
                       crowd: true, kind: 0)
        }
        return "{\"id\":\(imageID),\"file_name\":\"\(fileName)\",\"width\":\(w),\"height\":\(h)}\t" + annotations.joined(separator: ",")
    }
}
