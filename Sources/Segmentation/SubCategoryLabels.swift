import Formats
import Foundation
import NN

/// The SP stage's sub-category labels (spec §6.2): for each image, one bit per present class c at c·k + j, where j
/// is the image's cluster in class c's k-means. Rows are the training images in dataset order, looked up by id.
///
/// Note: Alignment (spec §6.3, §12 Q1). Upstream builds a "merged" list, the images of class 0, then of class 1, …
/// (an image with n classes appears n times), sums each image's one-hot vectors into a multi-hot one, keeps each
/// image's first merged position ("kept" order: lowest class first, dataset order within it) and writes the
/// labels in kept order, but the SP dataset reads row i for the i-th image of the dataset: nearly every image is
/// trained with another image's vector. By default the vector of image i is its own (aligned by id, as SC-CAM
/// does). `upstreamCompatible` reproduces the published behaviour: the row at dataset position i is the i-th kept
/// row. The kept order and its rows are stored as well, as upstream's files hold them.
public struct SubCategoryLabels: Equatable {
    public var k: Int
    public var classes: Int
    /// Dataset ids; row r of `labels` is what training gives image `ids[r]`.
    public var ids: [String]
    /// ids.count × (classes · k), 0/1.
    public var labels: [Float]
    /// ids.count × classes: the image-level labels of the same rows (upstream's `R0_train_label_20.npy`).
    public var imageLabels: [Float]
    /// Upstream's kept order of the ids and the multi-hot rows in that order.
    public var keptIDs: [String]
    public var keptLabels: [Float]
    public var upstreamCompatible: Bool
    /// The row of each id, built once.
    private let rowOfID: [String: Int]

    public var width: Int { classes * k }

    /// The kept rows' image-level labels (upstream's `R0_train_label_20.npy`, in kept order).
    public var keptImageLabels: [Float] {
        keptIDs.flatMap { imageLabels[(rowOfID[$0]! * classes)..<((rowOfID[$0]! + 1) * classes)] }
    }

    public init(k: Int, classes: Int, ids: [String], labels: [Float], imageLabels: [Float], keptIDs: [String], keptLabels: [Float],
                upstreamCompatible: Bool) throws {
        var rows: [String: Int] = [:]
        for (r, id) in ids.enumerated() {
            guard rows.updateValue(r, forKey: id) == nil else { throw FileError(path: "-", what: "image id \(id) is listed twice") }
        }
        self.k = k
        self.classes = classes
        self.ids = ids
        self.labels = labels
        self.imageLabels = imageLabels
        self.keptIDs = keptIDs
        self.keptLabels = keptLabels
        self.upstreamCompatible = upstreamCompatible
        rowOfID = rows
    }

    /// Builds the labels from the image-level labels (dataset order) and, per class c, the cluster of each image
    /// holding c (in dataset order: the k-means input order).
    public static func build(ids: [String], imageLabels: [[Float]], clusters: [[Int]], k: Int,
                             upstreamCompatible: Bool) throws -> SubCategoryLabels {
        let classes = clusters.count
        precondition(imageLabels.count == ids.count && imageLabels.allSatisfy { $0.count == classes },
                     "SubCategoryLabels: \(imageLabels.count) label vectors for \(ids.count) ids and \(classes) classes")
        let width = classes * k
        var own = [Float](repeating: 0, count: ids.count * width)
        var kept: [Int] = []
        var seen = Set<Int>()
        let members = ClassClustering.members(imageLabels, classes: classes)
        for c in 0..<classes {
            guard members[c].count == clusters[c].count else {
                throw FileError(path: "-", what: "class \(c) has \(members[c].count) images but \(clusters[c].count) cluster assignments")
            }
            for (m, i) in members[c].enumerated() {
                let j = clusters[c][m]
                precondition(j >= 0 && j < k, "SubCategoryLabels: cluster \(j) of class \(c) outside 0..<\(k)")
                own[i * width + c * k + j] = 1
                if seen.insert(i).inserted { kept.append(i) }
            }
        }
        let keptLabels = kept.flatMap { own[($0 * width)..<(($0 + 1) * width)] }
        var labels = own
        if upstreamCompatible {
            // Row i of the training set gets kept row i; positions beyond the kept rows (images without any class,
            // where upstream would fail) get an empty vector.
            labels = [Float](repeating: 0, count: ids.count * width)
            for r in 0..<min(kept.count, ids.count) {
                labels.replaceSubrange((r * width)..<((r + 1) * width), with: keptLabels[(r * width)..<((r + 1) * width)])
            }
        }
        return try SubCategoryLabels(k: k, classes: classes, ids: ids, labels: labels, imageLabels: imageLabels.flatMap { $0 },
                                     keptIDs: kept.map { ids[$0] }, keptLabels: keptLabels, upstreamCompatible: upstreamCompatible)
    }

