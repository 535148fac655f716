import Distributed
import Formats
import Foundation
import Imaging
import NN
import Storage

/// Where DeepLab's training labels come from: the pseudo labels of `cse` (a label set on the same shards), or
/// the dataset's own ground-truth masks (`--labels gt`, the fully supervised upper bound).
public enum DeepLabLabelSource {
    case labelSet(ShardedDataset, map: String)
    case groundTruth

    /// The label map of image `id` of `dataset` (width × height, row-major), every value a class below `classes` or
    /// 255; anything else is an error naming the file and the image.
    public func labels(_ id: String, dataset: ShardedDataset, width: Int, height: Int, classes: Int) throws -> [UInt8] {
        let labels: [UInt8], source: String
        switch self {
        case let .labelSet(set, map):
            source = ShardIndex.url(directory: set.directory, name: set.index.name).path
            guard set.contains(id) else { throw FileError(path: source, what: "no pseudo labels for image \(id)") }
            let m = try set.labelMap(id, name: map)
            guard m.width == width, m.height == height else {
                throw FileError(path: source, what: "\(id): labels are \(m.width)x\(m.height), the image \(width)x\(height)")
            }
            labels = m.pixels
        case .groundTruth:
            source = dataset.directory.path
            guard let bytes = try dataset.locate(id).reader.mask(id) else {
                throw FileError(path: source, what: "image \(id) has no ground-truth mask (--labels gt needs masks in the shards)")
            }
            let mask = try PNGCodec.decodeIndices(bytes, name: "\(dataset.index.name)/\(id) mask")
            guard mask.width == width, mask.height == height else {
                throw FileError(path: source, what: "\(id): mask is \(mask.width)x\(mask.height), the image \(width)x\(height)")
            }
            labels = mask.pixels
        }
        if let bad = labels.first(where: { $0 != 255 && Int($0) >= classes }) {
            throw FileError(path: source, what: "\(id): label \(bad) is not a class of the \(classes)-class model (nor 255)")
        }
        return labels
    }
}

/// The DeepLab-v2 stage (spec §10.2) on the shared loop: deeplab-pytorch's augmentation (`DeepLabAugmentation`),
/// the MSC network with BatchNorm frozen, and the loss
///
///     L = Σ_{o ∈ scale 1, 0.5, 0.75, max} CE_o,   CE_o = Σ_valid −log softmax(z_o)[label] / #valid
///
/// with the labels resized (Pillow nearest) to each logit's size and 255 ignored; each CE_o is a global-batch
/// mean (its sums and valid-pixel counts are totalled over the ranks). Parameter groups as upstream: backbone
/// convolution weights 1×, ASPP weights 10×, ASPP biases 20× without weight decay; BatchNorm in none.
public final class DeepLabTrainingStage: TrainingStage {
    public let network: DeepLabV2MSC
    public let dataset: ShardedDataset
    public let labelSource: DeepLabLabelSource
    public let augmentation: DeepLabAugmentation
    public var modelRandom = SeededRandom(seed: 0)

    /// One rank's batch: Caffe-normalised crops (n, 3, S, S) and their labels (n, S, S).
    public struct Batch {
        public var images: [Float]
        public var labels: [UInt8]
        public var count: Int
    }

    public init(network: DeepLabV2MSC, dataset: ShardedDataset, labels: DeepLabLabelSource,
                augmentation: DeepLabAugmentation = DeepLabAugmentation()) throws {
        guard augmentation.cropSize >= 16 else {
            throw FileError(path: "--crop", what: "\(augmentation.cropSize) is too small (at least 16)")
        }
        self.network = network
        self.dataset = dataset
        labelSource = labels
        self.augmentation = augmentation
    }

    public var model: Module { network }
    public var datasetSize: Int { dataset.count }
    public var sharedBuffers: [Tensor] { network.batchNorms().flatMap { [$0.runningMean, $0.runningVar] } }

    public func parameterGroups(_ trainable: [(name: String, tensor: Tensor)], learningRate: Float, weightDecay: Float) -> [ParameterGroup] {
        let aspp = trainable.filter { $0.name.hasPrefix(DeepLabV2MSC.asppPrefix) }
        let backbone = trainable.filter { !$0.name.hasPrefix(DeepLabV2MSC.asppPrefix) }
        return [ParameterGroup(backbone.map(\.tensor), learningRate: learningRate, weightDecay: weightDecay, name: "1x"),
                ParameterGroup(aspp.filter { $0.name.hasSuffix(".weight") }.map(\.tensor), learningRate: 10 * learningRate,
                               weightDecay: weightDecay, name: "10x"),
                ParameterGroup(aspp.filter { $0.name.hasSuffix(".bias") }.map(\.tensor), learningRate: 20 * learningRate,
                               weightDecay: 0, name: "20x")]
    }

    public func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> Batch {
        var batch = Batch(images: [], labels: [], count: indices.count)
        for i in indices {
            let id = dataset.ids[i]
            let image = try ImageFile.decodeRGB(try dataset.record(id).image, name: "\(dataset.index.name)/\(id)")
            let labels = try labelSource.labels(id, dataset: dataset, width: image.width, height: image.height,
                                                classes: network.config.classes)
            let draws = augmentation.draw(width: image.width, height: image.height, rng: &random)
            let crop = augmentation.apply(image, labels: labels, draws: draws)
            batch.images += crop.image
            batch.labels += crop.labels
        }
        return batch
    }

    public func loss(_ batch: Batch) -> StageLoss {
        let s = augmentation.cropSize
        let outputs = network.logits(Tensor(batch.images, shape: [batch.count, 3, s, s]))
        return .sums(Self.lossTerms(outputs, labels: batch.labels, height: s, width: s))
    }

    /// The four cross-entropy terms (sum over the valid pixels, and their count) of MSC outputs for labels
    /// (n, height, width): each output's labels are the input's resized to its size with Pillow nearest, as
    /// deeplab-pytorch's `resize_labels` (with (width, height) in the order Pillow reads, spec §12).
    public static func lossTerms(_ outputs: MSCLogits, labels: [UInt8], height: Int, width: Int) -> [StageLoss.Term] {
        let count = labels.count / (height * width)
        precondition(count * height * width == labels.count && count == outputs.full.shape[0],
                     "lossTerms: \(labels.count) labels for \(outputs.full.shape[0]) images of \(height)x\(width)")
        return outputs.all.map { logits in
            let (h, w) = (logits.shape[2], logits.shape[3])
            var resized: [Int32] = []
            resized.reserveCapacity(count * h * w)
            for b in 0..<count {
                let image = Array(labels[(b * height * width)..<((b + 1) * height * width)])
                resized += PILNearestResize.resize(image, width: width, height: height, toWidth: w, toHeight: h).map { Int32($0) }
            }
            let valid = resized.filter { $0 != 255 }.count
            return .init(sum: crossEntropyLoss(logits, labels: resized, ignoreIndex: 255, reduction: .sum), count: Double(valid))
        }
    }
}
