import Formats
import Foundation
import NN

/// The normalised CAMs of one image: one (height, width) map per present class, stacked as (K, height, width)
/// (`MultiScaleCAM`'s result, spec §4.2).
public struct ClassActivationMaps: Equatable, Sendable {
    /// Foreground class indices (0-based, background excluded: upstream's dict keys), ascending.
    public var classes: [Int]
    public var width: Int
    public var height: Int
    /// K · height · width values, class-major.
    public var values: [Float]

    public init(classes: [Int], width: Int, height: Int, values: [Float]) {
        precondition(values.count == classes.count * width * height,
                     "ClassActivationMaps: \(values.count) values for \(classes.count) classes of \(width)x\(height)")
        self.classes = classes
        self.width = width
        self.height = height
        self.values = values
    }

    /// The map of the k-th present class.
    public func map(_ k: Int) -> ArraySlice<Float> { values[(k * width * height)..<((k + 1) * width * height)] }
}

/// The CAMs of one image as they are stored in an output shard (`pcs-mpi infer-cam`).
///
/// The item group `/items/<id>` holds `cams` (float32, (K, H0, W0), the original image size) and `classes`
/// (int32, (K), foreground indices 0-based, background excluded: upstream's `.npy` dict keys). With h5py:
/// `dict(zip(f["items/ID/classes"][()], f["items/ID/cams"][()]))` is upstream's `out_cam/ID.npy`.
public struct CAMRecord: Equatable, Sendable {
    public var id: String
    public var maps: ClassActivationMaps

    public init(id: String, maps: ClassActivationMaps) {
        self.id = id
        self.maps = maps
    }
}

/// The attributes that tie a CAM shard set to the dataset it was computed on.
public enum CAMSetAttributes {
    /// Shard set name of CAM outputs.
    public static let name = "cams"
    public static let dataset = "dataset"
    public static let datasetFingerprint = "dataset_fingerprint"
    public static let settings = "settings"
}

extension ShardIndex {
    /// A fingerprint of the set's identity: its name, class names and ids in order (FNV-1a, 64 bits, hex).
    public var fingerprint: String {
        var hash = FNV1a()
        hash.mix(name)
        hash.mix(attributes["class_names"] ?? "")
        for id in ids { hash.mix(id) }
        return hash.hex
    }
}

extension ShardWriter {
    /// Adds the CAMs of one image as one item group.
    public func add(_ record: CAMRecord) throws {
        try add(id: record.id) { file, group in
            let maps = record.maps
            try file.write("\(group)/cams", maps.values, shape: [maps.classes.count, maps.height, maps.width])
            try file.write("\(group)/classes", maps.classes.map { Int32($0) }, shape: [maps.classes.count])
        }
    }
}

extension ShardReader {
    /// Reads the CAMs of `id` from this shard.
    public func camRecord(_ id: String) throws -> CAMRecord {
        let group = try group(for: id)
        let (values, shape) = try file.read("\(group)/cams", as: Float.self)
        let classes: [Int32] = try file.read("\(group)/classes").values
        guard shape.count == 3, shape[0] == classes.count else {
            throw HDF5Error(file: url.path, what: "item \(id): cams \(shape) do not match \(classes.count) classes")
        }
        return CAMRecord(id: id, maps: ClassActivationMaps(classes: classes.map { Int($0) }, width: shape[2], height: shape[1], values: values))
    }
}

extension ShardedDataset {
    /// Reads the CAMs of `id` from whichever shard holds them.
    public func camRecord(_ id: String) throws -> CAMRecord {
        try locate(id).reader.camRecord(id)
    }

    /// Opens a CAM set and checks that it was computed on `dataset` (same name, classes and ids).
    public static func cams(directory: URL, for dataset: ShardedDataset) throws -> ShardedDataset {
        try output(directory: directory, name: CAMSetAttributes.name, for: dataset, made: "infer-cam")
    }
}
