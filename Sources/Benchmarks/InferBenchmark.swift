import Distributed
import Foundation
import Imaging
import NN
import PCSformer
import Segmentation
import Storage

/// `bench infer`: the 8-pass CAM inference of spec §4 on generated 500×375 images (or `width × height`), through `infer-cam` under
/// `mpirun -n R --threads T` for each layout. Images/s is end to end (decode, pyramid, 8 passes, combination, HDF5
/// output), the first image included; the FLOPs of one image are counted in this process.
public struct InferBenchmark {
    public var model: ModelVariant
    public var images: Int
    public var classesPerImage: Int
    public var width: Int, height: Int

    public init(model: ModelVariant, images: Int, classesPerImage: Int, width: Int = 500, height: Int = 375) {
        self.model = model
        self.images = images
        self.classesPerImage = classesPerImage
        self.width = width
        self.height = height
    }

    /// The dataset and the saved network every layout runs on, and the FLOPs of one image's 8 passes.
    public struct Setup {
        public var shards: URL
        public var weights: URL
        public var flopsPerImage: Double
    }

    public struct Row {
        public var ranks: Int, threads: Int
        public var imagesPerSecond: Double
        public var peakMiBPerRank: Double
    }

    public func prepare(in scratch: URL, world: Communicator) throws -> Setup {
        // Every image gets the same number of present classes, so the work per image is what classesPerImage says.
        let shards = try BenchDataset.make(in: scratch, images: images, seed: 7, shards: 2, world: world, width: width, height: height) { _ in
            (0..<20).map { $0 < classesPerImage ? 1 : 0 }
        }
        let conformer = Conformer(model.config(), seed: 1)
        conformer.setBatchNormMode(.inference)
        let weights = scratch.appendingPathComponent("model.h5")
        try conformer.stateDict().save(to: weights.path)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let record = try dataset.record(dataset.ids[0])
        let image = try ImageFile.decodeRGB(record.image, name: dataset.ids[0])
        let cam = MultiScaleCAM(model: conformer)
        _ = cam(image, label: record.label)
        let before = FlopCounter.count
        _ = cam(image, label: record.label)
        return Setup(shards: shards, weights: weights, flopsPerImage: FlopCounter.count - before)
    }

    /// Runs `infer-cam` with one layout and reads its statistics.
    public func measure(_ setup: Setup, ranks: Int, threads: Int, in scratch: URL) throws -> Row {
        let out = scratch.appendingPathComponent("cams-\(ranks)x\(threads)")
        try MPILauncher.run(MPILauncher.currentExecutable, ranks: ranks, arguments: [
            "infer-cam", "--data", setup.shards.path, "--out", out.path, "--model", model.rawValue, "--weights", setup.weights.path,
            "--threads", "\(threads)", "--conv-algorithm", ConvAlgorithm.preferred.rawValue, "--log-level", "warning"])
        let stats = try CAMInferenceStats.read(from: out)
        return Row(ranks: ranks, threads: threads, imagesPerSecond: Double(stats.images) / stats.seconds, peakMiBPerRank: stats.peakMiBPerRank)
    }
}
