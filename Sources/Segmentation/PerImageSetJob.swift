import Distributed
import Formats
import Foundation
import Storage

/// A per-image output set (CAMs, CRF label maps, pseudo labels) computed over the ranks and resumable: the
/// collective part of `infer-cam`, `crf-labels` and `cse`, apart from the per-image work they hand it.
///
/// Note: Resumable output parts. Each rank writes its items into parts of `chunk` images (or fewer, when a part
/// has been open for `partSeconds`),
/// `<name>-a<attempt>-r<rank>-<seq>.h5`, each written under a temporary name and renamed when complete, so an
/// interrupted run (crash, Slurm time limit, Ctrl-C) leaves only complete parts. On start, rank 0 lists the
/// complete parts, checks they were made with the same settings on the same dataset, and the ids they hold are
/// skipped; the new attempt's parts get a new attempt number, so they never collide with older ones whatever the
/// rank count. When every rank is done, rank 0 writes `<name>-index.json` over all parts: the set is then
/// readable with `ShardedDataset` (and `eval`).
///
/// The remaining ids are assigned to ranks by longest-processing-time-first on a per-image cost, so ranks finish
/// together although images differ in size.
public struct PerImageSetJob {
    /// The set's name (`cams`, `crf-labels`): file prefix and index name.
    public let name: String
    public let dataset: ShardedDataset
    public let output: URL
    /// What the items depend on (JSON text); parts made with other settings are refused on resume.
    public let settings: String
    /// Folders of per-image exports (PNG folders) whose stale temporary files are removed too.
    public var exportFolders: [URL] = []
    public var chunk = 32
    /// A part is also committed once it has been open this long, so an interruption loses at most this much work
    /// per rank however few and slow the images are.
    public var partSeconds: Double = 60
    /// Extra attributes of the index (e.g. the map names of a label set).
    public var attributes: [String: String] = [:]
    /// The command's name, for progress and log lines.
    public var command: String
    /// What the settings cover, for the error when a part was made otherwise (e.g. "other weights, settings,
    /// exports or dataset").
    public var settingsCover = "other settings or on another dataset"

    public init(name: String, dataset: ShardedDataset, output: URL, settings: String, command: String) {
        self.name = name
        self.dataset = dataset
        self.output = output
        self.settings = settings
        self.command = command
    }

    /// What a previous attempt left: the complete parts (file name → ids) and the next attempt number.
    struct Existing: Codable {
        var parts: [ShardIndex.Entry]
        var attempt: Int
    }

    /// Rank 0's scan of the output folder: complete parts are kept (after checking their settings), stale
    /// temporary files are removed.
    func scanExisting() throws -> Existing {
        let fm = FileManager.default
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        var parts: [ShardIndex.Entry] = []
        var attempt = 0
        // Temporary files of an interrupted attempt (here and in the export folders) are never complete.
        for folder in exportFolders where fm.fileExists(atPath: folder.path) {
            for file in try fm.contentsOfDirectory(atPath: folder.path) where file.hasPrefix(".") && file.contains(".partial-") {
                try? fm.removeItem(at: folder.appendingPathComponent(file))
            }
        }
        for file in try fm.contentsOfDirectory(atPath: output.path).sorted() {
            if file.hasPrefix(".\(name)-a"), file.contains(".partial-") {
                try? fm.removeItem(at: output.appendingPathComponent(file))
                continue
            }
            guard file.hasPrefix("\(name)-a"), file.hasSuffix(".h5") else { continue }
            let reader = try ShardReader(url: output.appendingPathComponent(file))
            guard try reader.attribute(CAMSetAttributes.datasetFingerprint) == dataset.fingerprint,
                  try reader.attribute(CAMSetAttributes.settings) == settings else {
                throw FileError(path: reader.url.path, what: "holds \(name) made with \(settingsCover); choose another --out or remove \(output.path)")
            }
            parts.append(ShardIndex.Entry(file: file, ids: reader.ids))
            let digits = file.dropFirst("\(name)-a".count).prefix { $0.isNumber }
            attempt = max(attempt, (Int(digits) ?? 0) + 1)
        }
        return Existing(parts: parts, attempt: attempt)
    }

