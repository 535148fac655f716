import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// `infer-cam` over a whole shard set, split over the ranks and resumable: `PerImageSetJob` (see its note
/// "Resumable output parts") with `MultiScaleCAM` as the per-image work, the ranks balanced on the pyramid's
/// pixel count.
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
    public var partSeconds: Double = 60
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

    /// See `PerImageSetJob.assign`.
    public static func assign(costs: [Double], ranks: Int) -> [[Int]] { PerImageSetJob.assign(costs: costs, ranks: ranks) }

    /// Runs the job on every rank; returns the number of images this call computed on this rank.
    @discardableResult
    public func run(world: Communicator) throws -> Int {
        var job = PerImageSetJob(name: CAMSetAttributes.name, dataset: dataset, output: output, settings: settingsText, command: "infer-cam")
        job.chunk = chunk
        job.partSeconds = partSeconds
        job.settingsCover = "other weights, settings, exports or dataset"
        job.exportFolders = exportFolders.map(\.url)
        return try job.run(world: world, cost: { id in
            let size = try dataset.locate(id).reader.imageSize(id)
            if let problem = cam.pyramid.problem(width: size.width, height: size.height) {
                throw FileError(path: dataset.directory.path, what: "image \(id): \(problem)")
            }
            return cam.pyramid.cost(width: size.width, height: size.height)
        }, item: { id, writer in
            let record = try dataset.record(id)
            let image = try ImageFile.decodeRGB(record.image, name: "\(dataset.index.name)/\(id)")
            let maps = cam(image, label: record.label)
            try writer.add(CAMRecord(id: id, maps: maps))
            try CAMExports.write(maps, id: id, image: image, attention: attentionFolder, heatmaps: heatmapFolder, npy: npyFolder)
        })
    }
}
