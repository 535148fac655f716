import Distributed
import Formats
import Foundation
import Imaging
import NN
import Storage

/// The AffinityNet stage (spec §8.4, §8.5): images with their la/ha label maps (`crf-labels`), the pair labels of
/// the radius-5 layout, and the three affinity losses as global-batch sums (bg/4 + fg/4 + neg/2, each Σ over the
/// whole batch / its count). The loop (`TrainLoop`, SGD with the groups below, poly schedule) does the rest.
public final class AffinityTrainingStage: TrainingStage {
    public let network: AffinityNet
    public let dataset: ShardedDataset
    /// The crf-labels set (maps `la` and `ha`) computed on `dataset`.
    public let labelSet: ShardedDataset
    public let crop: RandomCrop
    public let jitter: ColorJitter
    public let normalization = Normalization.imageNet
    public let pairs: AffinityPairs
    /// The new heads' learning-rate multiplier (upstream: 10×).
    public var headMultiplier: Float = 10
    /// Label of the crop's padding: 0 (background) as PCSformer's data code, or 255 (ignored) as PSA's (§12 Q4).
    public var padLabelsIgnore = false
    public var modelRandom = SeededRandom(seed: 0)

    /// One rank's batch: images (n, 3, S, S) CHW, and each image's combined label map at S/8 (0, classes, 255).
    public struct Batch {
        public var images: [Float]
        public var labels: [[UInt8]]
        public var count: Int
    }

    public init(network: AffinityNet, dataset: ShardedDataset, labelSet: ShardedDataset, cropSize: Int = 448,
                jitter: ColorJitter = ColorJitter(brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.1)) throws {
        guard cropSize % 8 == 0, cropSize >= 72 else {
            throw FileError(path: "--crop", what: "\(cropSize) must be a multiple of 8 of at least 72 (a 9 × 9 feature map)")
        }
        guard labelSet.labelMapNames.contains("la"), labelSet.labelMapNames.contains("ha") else {
            throw FileError(path: labelSet.directory.path, what: "not a crf-labels set (no la and ha maps)")
        }
        self.network = network
        self.dataset = dataset
        self.labelSet = labelSet
        crop = RandomCrop(size: cropSize)
        self.jitter = jitter
        pairs = AffinityPairs(height: cropSize / 8, width: cropSize / 8)
    }

    public var model: Module { network }
    public var datasetSize: Int { dataset.count }
    public var sharedBuffers: [Tensor] { network.batchNorms().flatMap { [$0.runningMean, $0.runningVar] } }

    /// Pretrained weights at the base rate, the new heads (f8_3, f8_4, f8_5, f9) at `headMultiplier`×; both
    /// with the run's weight decay (there are no biases).
    public func parameterGroups(_ trainable: [(name: String, tensor: Tensor)], learningRate: Float, weightDecay: Float) -> [ParameterGroup] {
        let isHead = { (name: String) in AffinityNet.headPrefixes.contains { name.hasPrefix($0) } }
        return [ParameterGroup(trainable.filter { !isHead($0.name) }.map(\.tensor), learningRate: learningRate, weightDecay: weightDecay, name: "pretrained"),
                ParameterGroup(trainable.filter { isHead($0.name) }.map(\.tensor), learningRate: headMultiplier * learningRate,
                               weightDecay: weightDecay, name: "heads")]
    }

    /// §8.4 step 3: the foreground of `la`, background where both maps say background, 255 elsewhere.
    public static func combined(la: UInt8, ha: UInt8) -> UInt8 {
        if la != 0 { return la }
        return ha == 0 ? 0 : 255
    }

    public func loadBatch(_ indices: [Int], random: inout SeededRandom) throws -> Batch {
        var batch = Batch(images: [], labels: [], count: indices.count)
        let s = crop.size
        for i in indices {
            let id = dataset.ids[i]
            let image = try ImageFile.decodeRGB(try dataset.record(id).image, name: "\(dataset.index.name)/\(id)")
            guard labelSet.contains(id) else { throw FileError(path: labelSet.directory.path, what: "no la/ha maps for image \(id)") }
            let la = try labelSet.labelMap(id, name: "la"), ha = try labelSet.labelMap(id, name: "ha")
            guard la.width == image.width, la.height == image.height, ha.width == image.width, ha.height == image.height else {
                throw FileError(path: labelSet.directory.path, what: "\(id): label maps are \(la.width)x\(la.height), the image \(image.width)x\(image.height)")
            }
            // Jitter, then one crop of image and labels together before normalisation: padding is black, label 0.
            let jittered = ColorJitter.apply(image, jitter.draw(&random))
            let placement = crop.draw(width: image.width, height: image.height, rng: &random)
            let flip = random.nextDouble() < 0.5
            // A sixth channel of ones marks the image inside the zero-padded container.
            var stack = [Float](repeating: 0, count: image.width * image.height * 6)
            for p in 0..<(image.width * image.height) {
                for c in 0..<3 { stack[p * 6 + c] = Float(jittered.pixels[p * 3 + c]) }
                stack[p * 6 + 3] = Float(la.pixels[p])
                stack[p * 6 + 4] = Float(ha.pixels[p])
                stack[p * 6 + 5] = 1
            }
            let cropped = crop.apply(stack, width: image.width, height: image.height, channels: 6, placement: placement)
            var chw = [Float](repeating: 0, count: 3 * s * s)
            var label = [UInt8](repeating: 0, count: (s / 8) * (s / 8))
            for y in 0..<s {
                for x in 0..<s {
                    let source = flip ? s - 1 - x : x
                    for c in 0..<3 {
                        chw[(c * s + y) * s + x] = normalization.value(UInt8(cropped[(c * s + y) * s + source]), channel: c)
                    }
                    if y % 8 == 0, x % 8 == 0 {
                        let la = UInt8(cropped[(3 * s + y) * s + source]), ha = UInt8(cropped[(4 * s + y) * s + source])
                        let padding = cropped[(5 * s + y) * s + source] == 0
                        label[(y / 8) * (s / 8) + x / 8] = padding && padLabelsIgnore ? 255 : Self.combined(la: la, ha: ha)
                    }
                }
            }
            batch.images += chw
            batch.labels.append(label)
        }
        return batch
    }

    public func loss(_ batch: Batch) -> StageLoss {
        let s = crop.size
        let features = network(Tensor(batch.images, shape: [batch.count, 3, s, s]), training: true, rng: &modelRandom)
        let affinity = pairAffinity(features, pairs: pairs)
        let terms = affinityLossSums(affinity, labels: AffinityLabels(labelMaps: batch.labels, pairs: pairs))
        return .sums([.init(sum: terms.bgSum, count: terms.bgCount, weight: 0.25),
                      .init(sum: terms.fgSum, count: terms.fgCount, weight: 0.25),
                      .init(sum: terms.negSum, count: terms.negCount, weight: 0.5)])
    }
}