    /// Longest-processing-time-first: each id (heaviest first) goes to the rank with the least work so far.
    /// Deterministic, so every rank computes the same assignment.
    public static func assign(costs: [Double], ranks: Int) -> [[Int]] {
        var load = [Double](repeating: 0, count: ranks)
        var shares = [[Int]](repeating: [], count: ranks)
        for i in costs.indices.sorted(by: { costs[$0] != costs[$1] ? costs[$0] > costs[$1] : $0 < $1 }) {
            let r = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            load[r] += costs[i]
            shares[r].append(i)
        }
        return shares.map { $0.sorted() }
    }

    /// Runs the job on every rank (collective): `cost` weighs an image for the assignment, `item` computes one
    /// image's work and adds it to the part being written. Returns the number of images this call computed on
    /// this rank.
    @discardableResult
    public func run(world: Communicator, cost: (String) throws -> Double, item: (String, ShardWriter) throws -> Void) throws -> Int {
        let existing: Existing = try world.broadcast(world.isRoot ? try scanExisting() : Existing(parts: [], attempt: 0))
        let done = Set(existing.parts.flatMap(\.ids))
        let remaining = dataset.ids.filter { !done.contains($0) }
        let costs = try remaining.map(cost)
        let mine = Self.assign(costs: costs, ranks: world.size)[world.rank].map { remaining[$0] }
        if world.isRoot, !done.isEmpty { Log.info("\(command): \(done.count) images already done, \(remaining.count) to go") }
        for folder in exportFolders {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }

        let partAttributes = [CAMSetAttributes.dataset: dataset.index.name,
                              CAMSetAttributes.datasetFingerprint: dataset.fingerprint,
                              CAMSetAttributes.settings: settings]
        let progress = ProgressReporter("\(command) (rank 0's share)", total: mine.count, unit: "images", enabled: world.isRoot)
        var written: [ShardIndex.Entry] = []
        var writer: ShardWriter?
        var partStart = Date()
        var sequence = 0
        func finishPart() throws {
            guard let current = writer else { return }
            let ids = try current.finish()
            written.append(ShardIndex.Entry(file: current.url.lastPathComponent, ids: ids))
            writer = nil
        }
        do {
            for id in mine {
                if writer == nil {
                    let file = String(format: "%@-a%03d-r%05d-%05d.h5", name, existing.attempt, world.rank, sequence)
                    writer = try ShardWriter(directory: output, fileName: file, name: name, shard: sequence, of: 0, attributes: partAttributes)
                    partStart = Date()
                    sequence += 1
                }
                try item(id, writer!)
                if writer!.ids.count >= chunk || Date().timeIntervalSince(partStart) >= partSeconds { try finishPart() }
                progress.advance()
            }
            try finishPart()
        } catch {
            writer?.abandon()
            throw error
        }
        progress.finish()

        let everyone = try world.allGather(written)
        if world.isRoot {
            let parts = (existing.parts + everyone.flatMap { $0 }).sorted { $0.file < $1.file }
            let index = ShardIndex(name: name, shards: parts,
                                   attributes: partAttributes.merging(attributes) { a, _ in a }
                                       .merging(["class_names": dataset.index.attributes["class_names"] ?? ""]) { a, _ in a })
            try index.write(directory: output)
        }
        world.barrier()
        return mine.count
    }
}

extension PerImageSetJob {
    /// The cost most per-image work has: the image's pixel count (read from the shard, no decoding).
    public static func pixelCount(in dataset: ShardedDataset) -> (String) throws -> Double {
        { id in
            let size = try dataset.locate(id).reader.imageSize(id)
            return Double(size.width * size.height)
        }
    }
}
