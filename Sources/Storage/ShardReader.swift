import Formats
import Foundation
import NN

/// Reads one shard written by `ShardWriter`, checking on open that it is complete and self-consistent:
/// a truncated, foreign or corrupt file is an error that names it.
public final class ShardReader {
    public let url: URL
    public let file: HDF5File
    /// The item ids in the order they were written.
    public let ids: [String]
    private lazy var positions: [String: Int] = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        file = try HDF5File.open(path)
        guard try file.stringAttribute("format") == shardFormat else {
            throw HDF5Error(file: path, what: "not a pcs-mpi shard (missing or unknown `format` attribute)")
        }
        guard let count = try file.numericAttribute("item_count", as: Int64.self)?.first, file.exists("/ids") else {
            throw HDF5Error(file: path, what: "shard is incomplete (no item count or id index); it was not finished")
        }
        ids = try file.readStrings("/ids")
        guard ids.count == Int(count) else {
            throw HDF5Error(file: path, what: "shard is corrupt: index holds \(ids.count) ids, header says \(count)")
        }
        // Every look-up goes through a dictionary of the ids: a repeated id is corruption, not a trap (found by fuzzing).
        var seen = Set<String>()
        if let repeated = ids.first(where: { !seen.insert($0).inserted }) {
            throw HDF5Error(file: path, what: "shard is corrupt: id '\(repeated)' is listed twice")
        }
    }

    /// A root attribute written by the shard's creator.
    public func attribute(_ name: String) throws -> String? { try file.stringAttribute(name) }

    public func contains(_ id: String) -> Bool { positions[id] != nil }

    /// The group path of an item, e.g. `/items/2007_000032`.
    public func group(for id: String) throws -> String {
        guard positions[id] != nil else { throw HDF5Error(file: url.path, what: "no item \(id)") }
        return "/items/\(id)"
    }
}

/// The top-level index of a shard set, `NAME-index.json`: the shards in order and the ids each holds, in dataset
/// order, plus attributes shared by the set (class names, the tool that wrote it).
public struct ShardIndex: Codable, Equatable {
    public struct Entry: Codable, Equatable {
        public var file: String
        public var ids: [String]
        public init(file: String, ids: [String]) {
            self.file = file
            self.ids = ids
        }
    }

    public var format: String
    public var name: String
    public var shards: [Entry]
    public var attributes: [String: String]

    public init(name: String, shards: [Entry], attributes: [String: String] = [:]) {
        self.format = shardFormat
        self.name = name
        self.shards = shards
        self.attributes = attributes
    }

    /// Every id in dataset order (shard by shard).
    public var ids: [String] { shards.flatMap(\.ids) }

    public static func url(directory: URL, name: String) -> URL {
        directory.appendingPathComponent("\(name)-index.json")
    }

    /// Writes the index atomically.
    public func write(directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.url(directory: directory, name: name))
    }

    /// Reads `NAME-index.json` from `directory`.
    public static func read(directory: URL, name: String) throws -> ShardIndex {
        let url = url(directory: directory, name: name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FileError(path: url.path, what: "no shard index (was the ingest finished?)")
        }
        let index: ShardIndex
        do {
            index = try JSONDecoder().decode(ShardIndex.self, from: data)
        } catch {
            throw FileError(path: url.path, what: "shard index is not valid JSON")
        }
        guard index.format == shardFormat else { throw FileError(path: url.path, what: "unknown index format \(index.format)") }
        return index
    }
}

/// A whole shard set opened for reading: ids in dataset order, random access by id, shards opened once and kept
/// (the least recently used is closed beyond `maxOpenShards`, so COCO-sized sets stay within file limits).
public final class ShardedDataset {
    public let directory: URL
    public let index: ShardIndex
    public let ids: [String]
    /// `index.fingerprint`, computed once (it hashes every id).
    public let fingerprint: String
    private let shardOfID: [String: Int]
    private var open: [Int: ShardReader] = [:]
    private var recentlyUsed: [Int] = []
    private let maxOpenShards: Int

    public init(directory: URL, name: String, maxOpenShards: Int = 64) throws {
        self.directory = directory
        self.maxOpenShards = max(1, maxOpenShards)
        index = try ShardIndex.read(directory: directory, name: name)
        ids = index.ids
        fingerprint = index.fingerprint
        var map: [String: Int] = [:]
        for (s, entry) in index.shards.enumerated() {
            for id in entry.ids { map[id] = s }
        }
        shardOfID = map
    }

    public var count: Int { ids.count }

    public func contains(_ id: String) -> Bool { shardOfID[id] != nil }

    /// The open reader of shard `s`, verified against the index.
    public func shard(_ s: Int) throws -> ShardReader {
        if let reader = open[s] {
            if recentlyUsed.last != s {
                recentlyUsed.removeAll { $0 == s }
                recentlyUsed.append(s)
            }
            return reader
        }
        let entry = index.shards[s]
        let reader = try ShardReader(url: directory.appendingPathComponent(entry.file))
        guard reader.ids == entry.ids else {
            let detail: String
            if reader.ids.count != entry.ids.count {
                detail = "it holds \(reader.ids.count) ids, the index lists \(entry.ids.count)"
            } else {
                let k = reader.ids.indices.first { reader.ids[$0] != entry.ids[$0] } ?? 0
                detail = "its id \(k + 1) is '\(reader.ids[k])', the index lists '\(entry.ids[k])'"
            }
            throw HDF5Error(file: reader.url.path, what: "shard does not match \(index.name)-index.json: \(detail) (re-ingest, or restore the shard)")
        }
        if open.count >= maxOpenShards, let oldest = recentlyUsed.first {
            open[oldest] = nil
            recentlyUsed.removeFirst()
        }
        open[s] = reader
        recentlyUsed.append(s)
        return reader
    }

    /// The shard reader and group path holding `id`.
    public func locate(_ id: String) throws -> (reader: ShardReader, group: String) {
        guard let s = shardOfID[id] else {
            throw FileError(path: ShardIndex.url(directory: directory, name: index.name).path, what: "no item \(id)")
        }
        let reader = try shard(s)
        return (reader, "/items/\(id)")
    }
}
