import Distributed
import Formats
import Foundation
import NN
import Storage

/// One image that could not be ingested, and why.
public struct RejectedImage: Codable, Equatable, Sendable {
    public var id: String
    public var file: String
    public var reason: String
}

/// An image that failed to ingest without `--skip-bad`: the message names the id and the file.
public struct IngestError: Error, CustomStringConvertible, LocalizedError {
    public let rejected: RejectedImage
    public var description: String { "image \(oneLine(rejected.id)) (\(rejected.file)): \(oneLine(rejected.reason))" }
    public var errorDescription: String? { description }
}

/// What an ingest produced, as rank 0 reports it.
public struct IngestSummary: Codable, Sendable {
    public var name: String
    public var images: Int
    public var rejected: [RejectedImage]
    public var shards: Int
    public var seconds: Double
}

/// Writes a dataset into HDF5 shards, split over the ranks of a world.
///
/// The split does not depend on the rank count, so 1 rank and N ranks write identical shards: item `i` of `n` goes
/// to shard `s` with `s·n/K ≤ i < (s+1)·n/K` (contiguous, so each shard keeps dataset order), and shard `s` is
/// written by rank `s mod N`. Rank 0 then gathers what every rank wrote and writes `NAME-index.json` (and
/// `rejected.txt` when images were skipped).
public struct DatasetIngest {
    public var name: String
    public var directory: URL
    public var shardCount: Int
    public var classNames: [String]
    /// Recorded in every shard and in the index (e.g. the source and the command that made it).
    public var attributes: [String: String]
    /// Skip images that fail (listing them in `rejected.txt`) instead of stopping.
    public var skipBad: Bool

    public init(name: String, directory: URL, shardCount: Int, classNames: [String], attributes: [String: String] = [:], skipBad: Bool = false) {
        self.name = name
        self.directory = directory
        self.shardCount = shardCount
        self.classNames = classNames
        self.attributes = attributes
        self.skipBad = skipBad
    }

    /// The items of shard `s` when `count` items are split into `shardCount` shards.
    public func items(ofShard s: Int, count: Int) -> Range<Int> {
        (s * count / shardCount)..<((s + 1) * count / shardCount)
    }

    /// Ingests `count` items. `makeRecord(i)` loads and validates item `i`, throwing `IngestError` for a bad image;
    /// it runs only on the rank that writes the item's shard.
    public func run(count: Int, world: Communicator, makeRecord: (Int) throws -> DatasetRecord) throws -> IngestSummary {
        precondition(shardCount >= 1, "shard count must be at least 1")
        let start = Date()
        if world.isRoot, shardCount < world.size {
            Log.warning("\(shardCount) shards for \(world.size) ranks: \(world.size - shardCount) rank(s) will idle; use --shards \(world.size) or more")
        }
        if world.isRoot {
            // Shards an interrupted ingest left half-written were never complete: remove them before writing anew.
            let stale = AtomicFile.removeStaleTemporaries(in: directory) { $0.hasPrefix("\(name)-") }
            if stale > 0 { Log.info("ingest: removed \(stale) unfinished shard file(s) of an interrupted run in \(directory.path)") }
        }
        world.barrier()
        var allAttributes = attributes
        allAttributes["class_names"] = classNames.joined(separator: ",")
        let myShards = Array(world.share(shardCount))
        let myItemCount = myShards.reduce(0) { $0 + items(ofShard: $1, count: count).count }
        let progress = ProgressReporter("ingest \(name)", total: myItemCount, unit: "images", enabled: world.isRoot)
        var written: [ShardOf] = []
        var rejected: [RejectedImage] = []
        for s in myShards {
            let writer = try ShardWriter(directory: directory, name: name, shard: s, of: shardCount, attributes: allAttributes)
            for i in items(ofShard: s, count: count) {
                do {
                    let record = try makeRecord(i)
                    guard record.label.count == classNames.count else {
                        throw IngestError(rejected: RejectedImage(id: record.id, file: "", reason: "label has \(record.label.count) entries, expected \(classNames.count)"))
                    }
                    try writer.add(record)
                } catch let error as IngestError where skipBad {
                    rejected.append(error.rejected)
                    Log.debug("skipped \(error)")
                }
                progress.advance()
            }
            written.append(ShardOf(shard: s, entry: ShardIndex.Entry(file: writer.url.lastPathComponent, ids: try writer.finish())))
        }
        progress.finish()

        let perRank = try world.gather(RankResult(shards: written, rejected: rejected))
        var summary = IngestSummary(name: name, images: 0, rejected: [], shards: shardCount, seconds: 0)
        if let perRank {
            let entries = perRank.flatMap(\.shards).sorted { $0.shard < $1.shard }.map(\.entry)
            summary.rejected = perRank.flatMap(\.rejected).sorted { $0.id < $1.id }
            summary.images = entries.reduce(0) { $0 + $1.ids.count }
            try ShardIndex(name: name, shards: entries, attributes: allAttributes).write(directory: directory)
            let rejectedURL = directory.appendingPathComponent("rejected.txt")
            if summary.rejected.isEmpty {
                try? FileManager.default.removeItem(at: rejectedURL)
            } else {
                let lines = summary.rejected.map { "\($0.id)\t\($0.file)\t\($0.reason)" }.joined(separator: "\n") + "\n"
                try AtomicFile.write(Data(lines.utf8), to: rejectedURL)
            }
        }
        summary.seconds = Date().timeIntervalSince(start)
        world.barrier()
        return summary
    }
}

private struct ShardOf: Codable {
    var shard: Int
    var entry: ShardIndex.Entry
}

private struct RankResult: Codable {
    var shards: [ShardOf]
    var rejected: [RejectedImage]
}
