import Formats
import Foundation

/// One entry of an instances file's `images` array (the fields ingest needs).
public struct COCOImage: Codable, Equatable, Hashable, Sendable {
    public var id: Int
    public var fileName: String
    public var width: Int
    public var height: Int

    public init(id: Int, fileName: String, width: Int, height: Int) {
        self.id = id
        self.fileName = fileName
        self.width = width
        self.height = height
    }

    private enum CodingKeys: String, CodingKey {
        case id, width, height
        case fileName = "file_name"
    }
}

/// An instance's shape, in one of the three encodings COCO uses.
///
/// - `polygons`: a list of parts, each `[x0, y0, x1, y1, …]` in pixel coordinates; the mask is their union.
/// - `rle`: uncompressed run lengths (`counts` is a list of ints) over the column-major `height × width` mask,
///   alternating background and foreground and starting with background. COCO uses it for most crowd regions.
/// - `compressedRLE`: the same runs packed into a string (`counts` is a string), as pycocotools writes them.
public enum COCOSegmentation: Decodable, Equatable, Sendable {
    case polygons([[Double]])
    case rle(counts: [UInt32], height: Int, width: Int)
    case compressedRLE(String, height: Int, width: Int)

    private enum RLEKeys: String, CodingKey { case counts, size }

    public init(from decoder: Decoder) throws {
        if let parts = try? decoder.singleValueContainer().decode([[Double]].self) {
            self = .polygons(parts)
            return
        }
        let c = try decoder.container(keyedBy: RLEKeys.self)
        let size = try c.decode([Int].self, forKey: .size)
        guard size.count == 2, size[0] >= 0, size[1] >= 0 else {
            throw DecodingError.dataCorruptedError(forKey: .size, in: c, debugDescription: "RLE size must be [height, width], got \(size)")
        }
        if let counts = try? c.decode([UInt32].self, forKey: .counts) {
            self = .rle(counts: counts, height: size[0], width: size[1])
        } else {
            self = .compressedRLE(try c.decode(String.self, forKey: .counts), height: size[0], width: size[1])
        }
    }
}

/// One entry of an instances file's `annotations` array.
public struct COCOAnnotation: Decodable, Equatable, Sendable {
    public var id: Int
    public var imageID: Int
    public var categoryID: Int
    /// `iscrowd = 1`: the region covers a group of objects; its pixels are ignored rather than labelled.
    public var isCrowd: Bool
    public var segmentation: COCOSegmentation
    public var area: Double
    /// `[x, y, width, height]`.
    public var bbox: [Double]

    public init(id: Int, imageID: Int, categoryID: Int, isCrowd: Bool, segmentation: COCOSegmentation, area: Double = 0, bbox: [Double] = []) {
        self.id = id
        self.imageID = imageID
        self.categoryID = categoryID
        self.isCrowd = isCrowd
        self.segmentation = segmentation
        self.area = area
        self.bbox = bbox
    }

    private enum CodingKeys: String, CodingKey {
        case id, segmentation, area, bbox, iscrowd
        case imageID = "image_id"
        case categoryID = "category_id"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        imageID = try c.decode(Int.self, forKey: .imageID)
        categoryID = try c.decode(Int.self, forKey: .categoryID)
        // COCO writes 0/1; some converters write true/false.
        if let flag = try? c.decodeIfPresent(Int.self, forKey: .iscrowd) {
            isCrowd = flag != 0
        } else {
            isCrowd = try c.decodeIfPresent(Bool.self, forKey: .iscrowd) ?? false
        }
        segmentation = try c.decode(COCOSegmentation.self, forKey: .segmentation)
        area = try c.decodeIfPresent(Double.self, forKey: .area) ?? 0
        bbox = try c.decodeIfPresent([Double].self, forKey: .bbox) ?? []
    }
}

/// A failure to read or index an instances file; the one-line message names the file and, for malformed JSON,
/// the byte offset.
public struct COCOIndexError: Error, LocalizedError, CustomStringConvertible {
    public let file: String
    public let offset: Int?
    public let reason: String

    public var description: String {
        if let offset { return "\(file): byte offset \(offset): \(oneLine(reason))" }
        return "\(file): \(oneLine(reason))"
    }
    public var errorDescription: String? { description }
}

/// A streaming index over a COCO instances file (e.g. `instances_train2014.json`, 450 MB).
///
/// The file is memory-mapped and walked once by a byte scanner that finds the `images`, `annotations` and
/// `categories` arrays and the byte span of each element, so no JSON tree of the whole file is ever built. Images
/// and categories (small) are decoded at once; each annotation is only scanned for its `image_id`, and its span
/// is kept under that image. ``annotations(forImage:)`` decodes an image's annotations on demand, in file order.
/// Resident memory is therefore the spans (~16 bytes per annotation) plus whatever pages of the mapping are hot.
///
/// Immutable after `init`, so one index may be shared by threads.
public final class COCOAnnotationIndex: Sendable {
    public let url: URL
    /// Sorted by id.
    public let images: [COCOImage]
    /// Sorted by id.
    public let categories: [COCOCategory]

