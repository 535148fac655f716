import Distributed
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// SP feature extraction (spec §6.1): each image warped to side × side with PIL bicubic (aspect ratio discarded,
/// §12 Q9), normalised, unflipped, through the network in eval mode; the feature is the spatial mean of the final
/// CNN map (the input of `conv_cls_head`, 1,024-d for Conformer-S).
public struct FeatureExtraction {
    public let model: Conformer
    public var side: Int
    public var normalization = Normalization.imageNet

    public init(model: Conformer, side: Int = 512) {
        precondition(side > 0 && side % 16 == 0, "FeatureExtraction: side \(side) must be a positive multiple of 16")
        self.model = model
        self.side = side
    }

    /// The feature of one image. The model must be in inference mode.
    public func callAsFunction(_ image: PixelImage) -> [Float] {
        let warped = PILResize.resize(image, width: side, height: side, filter: .bicubic)
        let x = Tensor(normalization.applyCHW(warped), shape: [1, 3, side, side])
        return Autograd.noGrad { () -> [Float] in model(x).pooledFeature.toArray() }
    }

    /// Features of every image of `dataset`, rows in dataset order, computed round-robin over the ranks and summed
    /// with one allreduce (each row has exactly one non-zero contributor), so every rank holds the whole matrix.
    public func run(_ dataset: ShardedDataset, world: Communicator) throws -> ClassFeatures {
        let d = model.config.featureChannels
        var values = [Float](repeating: 0, count: dataset.count * d)
        let mine = Array(world.share(dataset.count))
        let progress = ProgressReporter("extract-features (rank 0's share)", total: mine.count, unit: "images", enabled: world.isRoot)
        for i in mine {
            let id = dataset.ids[i]
            let image = try ImageFile.decodeRGB(try dataset.record(id).image, name: "\(dataset.index.name)/\(id)")
            let feature = self(image)
            precondition(feature.count == d, "FeatureExtraction: a \(feature.count)-d feature, expected \(d)")
            values.replaceSubrange((i * d)..<((i + 1) * d), with: feature)
            progress.advance()
        }
        progress.finish()
        world.allreduce(&values)
        return ClassFeatures(ids: dataset.ids, dimension: d, values: values, dataset: dataset.index.name,
                             datasetFingerprint: dataset.fingerprint)
    }
}
