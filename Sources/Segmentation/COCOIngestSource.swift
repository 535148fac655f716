import Formats
import Foundation
import Imaging
import NN
import Storage

/// MS-COCO 2014 as an ingest source: images from a folder (`train2014/`), labels and masks from an instances
/// file, read by streaming (`COCOAnnotationIndex` maps the file and decodes one image's annotations at a time),
/// so the 450 MB `instances_train2014.json` fits a small machine.
///
/// Per image: the label vector (one entry per category of the file, 80 for COCO) of the categories among all its annotations, and a VOC-palette PNG label map
/// (`rasterizeCOCOLabelMap`: instances in annotation order, crowd regions 255 where no instance is). Ids are the
/// file stems (`COCO_train2014_000000000009`). Images without annotations are dropped (82,783 → 82,081 for
/// train2014) unless `keepEmpty`.
public struct COCOIngestSource {
    public let imagesDirectory: URL
    public let index: COCOAnnotationIndex
    public let categoryIndex: [Int: Int]
    public let images: [COCOImage]
    public let classNames: [String]
    /// Saliency maps `<stem>.png` (upstream's DRS maps, which CSE needs), if given.
    public let saliencyDirectory: URL?

    /// `expectCOCO80`: refuse a category list other than the standard 80 (else any COCO-format list is taken, its
    /// classes indexed by category id order and named as the file names them).
    public init(images: URL, annotations: URL, keepEmpty: Bool, expectCOCO80: Bool = false, saliency: URL? = nil) throws {
        guard FileManager.default.fileExists(atPath: images.path) else {
            throw FileError(path: images.path, what: "no such image folder")
        }
        imagesDirectory = images
        if let saliency, !FileManager.default.fileExists(atPath: saliency.path) {
            throw FileError(path: saliency.path, what: "no such saliency folder")
        }
        saliencyDirectory = saliency
        let index = try COCOAnnotationIndex(url: annotations)
        self.index = index
        do {
            categoryIndex = expectCOCO80 ? try COCOCategories.categoryIndex(for: index.categories)
                : try COCOCategories.anyCategoryIndex(for: index.categories)
        } catch {
            throw FileError(path: annotations.path, what: error.localizedDescription)
        }
        let byIndex = categoryIndex.sorted { $0.value < $1.value }
        let names = Dictionary(uniqueKeysWithValues: index.categories.map { ($0.id, $0.name) })
        classNames = byIndex.map { names[$0.key] ?? "\($0.key)" }
        self.images = keepEmpty ? index.images : index.images.filter { index.annotationCount(forImage: $0.id) > 0 }
    }

    public var count: Int { images.count }

    /// Loads image `i`, checks it against the size the annotations give, and rasterises its label map.
    public func record(_ i: Int) throws -> DatasetRecord {
        let image = images[i]
        let id = (image.fileName as NSString).deletingPathExtension
        let path = imagesDirectory.appendingPathComponent(image.fileName).path
        let annotations: [COCOAnnotation]
        do {
            annotations = try index.annotations(forImage: image.id)
        } catch {
            throw IngestError(rejected: RejectedImage(id: id, file: index.url.path, reason: error.localizedDescription))
        }
        // A saliency folder, when given, must hold every image's map: CSE cannot go on without it.
        var record = try ImageRecordLoader.load(id: id, imagePath: path,
                                                label: cocoImageLabels(annotations: annotations, categoryIndex: categoryIndex,
                                                                       classCount: categoryIndex.count),
                                                saliencyPath: saliencyDirectory?.appendingPathComponent("\(id).png").path)
        guard record.width == image.width, record.height == image.height else {
            throw IngestError(rejected: RejectedImage(id: id, file: path,
                reason: "image is \(record.width)x\(record.height), annotations say \(image.width)x\(image.height)"))
        }
        let labels = rasterizeCOCOLabelMap(annotations: annotations, height: image.height, width: image.width, categoryIndex: categoryIndex)
        record.mask = try PNGCodec.encodeIndexed(PixelImage(width: image.width, height: image.height, channels: 1, pixels: labels))
        return record
    }
}
