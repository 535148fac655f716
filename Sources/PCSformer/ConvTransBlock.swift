import NN

/// Coupled block `conv_trans_i` (i = 2…12, spec §2.5 step 4): one CNN bottleneck, the transformer block, and the
/// two feature-coupling units between them.
///
///     (x, x2) = cnn_block(x)
///     x_t     = trans_block(squeeze_block(x2, x_t[:, 0]) + x_t)   (the class token enters twice, as in Conformer)
///     x       = fusion_block(x, inject: expand_block(x_t))
public final class ConvTransBlock: Module {
    public let cnnBlock: ConvBlock
    public let fusionBlock: ConvBlock
    public let squeezeBlock: FeatureDown
    public let expandBlock: FeatureUp
    public let transBlock: TransformerBlock
    let dw: Int

    public init(index i: Int, config: ConformerConfig, rng: inout SeededRandom) {
        let s = config.stage(i)
        let m = s.cout / 4
        cnnBlock = ConvBlock(s.cin, s.cout, stride: s.stride, projected: s.projected, rng: &rng)
        fusionBlock = ConvBlock(s.cout, s.cout, projected: i == 12, rng: &rng)
        squeezeBlock = FeatureDown(channels: m, embedDim: config.embedDim, dw: s.dw, rng: &rng)
        expandBlock = FeatureUp(channels: m, embedDim: config.embedDim, dw: s.dw, rng: &rng)
        transBlock = TransformerBlock(dim: config.embedDim, heads: config.heads, mlpRatio: config.mlpRatio,
                                      dropPath: config.dropPath(block: i), rng: &rng)
        dw = s.dw
    }

    public func callAsFunction(_ x: Tensor, _ tokens: Tensor, training: Bool, rng: inout SeededRandom,
                               attentionSink: ((Tensor) -> Void)?) -> (x: Tensor, tokens: Tensor) {
        let (y, x2) = cnnBlock(x)
        let (h, w) = (x2.shape[2], x2.shape[3])
        let classToken = slice(tokens, axis: 1, range: 0..<1)
        let t = transBlock(add(squeezeBlock(x2, classToken: classToken), tokens), training: training, rng: &rng,
                           attentionSink: attentionSink)
        let injected = expandBlock(t, h: h / dw, w: w / dw)
        return (fusionBlock(y, inject: injected).out, t)
    }

    public var children: [(name: String, module: Module)] {
        [("cnn_block", cnnBlock), ("fusion_block", fusionBlock), ("squeeze_block", squeezeBlock), ("expand_block", expandBlock),
         ("trans_block", transBlock)]
    }
}
