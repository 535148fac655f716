import NN

/// What one forward pass of the Conformer returns.
public struct ConformerOutput {
    /// Spatial mean of `conv_cls_head` over the final CNN feature, (B, C).
    public var convLogits: Tensor
    /// `trans_cls_head` on the normalised class token, (B, C).
    public var transLogits: Tensor
    /// The class activation maps, (B, C, h, w), when a CAM method was asked for (inference only).
    public var cam: Tensor?
    /// SP network only: the (C − 1)·k-way logits of both heads.
    public var subConvLogits: Tensor?
    public var subTransLogits: Tensor?
    /// The spatial mean of the final CNN feature (B, 1024): what feature extraction (spec §6.1) clusters.
    public var pooledFeature: Tensor
}

/// Conformer-S as PCSformer builds it (spec §2), under upstream's module tree and state-dict names.
///
/// Forward (§2.5): stem conv 7×7/2 → BN → ReLU → max-pool 3×3/2; CNN stage `conv_1`; tokens from `trans_patch_conv`
/// (4×4/4 on the stem output, so a 1/16 grid) with the class token prepended (no positional embedding); block
/// `trans_1`; coupled blocks `conv_trans_2…12`; heads. Input sides must be multiples of 16.
public final class Conformer: Module {
    public let config: ConformerConfig
    public let classToken: Tensor
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let stage1: ConvBlock
    public let patchConv: Conv2d
    public let trans1: TransformerBlock
    public let blocks: [ConvTransBlock]
    public let transNorm: LayerNorm
    public let transHead: Linear, convHead: Conv2d
    public let subTransHead: Linear?, subConvHead: Conv2d?
    /// Drop-path masks are drawn from this stream in training.
    public var rng: SeededRandom

    public init(_ config: ConformerConfig, seed: UInt64 = 0) {
        self.config = config
        var rng = SeededRandom(seed: seed)
        let (e, c1) = (config.embedDim, config.baseChannel * config.channelRatio)
        classToken = Initializers.truncatedNormal([1, 1, e], std: 0.02, rng: &rng)
        conv1 = Conv2d(3, config.baseChannel, kernel: 7, stride: 2, padding: 3, bias: false, rng: &rng)
        bn1 = BatchNorm2d(config.baseChannel, eps: 1e-5)
        stage1 = ConvBlock(config.baseChannel, c1, projected: true, rng: &rng)
        patchConv = Conv2d(config.baseChannel, e, kernel: 4, stride: 4, rng: &rng)
        trans1 = TransformerBlock(dim: e, heads: config.heads, mlpRatio: config.mlpRatio, dropPath: config.dropPath(block: 1), rng: &rng)
        blocks = (2...12).map { ConvTransBlock(index: $0, config: config, rng: &rng) }
        transNorm = LayerNorm(e, eps: 1e-5)
        transHead = Linear(e, config.numClasses, rng: &rng)
        convHead = Conv2d(config.featureChannels, config.numClasses, kernel: 3, padding: 1, rng: &rng)
        if config.subClasses > 0 {
            subTransHead = Linear(e, config.subClasses, rng: &rng)
            subConvHead = Conv2d(config.featureChannels, config.subClasses, kernel: 3, padding: 1, rng: &rng)
        } else {
            subTransHead = nil
            subConvHead = nil
        }
        self.rng = rng.derived(0xD409)
    }

    /// - Parameters:
    ///   - x: images (B, 3, H, W), H and W multiples of 16.
    ///   - training: drop path on (BatchNorm follows its own `mode`).
    ///   - cam: the CAM method to compute, or nil (training never needs it).
    public func callAsFunction(_ x: Tensor, training: Bool = false, cam method: CAMMethod? = nil) -> ConformerOutput {
        precondition(x.shape.count == 4 && x.shape[1] == 3 && x.shape[2] % 16 == 0 && x.shape[3] % 16 == 0,
                     "Conformer: input \(x.shape) must be (B, 3, H, W) with H and W multiples of 16")
        let b = x.shape[0]
        let (h, w) = (x.shape[2] / 16, x.shape[3] / 16)
        let attention = method != nil ? AttentionAccumulator() : nil
        let sink = attention.map { a in { (map: Tensor) in a.add(map) } }

        let base = maxPool2d(bn1(conv1(x), relu: true), kernel: 3, stride: 2, padding: 1)
        var feature = stage1(base).out
        let patches = patchConv(base).plain()
        var tokens = concat([expand(classToken, to: [b, 1, config.embedDim]),
                             permute(patches.reshaped([b, config.embedDim, h * w]), [0, 2, 1])], axis: 1)
        tokens = trans1(tokens, training: training, rng: &rng, attentionSink: sink)
        for block in blocks {
            (feature, tokens) = block(feature, tokens, training: training, rng: &rng, attentionSink: sink)
        }

        let convMap = convHead(feature)
        let classOut = slice(transNorm(tokens), axis: 1, range: 0..<1).reshaped([b, config.embedDim])
        var output = ConformerOutput(convLogits: globalAveragePool(convMap), transLogits: transHead(classOut),
                                     pooledFeature: globalAveragePool(feature))
        if let subConvHead, let subTransHead {
            output.subConvLogits = globalAveragePool(subConvHead(feature))
            output.subTransLogits = subTransHead(classOut)
        }
        if let method, let attention {
            output.cam = Autograd.noGrad { method.apply(cam: convMap, attention: attention.sum) }
        }
        return output
    }

    public var ownState: [StateEntry] { [.parameter("cls_token", classToken)] }

    public var children: [(name: String, module: Module)] {
        var c: [(name: String, module: Module)] = [("trans_norm", transNorm), ("trans_cls_head", transHead)]
        if let subTransHead { c.append(("trans_cls_head_200", subTransHead)) }
        c.append(("conv_cls_head", convHead))
        if let subConvHead { c.append(("conv_cls_head_200", subConvHead)) }
        c += [("conv1", conv1), ("bn1", bn1), ("conv_1", stage1), ("trans_patch_conv", patchConv), ("trans_1", trans1)]
        for (i, block) in blocks.enumerated() { c.append(("conv_trans_\(i + 2)", block)) }
        return c
    }
}
