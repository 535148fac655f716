import Formats
import Foundation
import NN

/// One image of a dataset as it is stored in a shard: the encoded file bytes (decoded only when used), its
/// image-level label vector, and optional encoded PNG mask and saliency map.
///
/// In the shard, the item group `/items/<id>` holds `image` (uint8, the JPEG or PNG file as it was, with attributes
/// `format`, `width`, `height`), `label` (float32, one entry per class), and optionally `mask` and `saliency`
/// (uint8, PNG files). With h5py: `PIL.Image.open(io.BytesIO(f["items/ID/image"][()]))`.
public struct DatasetRecord: Equatable, Sendable {
    public var id: String
    public var image: [UInt8]
    /// "jpeg" or "png".
    public var imageFormat: String
    public var width: Int
    public var height: Int
    public var label: [Float]
    public var mask: [UInt8]?
    public var saliency: [UInt8]?

    public init(id: String, image: [UInt8], imageFormat: String, width: Int, height: Int, label: [Float],
                mask: [UInt8]? = nil, saliency: [UInt8]? = nil) {
        self.id = id
        self.image = image
        self.imageFormat = imageFormat
        self.width = width
        self.height = height
        self.label = label
        self.mask = mask
        self.saliency = saliency
    }
}

extension ShardWriter {
    /// Adds a dataset record as one item group.
    public func add(_ record: DatasetRecord) throws {
        try add(id: record.id) { file, group in
            try file.write("\(group)/image", record.image)
            try file.setAttribute("format", record.imageFormat, on: "\(group)/image")
            try file.setAttribute("width", [Int64(record.width)], on: "\(group)/image")
            try file.setAttribute("height", [Int64(record.height)], on: "\(group)/image")
            try file.write("\(group)/label", record.label)
            if let mask = record.mask { try file.write("\(group)/mask", mask) }
            if let saliency = record.saliency { try file.write("\(group)/saliency", saliency) }
        }
    }
}

extension ShardReader {
    /// Reads the dataset record `id` from this shard.
    public func record(_ id: String) throws -> DatasetRecord {
        let group = try group(for: id)
        let image: [UInt8] = try file.read("\(group)/image").values
        let format = try file.stringAttribute("format", on: "\(group)/image") ?? "jpeg"
        let width = try file.numericAttribute("width", on: "\(group)/image", as: Int64.self)?.first ?? 0
        let height = try file.numericAttribute("height", on: "\(group)/image", as: Int64.self)?.first ?? 0
        let label: [Float] = try file.read("\(group)/label").values
        let mask: [UInt8]? = file.exists("\(group)/mask") ? try file.read("\(group)/mask").values : nil
        let saliency: [UInt8]? = file.exists("\(group)/saliency") ? try file.read("\(group)/saliency").values : nil
        return DatasetRecord(id: id, image: image, imageFormat: format, width: Int(width), height: Int(height),
                             label: label, mask: mask, saliency: saliency)
    }
}

extension ShardReader {
    /// The encoded ground-truth mask of `id` alone (nil when the item has none; nothing else is read).
    public func mask(_ id: String) throws -> [UInt8]? {
        let path = "\(try group(for: id))/mask"
        return file.exists(path) ? try file.read(path).values : nil
    }

    /// The image-level label vector of `id` alone (nothing else is read).
    public func label(_ id: String) throws -> [Float] {
        try file.read("\(try group(for: id))/label").values
    }

    /// The stored image's width and height (from its attributes; nothing is decoded).
    public func imageSize(_ id: String) throws -> (width: Int, height: Int) {
        let group = try group(for: id)
        let width = try file.numericAttribute("width", on: "\(group)/image", as: Int64.self)?.first ?? 0
        let height = try file.numericAttribute("height", on: "\(group)/image", as: Int64.self)?.first ?? 0
        guard width > 0, height > 0 else { throw HDF5Error(file: url.path, what: "item \(id): image has no width/height attributes") }
        return (Int(width), Int(height))
    }
}

extension ShardedDataset {
    /// Reads the dataset record `id`, from whichever shard holds it.
    public func record(_ id: String) throws -> DatasetRecord {
        try locate(id).reader.record(id)
    }

    /// The class names the set was written with (attribute `class_names`, comma-separated), if any.
    public var classNames: [String] {
        (index.attributes["class_names"] ?? "").split(separator: ",").map(String.init)
    }
}
