import Formats
import Foundation

/// One entry of an instances file's `categories` array.
public struct COCOCategory: Codable, Equatable, Hashable, Sendable {
    public var id: Int
    public var name: String
    public var supercategory: String

    public init(id: Int, name: String, supercategory: String = "") {
        self.id = id
        self.name = name
        self.supercategory = supercategory
    }

    private enum CodingKeys: String, CodingKey { case id, name, supercategory }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        // Not every COCO-style file carries it, and nothing here depends on it.
        supercategory = try c.decodeIfPresent(String.self, forKey: .supercategory) ?? ""
    }
}

/// A `categories` array that is not the standard 80 COCO classes (message is one line).
public struct COCOCategoryError: Error, LocalizedError, CustomStringConvertible {
    public let reason: String
    public var description: String { "non-standard COCO categories: \(oneLine(reason))" }
    public var errorDescription: String? { description }
}

/// The 80 MS-COCO 2014 object classes.
///
/// COCO's category ids run 1…90 with ten gaps (12, 26, 29, 30, 45, 66, 68, 69, 71, 83). The contiguous
/// **index** of a category is the rank of its id in ascending order (0…79); its **segmentation label** is
/// `index + 1`, with 0 for background and ``ignoreLabel`` (255) for crowd regions.
public enum COCOCategories {
    /// Number of object classes.
    public static let count = 80

    /// Label of pixels covered by no instance.
    public static let backgroundLabel: UInt8 = 0

    /// Label of crowd (`iscrowd = 1`) pixels that no single instance covers: excluded from the loss and metrics.
    public static let ignoreLabel: UInt8 = 255

    /// Class names in index order (the order of ascending category id).
    public static let names: [String] = [
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
        "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
        "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
        "teddy bear", "hair drier", "toothbrush",
    ]

    /// Category ids that COCO leaves unused.
    public static let unusedIDs: Set<Int> = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]

    /// Category ids in index order: 1…90 without ``unusedIDs``.
    public static let ids: [Int] = (1...90).filter { !unusedIDs.contains($0) }

    /// The standard id → index map, for code that has no annotation file at hand (e.g. tests, synthetic data).
    /// Ingest should use ``categoryIndex(for:)`` on the file's own `categories` instead.
    public static var standardIndex: [Int: Int] {
        Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($0.element, $0.offset) })
    }

    /// The most classes a label map can hold: class c is label c + 1, 0 is background and 255 is ignore.
    public static let maxClasses = 254

    /// Builds the category id → contiguous index map from any COCO-format `categories` array (a user's own export):
    /// sorted by id, the index of a category is its position in that order, and the class names are the file's.
    /// Ids must be distinct and at most ``maxClasses`` categories fit a label map; otherwise ``COCOCategoryError``.
    public static func anyCategoryIndex(for categories: [COCOCategory]) throws -> [Int: Int] {
        guard !categories.isEmpty else { throw COCOCategoryError(reason: "the file lists no categories") }
        guard categories.count <= maxClasses else {
            throw COCOCategoryError(reason: "\(categories.count) categories; a label map holds at most \(maxClasses) (labels 1…254, 255 ignore)")
        }
        var index: [Int: Int] = [:]
        for (i, category) in categories.sorted(by: { $0.id < $1.id }).enumerated() {
            guard index[category.id] == nil else { throw COCOCategoryError(reason: "category id \(category.id) is listed twice") }
            index[category.id] = i
        }
        return index
    }

    /// Like ``anyCategoryIndex(for:)``, but the array must be exactly the standard 80 (same ids and names as ``ids``
    /// and ``names``), as `ingest coco --expect-coco80` asks; anything else throws ``COCOCategoryError`` naming the
    /// first difference.
    public static func categoryIndex(for categories: [COCOCategory]) throws -> [Int: Int] {
        let sorted = categories.sorted { $0.id < $1.id }
        guard sorted.count == count else {
            throw COCOCategoryError(reason: "expected \(count) categories, the file has \(sorted.count)")
        }
        var index: [Int: Int] = [:]
        for (i, category) in sorted.enumerated() {
            guard category.id == ids[i] else {
                throw COCOCategoryError(reason: "category #\(i) (\"\(category.name)\") has id \(category.id), expected \(ids[i])")
            }
            guard category.name == names[i] else {
                throw COCOCategoryError(reason: "category id \(category.id) is named \"\(category.name)\", expected \"\(names[i])\"")
            }
            index[category.id] = i
        }
        return index
    }
}
