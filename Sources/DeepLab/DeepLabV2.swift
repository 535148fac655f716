import NN

/// DeepLab-v2 (spec §10.1, deeplab-pytorch's `DeepLabV2`): the dilated Caffe ResNet-101 and the ASPP, output
/// stride 8 (321 → 41):
///
///     layer1 (stem, /4) → layer2 (stride 1) → layer3 (stride 2) → layer4 (dilation 2) → layer5 (dilation 4) → aspp
///
/// State-dict names `layer1.conv1.{conv,bn}.*`, `layer<L>.block<B>.{reduce,conv3x3,increase,shortcut}.*`,
/// `aspp.c0` … `aspp.c3` (under `base.` inside `DeepLabV2MSC`).
public final class DeepLabV2: Module {
    public let config: DeepLabConfig
    public let layer1: Stem
    public let layers: [ResLayer]
    public let aspp: ASPP

    public init(_ config: DeepLabConfig, rng: inout SeededRandom) {
        precondition(config.blocks.count == 4, "DeepLabV2: 4 layers of blocks expected, got \(config.blocks)")
        self.config = config
        let w = config.widths
        layer1 = Stem(config.stem, rng: &rng)
        layers = [ResLayer(blocks: config.blocks[0], config.stem, w[0], stride: 1, dilation: 1, rng: &rng),
                  ResLayer(blocks: config.blocks[1], w[0], w[1], stride: 2, dilation: 1, rng: &rng),
                  ResLayer(blocks: config.blocks[2], w[1], w[2], stride: 1, dilation: 2, rng: &rng),
                  ResLayer(blocks: config.blocks[3], w[2], w[3], stride: 1, dilation: 4, rng: &rng)]
        aspp = ASPP(w[3], classes: config.classes, rates: config.rates, rng: &rng)
    }

    public var children: [(name: String, module: Module)] {
        [("layer1", layer1)] + layers.enumerated().map { ("layer\($0.offset + 2)", $0.element as Module) } + [("aspp", aspp)]
    }

    /// Logits (B, classes, ⌈H/8⌉-ish, …) of Caffe-normalised images (B, 3, H, W).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        aspp(layers.reduce(layer1(x)) { $1($0) })
    }
}

/// The four training outputs of `DeepLabV2MSC`: the logits of the input at scale 1, at each smaller scale (at
/// their own sizes), and their pixel-wise max at the scale-1 size.
public struct MSCLogits {
    public var full: Tensor
    public var scaled: [Tensor]
    public var max: Tensor

    /// In deeplab-pytorch's order: scale 1, 0.5, 0.75, max.
    public var all: [Tensor] { [full] + scaled + [max] }
}

/// deeplab-pytorch's `MSC` wrapper around DeepLab-v2 (spec §10.1): the network runs on the input and on copies
/// resized by each factor of `config.scales` (bilinear, scale-factor semantics, §12 Q12); the smaller logits are
/// upsampled bilinearly to the scale-1 logit size and fused by an element-wise max. The model's state-dict
/// names are the network's under `base.`.
public final class DeepLabV2MSC: Module {
    public let base: DeepLabV2

    public init(_ config: DeepLabConfig, seed: UInt64 = 0) {
        var rng = SeededRandom(seed: seed)
        base = DeepLabV2(config, rng: &rng)
    }

    public var config: DeepLabConfig { base.config }
    public var children: [(name: String, module: Module)] { [("base", base)] }

    /// All four outputs (what training's loss reads).
    public func logits(_ x: Tensor) -> MSCLogits {
        let full = base(x)
        let size = (h: full.shape[2], w: full.shape[3])
        let scaled = config.scales.map { base(interpolate(x, scaleFactor: $0)) }
        let fused = maximum([full] + scaled.map { interpolate($0, size: size, mode: .bilinear) })
        return MSCLogits(full: full, scaled: scaled, max: fused)
    }

    /// The evaluation output: the max of the scales (B, classes, h, w) at the scale-1 logit size.
    public func callAsFunction(_ x: Tensor) -> Tensor { logits(x).max }

    /// The prefixes upstream trains at 10× (ASPP weights) and 20× (ASPP biases); every other convolution weight
    /// trains at 1×, BatchNorm not at all (spec §10.2).
    public static let asppPrefix = "base.aspp."

    /// Upstream's fine-tuning set-up: BatchNorm frozen (running statistics of the init weights, affine parameters
    /// fixed and out of every optimiser group).
    public func freezeBatchNorm() { setBatchNormMode(.frozen) }
}