    private let data: Data
    private let positionOfImage: [Int: Int]
    /// CSR layout: the spans of `images[p]` are `spanStarts[first[p]..<first[p+1]]` (with `spanEnds`), in file order.
    private let first: [Int]
    private let spanStarts: [Int]
    private let spanEnds: [Int]

    /// Maps and indexes `url`. Throws ``COCOIndexError`` if the file cannot be read, is malformed JSON, lacks one of
    /// the three arrays, has duplicate image ids, or has an annotation whose `image_id` is not among its images.
    public init(url: URL) throws {
        self.url = url
        let file = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw COCOIndexError(file: file, offset: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        self.data = data
        let layout = try data.withUnsafeBytes { raw -> COCOFileLayout in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress, raw.count > 0 else {
                throw COCOIndexError(file: file, offset: 0, reason: "empty file")
            }
            return try COCOJSONScanner(bytes: base, count: raw.count, file: file).scanInstancesFile()
        }

        let decoder = JSONDecoder()
        func decodeAll<T: Decodable>(_ type: T.Type, _ spans: [Range<Int>], _ what: String) throws -> [T] {
            try spans.map { span in
                do { return try decoder.decode(T.self, from: data[span]) } catch {
                    throw COCOIndexError(file: file, offset: span.lowerBound, reason: "cannot decode \(what) element: \(cocoOneLine(error))")
                }
            }
        }
        let images = try decodeAll(COCOImage.self, layout.images, "images").sorted { $0.id < $1.id }
        self.images = images
        categories = try decodeAll(COCOCategory.self, layout.categories, "categories").sorted { $0.id < $1.id }

        var positions: [Int: Int] = [:]
        positions.reserveCapacity(images.count)
        for (p, image) in images.enumerated() {
            guard positions.updateValue(p, forKey: image.id) == nil else {
                throw COCOIndexError(file: file, offset: nil, reason: "image id \(image.id) appears more than once in \"images\"")
            }
        }
        positionOfImage = positions

        // Counting sort of the annotations by image position; stable, so each image keeps file order.
        let annotationImagePositions = try zip(layout.annotationImageIDs, layout.annotationStarts).map { id, start in
            guard let p = positions[id] else {
                throw COCOIndexError(file: file, offset: start, reason: "annotation refers to image_id \(id), which is not in \"images\"")
            }
            return p
        }
        var first = [Int](repeating: 0, count: images.count + 1)
        for p in annotationImagePositions { first[p + 1] += 1 }
        for p in 0..<images.count { first[p + 1] += first[p] }
        var next = first
        var starts = [Int](repeating: 0, count: annotationImagePositions.count)
        var ends = starts
        for (k, p) in annotationImagePositions.enumerated() {
            starts[next[p]] = layout.annotationStarts[k]
            ends[next[p]] = layout.annotationEnds[k]
            next[p] += 1
        }
        self.first = first
        spanStarts = starts
        spanEnds = ends
    }

    /// Number of annotations in the file.
    public var annotationCount: Int { spanStarts.count }

    /// The image with this id, if the file has one.
    public func image(withID id: Int) -> COCOImage? {
        positionOfImage[id].map { images[$0] }
    }

    /// Number of annotations of an image (0 for an unknown id), without decoding them.
    public func annotationCount(forImage id: Int) -> Int {
        guard let p = positionOfImage[id] else { return 0 }
        return first[p + 1] - first[p]
    }

    /// Decodes the annotations of image `id`, in the order they appear in the file (which is the paint order of
    /// ``rasterizeCOCOLabelMap(annotations:height:width:categoryIndex:)``). Throws ``COCOIndexError`` for an unknown
    /// id or an annotation that does not decode.
    public func annotations(forImage id: Int) throws -> [COCOAnnotation] {
        guard let p = positionOfImage[id] else {
            throw COCOIndexError(file: url.path, offset: nil, reason: "no image with id \(id)")
        }
        let decoder = JSONDecoder()
        return try (first[p]..<first[p + 1]).map { k in
            let span = spanStarts[k]..<spanEnds[k]
            do { return try decoder.decode(COCOAnnotation.self, from: data[span]) } catch {
                throw COCOIndexError(file: url.path, offset: span.lowerBound, reason: "cannot decode annotation: \(cocoOneLine(error))")
            }
        }
    }
}

/// A decoding error as one line: the coding path and what went wrong.
func cocoOneLine(_ error: Error) -> String {
    func path(_ keys: [CodingKey]) -> String {
        guard !keys.isEmpty else { return "" }
        var text = ""
        for key in keys {
            if let i = key.intValue { text += "[\(i)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text + ": "
    }
    let text: String
    switch error {
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
        text = path(c.codingPath) + c.debugDescription + (c.underlyingError.map { " (\($0.localizedDescription))" } ?? "")
    case DecodingError.keyNotFound(let key, let c):
        text = path(c.codingPath) + "missing key \"\(key.stringValue)\""
    default:
        text = "\(error)"
    }
    return text.split(whereSeparator: \.isNewline).joined(separator: " ")
}
