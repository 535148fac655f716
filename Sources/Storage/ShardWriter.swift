import Formats
import Foundation
import NN

/// The file name of shard `shard` of `count` of the set `name`: `NAME-00003-of-00016.h5`.
public func shardFileName(_ name: String, shard: Int, of count: Int) -> String {
    String(format: "%@-%05d-of-%05d.h5", name, shard, count)
}

/// The version string every shard and index carries, so readers refuse files they do not understand.
public let shardFormat = "pcs-mpi-shard-1"

/// Writes one HDF5 shard: one group per item under `/items/<id>`, the per-shard index `/ids` in insertion order,
/// and root attributes (`format`, `name`, `shard`, `shard_count`, `item_count`, plus the caller's).
///
/// The shard is written under a temporary name and renamed by `finish()`, so a shard with its final name is
/// always complete. Dataset shards and output shards (CAMs, features, pseudo labels) share this layout; what goes
/// inside an item group is the caller's (see `DatasetRecord`).
public final class ShardWriter {
    public let url: URL
    public let shard: Int
    public let shardCount: Int
    private let temporary: URL
    private var file: HDF5File?
    private(set) public var ids: [String] = []

    public convenience init(directory: URL, name: String, shard: Int, of shardCount: Int, attributes: [String: String] = [:]) throws {
        precondition(shard >= 0 && shard < shardCount, "shard \(shard) is outside 0..<\(shardCount)")
        try self.init(directory: directory, fileName: shardFileName(name, shard: shard, of: shardCount), name: name,
                      shard: shard, of: shardCount, attributes: attributes)
    }

    /// A shard with a caller-chosen file name (output sets whose shard count is not known in advance, such as the
    /// resumable parts of `infer-cam`, name their files themselves).
    public init(directory: URL, fileName: String, name: String, shard: Int, of shardCount: Int,
                attributes: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.url = directory.appendingPathComponent(fileName)
        self.shard = shard
        self.shardCount = shardCount
        self.temporary = AtomicFile.temporaryURL(for: url)
        let file = try HDF5File.create(temporary.path)
        try file.setAttribute("format", shardFormat)
        try file.setAttribute("name", name)
        try file.setAttribute("shard", [Int64(shard)])
        try file.setAttribute("shard_count", [Int64(shardCount)])
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
            try file.setAttribute(key, value)
        }
        try file.createGroup("/items")
        self.file = file
    }

    /// Adds one item: `write` fills the group whose path it is given (e.g. `/items/2007_000032`).
    public func add(id: String, _ write: (HDF5File, String) throws -> Void) throws {
        guard let file else { preconditionFailure("ShardWriter.add after finish") }
        guard !id.isEmpty, !id.contains("/"), id != "." else {
            throw FileError(path: url.path, what: "item id '\(id)' cannot name an HDF5 group")
        }
        let group = "/items/\(id)"
        guard !file.exists(group) else { throw FileError(path: url.path, what: "duplicate item id \(id)") }
        try namingTheShard {
            try file.createGroup(group)
            try write(file, group)
        }
        ids.append(id)
    }

    /// Runs `body`, reporting an HDF5 failure under the shard's final name (the user never sees the temporary).
    private func namingTheShard(_ body: () throws -> Void) throws {
        do { try body() } catch let error as HDF5Error where error.file == temporary.path {
            throw HDF5Error(file: url.path, what: "\(error.what) while writing it")
        }
    }

    /// Writes the index of ids, closes the file and renames it into place. Returns the ids in order.
    @discardableResult
    public func finish() throws -> [String] {
        guard let file else { return ids }
        try namingTheShard {
            try file.writeStrings("/ids", ids)
            try file.setAttribute("item_count", [Int64(ids.count)])
            try file.flush()
        }
        file.close()
        self.file = nil
        try AtomicFile.commit(temporary, to: url)
        return ids
    }

    /// Drops an unfinished shard (its temporary file is removed).
    public func abandon() {
        file?.close()
        file = nil
        try? FileManager.default.removeItem(at: temporary)
    }

    deinit { if file != nil { abandon() } }
}
