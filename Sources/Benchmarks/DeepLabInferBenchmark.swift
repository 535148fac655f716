import DeepLab
import Foundation
import Imaging
import NN
import Storage

/// `bench deeplab`, inference: what `infer-deeplab` does per image without the CRF (`DeepLabPredictor`: the
/// whole image Caffe-normalised, the MSC max, bilinear upsampling to the image size, softmax, argmax), timed in
/// this process at each thread count. Decoding and writing the label map are left out (PyTorch's side has neither).
///
/// In process rather than under `mpirun` per layout: the images are independent, so R ranks of T threads
/// predict R times what one T-thread rank does when the cores are free, and the peak memory read after it is
/// the prediction's own (this process has run nothing larger before it; training runs in child processes).
public struct DeepLabInferBenchmark {
    /// `--model`: deeplab (ResNet-101) or tiny-deeplab.
    public var network: String
    /// Timed predictions per thread count, after one untimed (which creates the primitives).
    public var repeats: Int

    public init(network: String, repeats: Int) {
        self.network = network
        self.repeats = repeats
    }

    public struct Row {
        public var threads: Int
        public var imagesPerSecond: Double
        /// Convolution and matrix-product FLOPs of one prediction.
        public var flopsPerImage: Double
    }

    /// Random weights with BatchNorm frozen, as a trained network predicts (the values change no work).
    public func makePredictor() -> DeepLabPredictor {
        guard let config = DeepLabConfig.named(network) else { preconditionFailure("unknown DeepLab model \(network)") }
        let net = DeepLabV2MSC(config, seed: 1)
        net.freezeBatchNorm()
        return DeepLabPredictor(network: net)
    }

    /// The first image of the benchmark's shards (a generated 500×375 scene), resized (Pillow bicubic) to
    /// width × height when that differs.
    public static func image(from shards: URL, width: Int, height: Int) throws -> PixelImage {
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let id = dataset.ids[0]
        let image = try ImageFile.decodeRGB(try dataset.record(id).image, name: "\(dataset.index.name)/\(id)")
        return image.width == width && image.height == height ? image : PILResize.resize(image, width: width, height: height)
    }

    /// Images/s of `image` at each of `threadCounts` (the process's thread count is restored afterwards).
    public func measure(_ predictor: DeepLabPredictor, image: PixelImage, threadCounts: [Int]) throws -> [Row] {
        let saved = ComputeThreads.current
        defer { ComputeThreads.configure(saved) }
        return try threadCounts.map { threads in
            ComputeThreads.configure(threads)
            _ = try predictor(image, threads: threads)
            let before = FlopCounter.count
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<repeats { _ = try predictor(image, threads: threads) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return Row(threads: threads, imagesPerSecond: Double(repeats) / seconds, flopsPerImage: (FlopCounter.count - before) / Double(repeats))
        }
    }
}
