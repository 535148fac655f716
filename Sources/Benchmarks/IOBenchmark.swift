import Distributed
import Foundation
import Imaging
import NN
import Storage
import SyntheticData

/// `pcs-mpi bench io`: how fast images decode, how fast ingest runs at 1 and 2 ranks, and how fast shards are
/// read back compared with reading the same bytes raw from disk, all measured in one run on one dataset.
public struct IOBenchmark {
    public var images: Int
    public var width: Int
    public var height: Int
    public var directory: URL
    /// The `pcs-mpi` executable to launch under `mpirun` for the ingest measurements.
    public var executable: String

    public init(images: Int, width: Int, height: Int, directory: URL, executable: String) {
        self.images = images
        self.width = width
        self.height = height
        self.directory = directory
        self.executable = executable
    }

    public struct Row {
        public var what: String
        public var rate: Double
        public var unit: String
        public var note: String
    }

    public func run(world: Communicator) throws -> [Row] {
        var rows: [Row] = []
        let root = directory.appendingPathComponent("synth")
        let config = SyntheticConfig(width: width, height: height, classes: 5, seed: 11)
        let writer = SyntheticDatasetWriter(config: config, images: images, valFraction: 0)
        let synthStart = Date()
        try writer.write(to: root, world: world)
        rows.append(Row(what: "synth (render + encode + write)", rate: Double(images) / Date().timeIntervalSince(synthStart), unit: "images/s", note: "1 rank"))

        // Decode from memory, so only the codec is timed.
        let files = (0..<images).map { root.appendingPathComponent("JPEGImages/\(SyntheticDatasetWriter.id($0)).jpg").path }
        let encoded = try files.map { try ImageFile.readBytes($0) }
        let megabytes = Double(encoded.reduce(0) { $0 + $1.count }) / 1e6
        _ = try JPEGCodec.decodeRGB(encoded[0], name: files[0])
        let decodeStart = Date()
        for (bytes, name) in zip(encoded, files) { _ = try JPEGCodec.decodeRGB(bytes, name: name) }
        let decodeSeconds = Date().timeIntervalSince(decodeStart)
        rows.append(Row(what: "JPEG decode \(width)x\(height)", rate: Double(images) / decodeSeconds, unit: "images/s",
                        note: String(format: "%.1f MB/s of JPEG", megabytes / decodeSeconds)))

        // Ingest through the real command line under mpirun, as a user runs it.
        for ranks in [1, 2] {
            let out = directory.appendingPathComponent("shards-\(ranks)")
            let seconds = try timeIngest(root: root, out: out, ranks: ranks)
            rows.append(Row(what: "ingest voc, mpirun -n \(ranks)", rate: Double(images) / seconds, unit: "images/s",
                            note: String(format: "%.2f s wall, incl. MPI start", seconds)))
        }

        // Shard read: every record (image, mask, saliency, label) through ShardedDataset, against a raw read of
        // the shard files; both after one warm-up pass, so both come from the page cache.
        let shards = directory.appendingPathComponent("shards-1")
        let shardFiles = try FileManager.default.contentsOfDirectory(atPath: shards.path).filter { $0.hasSuffix(".h5") }
            .map { shards.appendingPathComponent($0).path }
        func readRaw() -> Int { shardFiles.reduce(0) { $0 + (FileManager.default.contents(atPath: $1)?.count ?? 0) } }
        func readShards() throws -> Int {
            let set = try ShardedDataset(directory: shards, name: "train")
            var bytes = 0
            for id in set.ids {
                let r = try set.record(id)
                bytes += r.image.count + (r.mask?.count ?? 0) + (r.saliency?.count ?? 0) + r.label.count * 4
            }
            return bytes
        }
        _ = readRaw()
        _ = try readShards()
        let rawStart = Date()
        let rawBytes = readRaw()
        let rawSeconds = Date().timeIntervalSince(rawStart)
        let shardStart = Date()
        let payload = try readShards()
        let shardSeconds = Date().timeIntervalSince(shardStart)
        let rawRate = Double(rawBytes) / rawSeconds / 1e6
        let shardRate = Double(payload) / shardSeconds / 1e6
        rows.append(Row(what: "raw read of the shard files", rate: rawRate, unit: "MB/s", note: "\(rawBytes / 1000) kB, page cache"))
        rows.append(Row(what: "shard read (records by id)", rate: shardRate, unit: "MB/s",
                        note: String(format: "%.0f images/s, %.0f%% of raw", Double(images) / shardSeconds, 100 * shardRate / rawRate)))
        return rows
    }

    private func timeIngest(root: URL, out: URL, ranks: Int) throws -> Double {
        let start = Date()
        try MPILauncher.run(executable, ranks: ranks, arguments: [
            "ingest", "voc", "--root", root.path, "--split", root.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
            "--out", out.path, "--shards", "8", "--threads", "1", "--log-level", "warning"])
        return Date().timeIntervalSince(start)
    }
}
