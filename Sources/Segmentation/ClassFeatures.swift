import Formats
import Foundation
import NN
import Storage

/// The per-image feature matrix of the SP stage (spec §6.1) as `extract-features` writes it: HDF5 with `features`
/// (N, D) float32, row i for `ids[i]` (the dataset order), and the dataset it was computed on.
public struct ClassFeatures {
    public var ids: [String]
    public var dimension: Int
    public var values: [Float]
    /// The shard set's name and fingerprint (`ShardIndex.fingerprint`).
    public var dataset: String
    public var datasetFingerprint: String

    public init(ids: [String], dimension: Int, values: [Float], dataset: String, datasetFingerprint: String) {
        precondition(values.count == ids.count * dimension, "ClassFeatures: \(values.count) values for \(ids.count) × \(dimension)")
        self.ids = ids
        self.dimension = dimension
        self.values = values
        self.dataset = dataset
        self.datasetFingerprint = datasetFingerprint
    }

    public func write(to url: URL, attributes: [String: String] = [:]) throws {
        try HDF5File.writeAtomically(to: url) { file in
            try file.write("/features", values, shape: [ids.count, dimension])
            try file.writeStrings("/ids", ids)
            try file.setAttribute(CAMSetAttributes.dataset, dataset)
            try file.setAttribute(CAMSetAttributes.datasetFingerprint, datasetFingerprint)
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try file.setAttribute(key, value) }
        }
    }

    /// Reads `url` and checks it was computed on `dataset` (same ids in the same order).
    public static func read(_ url: URL, for dataset: ShardedDataset) throws -> ClassFeatures {
        let file = try HDF5File.open(url.path)
        guard file.exists("/features"), file.exists("/ids") else {
            throw HDF5Error(file: url.path, what: "not a feature file (from `pcs-mpi extract-features`)")
        }
        let (values, shape) = try file.read("/features", as: Float.self)
        let ids = try file.readStrings("/ids")
        guard shape.count == 2, shape[0] == ids.count else { throw HDF5Error(file: url.path, what: "features are \(shape) for \(ids.count) ids") }
        let fingerprint = try file.stringAttribute(CAMSetAttributes.datasetFingerprint) ?? ""
        guard fingerprint == dataset.fingerprint, ids == dataset.ids else {
            throw HDF5Error(file: url.path, what: "features were computed on '\(try file.stringAttribute(CAMSetAttributes.dataset) ?? "?")', not on '\(dataset.index.name)' of \(dataset.directory.path)")
        }
        return ClassFeatures(ids: ids, dimension: shape[1], values: values, dataset: dataset.index.name, datasetFingerprint: fingerprint)
    }
}

/// Per-class k-means of the SP stage (spec §6.2): for each class c, the features of the images holding c (in
/// dataset order) are clustered into k groups. Each class's seed is derived from the run seed and c, so a class
/// clusters the same wherever it runs; `ClusteringJob` spreads the classes over the ranks.
public struct ClassClustering {
    public var k: Int
    public var restarts: Int
    public var seed: UInt64

    public init(k: Int = 10, restarts: Int = 10, seed: UInt64 = 0) {
        self.k = k
        self.restarts = restarts
        self.seed = seed
    }

    /// The members (dataset positions) of each class.
    public static func members(_ labels: [[Float]], classes: Int) -> [[Int]] {
        (0..<classes).map { c in labels.indices.filter { labels[$0][c] == 1 } }
    }

    /// Checks that every class has at least k members.
    /// - Parameter names: class names, for the error when a class has fewer images than k.
    public func checkMembers(_ members: [[Int]], names: [String], features: ClassFeatures) throws {
        if let c = members.indices.first(where: { members[$0].count < k }) {
            throw FileError(path: features.dataset, what: "class '\(names[c])' has \(members[c].count) images, fewer than --k \(k) clusters")
        }
    }

    /// The cluster assignments of class `c`'s members, in member order.
    public func cluster(class c: Int, members: [Int], features: ClassFeatures) -> [Int] {
        let d = features.dimension
        var rows = [Float](); rows.reserveCapacity(members.count * d)
        for i in members { rows += features.values[(i * d)..<((i + 1) * d)] }
        var classRandom = SeededRandom(seed: seed).derived(UInt64(c))
        let kmeans = KMeans(k: k, restarts: restarts, seed: classRandom.next())
        return kmeans.fit(rows, rows: members.count, columns: d).labels
    }
}
