import Formats
import Foundation
import NN

/// Label maps of one image as a label set stores them (`crf-labels`: the confident-foreground `la` and
/// confident-background `ha` maps; `cse`: the pseudo labels `labels`): uint8 (H, W) palette indices, 255 =
/// ignore. With h5py: `f["items/ID/la"][()]`.
public struct LabelMapRecord: Equatable, Sendable {
    public var id: String
    public var width: Int
    public var height: Int
    /// Named maps, each width · height values, row-major.
    public var maps: [String: [UInt8]]

    public init(id: String, width: Int, height: Int, maps: [String: [UInt8]]) {
        precondition(maps.values.allSatisfy { $0.count == width * height }, "LabelMapRecord \(id): a map is not \(width)x\(height)")
        self.id = id
        self.width = width
        self.height = height
        self.maps = maps
    }
}

/// The attributes that tie a label set to the dataset and settings it was made with.
public enum LabelSetAttributes {
    /// The map names the set holds, comma-separated (e.g. `la,ha`).
    public static let maps = "maps"
}

extension ShardWriter {
    /// Adds the label maps of one image as one item group.
    public func add(_ record: LabelMapRecord) throws {
        try add(id: record.id) { file, group in
            for (name, pixels) in record.maps.sorted(by: { $0.key < $1.key }) {
                try file.write("\(group)/\(name)", pixels, shape: [record.height, record.width])
            }
        }
    }
}

extension ShardReader {
    /// Reads the map `name` of `id` from this shard: (width, height, pixels).
    public func labelMap(_ id: String, name: String) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        let group = try group(for: id)
        guard file.exists("\(group)/\(name)") else {
            throw HDF5Error(file: url.path, what: "item \(id) has no label map '\(name)'")
        }
        let (pixels, shape): ([UInt8], [Int]) = try file.read("\(group)/\(name)")
        guard shape.count == 2 else { throw HDF5Error(file: url.path, what: "item \(id): label map '\(name)' is \(shape), not (H, W)") }
        return (shape[1], shape[0], pixels)
    }
}

extension ShardedDataset {
    /// Reads the map `name` of `id` from whichever shard holds it.
    public func labelMap(_ id: String, name: String) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        try locate(id).reader.labelMap(id, name: name)
    }

    /// The label set in `directory` (the first `NAME-index.json` there that is not a CAM set's), checked against
    /// `dataset`; nil when the folder holds none.
    public static func labelSet(in directory: URL, for dataset: ShardedDataset, made: String) throws -> ShardedDataset? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        guard let name = names.filter({ $0.hasSuffix("-index.json") }).map({ String($0.dropLast("-index.json".count)) })
            .filter({ $0 != CAMSetAttributes.name }).sorted().first else { return nil }
        return try output(directory: directory, name: name, for: dataset, made: made)
    }

    /// The map `requested` of this label set, or its first map when nil; nil when the set has no such map.
    public func labelMapName(_ requested: String?) -> String? {
        guard let name = requested ?? labelMapNames.first, labelMapNames.contains(name) else { return nil }
        return name
    }

    /// The maps a label set holds (`LabelSetAttributes.maps`).
    public var labelMapNames: [String] {
        (index.attributes[LabelSetAttributes.maps] ?? "").split(separator: ",").map(String.init)
    }

    /// Opens the output set `name` (CAMs, label maps) in `directory` and checks it was computed on `dataset` (same
    /// name, classes and ids). `made` says which command writes it, for the error when it is missing.
    public static func output(directory: URL, name: String, for dataset: ShardedDataset, made: String) throws -> ShardedDataset {
        let indexPath = ShardIndex.url(directory: directory, name: name).path
        guard FileManager.default.fileExists(atPath: indexPath) else {
            throw FileError(path: indexPath, what: "no \(name) index: \(made) has not finished writing here (run it again with the same arguments to resume)")
        }
        let set = try ShardedDataset(directory: directory, name: name)
        let madeFor = set.index.attributes[CAMSetAttributes.dataset] ?? "?"
        guard madeFor == dataset.index.name,
              set.index.attributes[CAMSetAttributes.datasetFingerprint] == dataset.fingerprint else {
            throw FileError(path: indexPath, what: "\(name) were computed on shard set '\(madeFor)' (fingerprint \(set.index.attributes[CAMSetAttributes.datasetFingerprint] ?? "?")), not on '\(dataset.index.name)' of \(dataset.directory.path) (\(dataset.fingerprint))")
        }
        return set
    }
}
