import Distributed
import Formats
import Foundation
import Imaging
import NN
import Storage

/// `infer-cam` over a whole shard set, split over the ranks, resumable (see the note "Resumable output parts").
///
/// Note: Resumable output parts. Each rank writes its CAMs into parts of `chunk` images,
/// `cams-a<attempt>-r<rank>-<seq>.h5`, each written under a temporary name and renamed when complete, so an
/// interrupted run (crash, Slurm time limit, Ctrl-C) leaves only complete parts. On start, rank 0 lists the
/// complete parts, checks they were made with the same settings on the same dataset, and the ids they hold are
/// skipped; the new attempt's parts get a new attempt number, so they never collide with older ones whatever the
/// rank count. When every rank is done, rank 0 writes `cams-index.json` over all parts: the set is then readable
/// with `ShardedDataset` (and `eval --type cam`).
///
/// The remaining ids are assigned to ranks by longest-processing-time-first on the pyramid's pixel count, so
/// ranks finish together although images differ in size.
public final class CAMInferenceJob {
    /// What the CAMs depend on; parts made with other settings are refused on resume. The exports are part of
    /// it, so a resume cannot silently leave the images done earlier without the PNGs or .npy files asked for now.
    public struct Settings: Codable, Equatable {
        public var method: String
        public var pyramid: CAMPyramid
        public var weights: String
        public var exports: [String] = []
        public init(method: CAMMethod, pyramid: CAMPyramid, weights: String) {
            self.method = method.rawValue
            self.pyramid = pyramid
            self.weights = weights
        }
    }

    public let dataset: ShardedDataset
    public let cam: MultiScaleCAM
    public let settings: Settings
    public let output: URL
    public var chunk = 32
    public var attentionFolder: URL?, heatmapFolder: URL?, npyFolder: URL?

    public init(dataset: ShardedDataset, cam: MultiScaleCAM, weights: String, output: URL) throws {
        try cam.model.checkClasses(of: dataset)
        self.dataset = dataset
        self.cam = cam
        self.output = output
        settings = Settings(method: cam.method, pyramid: cam.pyramid, weights: weights)
    }

    /// The export folders that are set, by kind.
    private var exportFolders: [(name: String, url: URL)] {
        [("attention", attentionFolder), ("heatmaps", heatmapFolder), ("npy", npyFolder)].compactMap { name, url in url.map { (name, $0) } }
    }

    private var settingsText: String {
        var current = settings
        current.exports = exportFolders.map(\.name)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(current)) ?? Data(), as: UTF8.self)
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
        for (_, folder) in exportFolders where fm.fileExists(atPath: folder.path) {
            for name in try fm.contentsOfDirectory(atPath: folder.path) where name.hasPrefix(".") && name.contains(".partial-") {
                try? fm.removeItem(at: folder.appendingPathComponent(name))
            }
        }
        for name in try fm.contentsOfDirectory(atPath: output.path).sorted() {
            if name.hasPrefix(".\(CAMSetAttributes.name)-a"), name.contains(".partial-") {
                try? fm.removeItem(at: output.appendingPathComponent(name))
                continue
            }
            guard name.hasPrefix("\(CAMSetAttributes.name)-a"), name.hasSuffix(".h5") else { continue }
            let reader = try ShardReader(url: output.appendingPathComponent(name))
            guard try reader.attribute(CAMSetAttributes.datasetFingerprint) == dataset.fingerprint,
                  try reader.attribute(CAMSetAttributes.settings) == settingsText else {
                throw FileError(path: reader.url.path, what: "holds CAMs made with other weights, settings, exports or dataset; choose another --out or remove \(output.path)")
            }
            parts.append(ShardIndex.Entry(file: name, ids: reader.ids))
            let digits = name.dropFirst("\(CAMSetAttributes.name)-a".count).prefix { $0.isNumber }
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

    /// Runs the job on every rank; returns the number of images this call computed on this rank.
    @discardableResult
    public func run(world: Communicator) throws -> Int {
        let existing: Existing = try world.broadcast(world.isRoot ? try scanExisting() : Existing(parts: [], attempt: 0))
        let done = Set(existing.parts.flatMap(\.ids))
        let remaining = dataset.ids.filter { !done.contains($0) }
        var costs: [Double] = []
        for id in remaining {
            let size = try dataset.locate(id).reader.imageSize(id)
            if let problem = cam.pyramid.problem(width: size.width, height: size.height) {
                throw FileError(path: dataset.directory.path, what: "image \(id): \(problem)")
            }
            costs.append(cam.pyramid.cost(width: size.width, height: size.height))
        }
        let mine = Self.assign(costs: costs, ranks: world.size)[world.rank].map { remaining[$0] }
        if world.isRoot, !done.isEmpty { Log.info("infer-cam: \(done.count) images already done, \(remaining.count) to go") }
        for (_, folder) in exportFolders {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }

        let attributes = [CAMSetAttributes.dataset: dataset.index.name,
                          CAMSetAttributes.datasetFingerprint: dataset.fingerprint,
                          CAMSetAttributes.settings: settingsText]
        let progress = ProgressReporter("infer-cam (rank 0's share)", total: mine.count, unit: "images", enabled: world.isRoot)
        var written: [ShardIndex.Entry] = []
        var writer: ShardWriter?
        var sequence = 0
        func finishPart() throws {
            guard let current = writer else { return }
            let ids = try current.finish()
            written.append(ShardIndex.Entry(file: current.url.lastPathComponent, ids: ids))
            writer = nil
        }
        do {
            for id in mine {
                let record = try dataset.record(id)
                let image = try ImageFile.decodeRGB(record.image, name: "\(dataset.index.name)/\(id)")
                let maps = cam(image, label: record.label)
                if writer == nil {
                    let name = String(format: "%@-a%03d-r%05d-%05d.h5", CAMSetAttributes.name, existing.attempt, world.rank, sequence)
                    writer = try ShardWriter(directory: output, fileName: name, name: CAMSetAttributes.name,
                                             shard: sequence, of: 0, attributes: attributes)
                    sequence += 1
                }
                try writer!.add(CAMRecord(id: id, maps: maps))
                try CAMExports.write(maps, id: id, image: image, attention: attentionFolder, heatmaps: heatmapFolder, npy: npyFolder)
                if writer!.ids.count >= chunk { try finishPart() }
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
            let index = ShardIndex(name: CAMSetAttributes.name, shards: parts,
                                   attributes: attributes.merging(["class_names": dataset.index.attributes["class_names"] ?? ""]) { a, _ in a })
            try index.write(directory: output)
        }
        world.barrier()
        return mine.count
    }
}
