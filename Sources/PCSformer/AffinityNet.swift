import Formats
import NN

/// AffinityNet (spec §8.2, PSA's `resnet38_aff.Net`): ResNet-38d and a 448-channel embedding of its side outputs,
///
///     f8_3 = ELU(Conv1×1(conv4)),  f8_4 = ELU(Conv1×1(conv5)),  f8_5 = ELU(Conv1×1(conv6)),
///     f    = ELU(f9(concat(f8_3, f8_4, f8_5)))                         (all bias-free)
///
/// whose affinities a_ij = exp(−mean_c |f_i − f_j|) (`pairAffinity`) drive the random walk. Heads initialised
/// Kaiming normal (fan-in, gain √2), f9 Xavier uniform with gain 4. State-dict names as
/// `KEYS_resnet38_aff.tsv` (`ResNet38Weights.affinityNet`), so upstream's `.pth` loads strictly.
public final class AffinityNet: Module {
    public let backbone: ResNet38
    public let f8_3: Conv2d, f8_4: Conv2d, f8_5: Conv2d, f9: Conv2d

    public init(_ config: ResNet38Config = .full, seed: UInt64 = 0) {
        var rng = SeededRandom(seed: seed)
        backbone = ResNet38(config, rng: &rng)
        let (h3, h4, h5) = config.heads
        f8_3 = Conv2d(config.b5Mid, h3, kernel: 1, bias: false, rng: &rng)
        f8_4 = Conv2d(config.b5, h4, kernel: 1, bias: false, rng: &rng)
        f8_5 = Conv2d(config.b7, h5, kernel: 1, bias: false, rng: &rng)
        f9 = Conv2d(h3 + h4 + h5, h3 + h4 + h5, kernel: 1, bias: false, rng: &rng)
        for head in [f8_3, f8_4, f8_5] { head.weight.assign(Initializers.kaimingNormalFanIn(head.weight.shape, gain: Float(2).squareRoot(), rng: &rng)) }
        f9.weight.assign(Initializers.xavierUniform(f9.weight.shape, gain: 4, rng: &rng))
    }

    /// The backbone's children at the top level, as upstream's class inherits them, then the heads.
    public var children: [(name: String, module: Module)] {
        backbone.children + [("f8_3", f8_3), ("f8_4", f8_4), ("f8_5", f8_5), ("f9", f9)]
    }

    /// The names of the new heads (upstream's 10× learning-rate group, spec §8.5).
    public static let headPrefixes = ["f8_3.", "f8_4.", "f8_5.", "f9."]
    /// What upstream never trains (spec §8.5): the stem and the first stage.
    public static let frozenPrefixes = ["conv1a.", "b2.", "b2_1.", "b2_2."]

    /// The 448-channel embedding (B, 448, H/8, W/8) of images (B, 3, H, W).
    public func callAsFunction(_ x: Tensor, training: Bool, rng: inout SeededRandom) -> Tensor {
        embedding(backbone.features(x, training: training, rng: &rng))
    }

    /// The embedding of side outputs already computed (`backbone.features`), for callers that also want those.
    public func embedding(_ d: ResNet38Features) -> Tensor {
        let heads = [elu(f8_3(d.conv4)), elu(f8_4(d.conv5)), elu(f8_5(d.conv6))]
        return elu(f9(concat(heads, axis: 1)))
    }

    /// Upstream's training set-up (spec §8.5): the stem and b2 frozen, every BatchNorm frozen (running statistics
    /// of the ImageNet weights, affine parameters fixed).
    public func freezeAsUpstream() {
        freeze(Self.frozenPrefixes)
        setBatchNormMode(.frozen)
    }
}
