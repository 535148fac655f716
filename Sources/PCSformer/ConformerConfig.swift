/// The hyper-parameters of a Conformer (spec §2.1–2.4). `small` is Conformer-S as PCSformer uses it; `tiny` is the
/// same code at a size that tests and the synthetic demo run in seconds.
public struct ConformerConfig: Codable, Equatable, Sendable {
    /// Channels of the stem (and of `conv_1`'s input).
    public var baseChannel = 64
    /// Stage-1 CNN channels are `baseChannel · channelRatio`; stages 2 and 3 double them twice.
    public var channelRatio = 4
    public var embedDim = 384
    public var heads = 6
    public var mlpRatio = 4
    /// Outputs of the two classification heads, background included (21 for VOC, 81 for COCO).
    public var numClasses = 21
    /// Outputs of the SP stage's extra heads ((C − 1)·k, e.g. 200), 0 for the PC network.
    public var subClasses = 0
    /// Stochastic depth at the last block; block i gets rate · (i − 1)/11 (spec §2.2).
    public var dropPathRate: Float = 0.1

    public init(baseChannel: Int = 64, channelRatio: Int = 4, embedDim: Int = 384, heads: Int = 6, mlpRatio: Int = 4,
                numClasses: Int = 21, subClasses: Int = 0, dropPathRate: Float = 0.1) {
        self.baseChannel = baseChannel
        self.channelRatio = channelRatio
        self.embedDim = embedDim
        self.heads = heads
        self.mlpRatio = mlpRatio
        self.numClasses = numClasses
        self.subClasses = subClasses
        self.dropPathRate = dropPathRate
    }

    /// Conformer-S (PIPELINE.md §2.1): the network of the published checkpoints.
    public static let small = ConformerConfig()

    /// A small configuration of the same code: channels 16/32/64, embedding 32, 2 heads.
    public static let tiny = ConformerConfig(baseChannel: 16, channelRatio: 1, embedDim: 32, heads: 2)


    /// Layout of coupled block i (2…12), spec §2.4: CNN channels in and out, the stride of its first ConvBlock,
    /// whether that block projects its shortcut, and the FCU down/up-sampling factor dw.
    public func stage(_ i: Int) -> (cin: Int, cout: Int, stride: Int, projected: Bool, dw: Int) {
        let c1 = baseChannel * channelRatio
        switch i {
        case 2...4: return (c1, c1, 1, false, 4)
        case 5: return (c1, 2 * c1, 2, true, 2)
        case 6...8: return (2 * c1, 2 * c1, 1, false, 2)
        case 9: return (2 * c1, 4 * c1, 2, true, 1)
        case 10...12: return (4 * c1, 4 * c1, 1, false, 1)
        default: preconditionFailure("Conformer has coupled blocks 2...12, not \(i)")
        }
    }

    /// Channels of the final CNN feature (1,024 for Conformer-S).
    public var featureChannels: Int { 4 * baseChannel * channelRatio }

    /// Drop-path rate of transformer block i (1…12): linspace(0, rate, 12)[i − 1].
    public func dropPath(block i: Int) -> Float { dropPathRate * Float(i - 1) / 11 }
}