    /// The vector training gives image `id`, if it is listed.
    public func vector(for id: String) -> ArraySlice<Float>? {
        guard let r = rowOfID[id] else { return nil }
        return labels[(r * width)..<((r + 1) * width)]
    }


    /// Writes `url` (HDF5: `ids`, `label_200` (N, classes·k) and `label_20` (N, classes) as training reads them, and
    /// upstream's files in kept order: `kept_ids`, `kept_label_200`, `kept_label_20`; attributes `k`, `classes`,
    /// `alignment`) and `<url without .h5>_ids.txt`, both atomically.
    /// (`label_200` is named after VOC's 20 · 10 whatever the class count and k, as upstream's files are.)
    public func write(to url: URL) throws {
        try HDF5File.writeAtomically(to: url) { file in
            try file.writeStrings("/ids", ids)
            try file.write("/label_200", labels, shape: [ids.count, width])
            try file.write("/label_20", imageLabels, shape: [ids.count, classes])
            try file.writeStrings("/kept_ids", keptIDs)
            try file.write("/kept_label_200", keptLabels, shape: [keptIDs.count, width])
            try file.write("/kept_label_20", keptImageLabels, shape: [keptIDs.count, classes])
            try file.setAttribute("k", [Int64(k)])
            try file.setAttribute("classes", [Int64(classes)])
            try file.setAttribute("alignment", upstreamCompatible ? "upstream (row i = kept row i)" : "by id")
        }
        try AtomicFile.write(Data(ids.map { $0 + "\n" }.joined().utf8), to: URL(fileURLWithPath: url.deletingPathExtension().path + "_ids.txt"))
    }

    public static func read(_ url: URL) throws -> SubCategoryLabels {
        let file = try HDF5File.open(url.path)
        guard let k = try file.numericAttribute("k", as: Int64.self)?.first,
              let classes = try file.numericAttribute("classes", as: Int64.self)?.first, file.exists("/label_200") else {
            throw HDF5Error(file: url.path, what: "not a sub-category label file (from `pcs-mpi cluster`)")
        }
        let ids = try file.readStrings("/ids")
        let (labels, shape) = try file.read("/label_200", as: Float.self)
        let keptIDs = try file.readStrings("/kept_ids")
        let keptLabels: [Float] = try file.read("/kept_label_200").values
        let imageLabels: [Float] = try file.read("/label_20").values
        guard shape == [ids.count, Int(classes * k)] else {
            throw HDF5Error(file: url.path, what: "label_200 is \(shape), expected [\(ids.count), \(classes * k)]")
        }
        let alignment = try file.stringAttribute("alignment") ?? ""
        do {
            return try SubCategoryLabels(k: Int(k), classes: Int(classes), ids: ids, labels: labels, imageLabels: imageLabels, keptIDs: keptIDs,
                                         keptLabels: keptLabels, upstreamCompatible: alignment.hasPrefix("upstream"))
        } catch let error as FileError {
            throw FileError(path: url.path, what: error.what)
        }
    }
}
