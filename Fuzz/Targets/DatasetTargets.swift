import Foundation
import Segmentation
import Storage

extension FuzzTarget {
    /// A COCO instances file: the byte scanner, then every image's annotations decoded.
    static let coco = FuzzTarget(name: "coco", fileExtension: "json") { _, path in
        let index = try COCOAnnotationIndex(url: URL(fileURLWithPath: path))
        for image in index.images { _ = try index.annotations(forImage: image.id) }
    }

    /// VOC annotation XML and split lists (read as text; they never throw).
    static let voc = FuzzTarget(name: "voc", fileExtension: "xml") { bytes, _ in
        let text = String(decoding: bytes, as: UTF8.self)
        _ = VOC.imageLabel(annotationXML: text)
        _ = VOC.ids(fromList: text)
    }

    /// An HDF5 shard: opening checks, then every item's record, size and mask.
    static let shard = FuzzTarget(name: "shard", fileExtension: "h5") { _, path in
        let reader = try ShardReader(url: URL(fileURLWithPath: path))
        for id in reader.ids {
            _ = try reader.record(id)
            _ = try reader.imageSize(id)
            _ = try reader.mask(id)
        }
    }
}
