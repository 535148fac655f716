import NN

/// The widths of ResNet-38d (spec §8.1): the full network of the published weights, and `tiny`, the same code at
/// 1/16 of the channels for tests and the demo.
public struct ResNet38Config: Sendable {
    /// conv1a, then the outputs of b2, b3, b4 and b5 blocks, b6 and b7.
    public var stem: Int, b2: Int, b3: Int, b4: Int, b5Mid: Int, b5: Int, b6: Int, b7: Int
    /// AffinityNet's f8_3, f8_4, f8_5 widths (f9 is their sum).
    public var heads: (Int, Int, Int)

    public static let full = ResNet38Config(stem: 64, b2: 128, b3: 256, b4: 512, b5Mid: 512, b5: 1024, b6: 2048, b7: 4096,
                                            heads: (64, 128, 256))
    public static let tiny = ResNet38Config(stem: 8, b2: 8, b3: 16, b4: 32, b5Mid: 32, b5: 64, b6: 128, b7: 256, heads: (8, 8, 16))
}

/// What AffinityNet reads of the backbone (spec §8.1): the pre-activations of b5 (`conv4`) and b6 (`conv5`), and
/// `conv6 = ReLU(bn7(b7 output))`; output stride 8.
public struct ResNet38Features {
    public var conv4: Tensor, conv5: Tensor, conv6: Tensor
}

/// ResNet-38d (spec §8.1, PSA's `resnet38d.Net`) with upstream's state-dict names (`conv1a`, `b2` … `b7`, `bn7`):
/// pre-activation blocks, bias-free convolutions, strides 2 in b2, b3, b4, dilation 2 in b5 and 4 in b6, b7, channel
/// dropout 0.3 in b6 and 0.5 in b7.
public final class ResNet38: Module {
    public let config: ResNet38Config
    public let conv1a: Conv2d
    /// b2, b2_1, b2_2, b3, b3_1, b3_2, b4, b4_1 … b4_5, b5, b5_1, b5_2, under those names.
    public let blocks: [(name: String, block: ResNet38Block)]
    public let b6: ResNet38BottleneckBlock, b7: ResNet38BottleneckBlock
    public let bn7: BatchNorm2d

    public init(_ config: ResNet38Config = .full, rng: inout SeededRandom) {
        self.config = config
        let c = config
        conv1a = Conv2d(3, c.stem, kernel: 3, padding: 1, bias: false, rng: &rng)
        var blocks: [(name: String, block: ResNet38Block)] = []
        func stage(_ name: String, _ cin: Int, _ cout: Int, count: Int) {
            blocks.append((name, ResNet38Block(cin, cout, cout, stride: 2, rng: &rng)))
            for i in 1..<count { blocks.append(("\(name)_\(i)", ResNet38Block(cout, cout, cout, rng: &rng))) }
        }
        stage("b2", c.stem, c.b2, count: 3)
        stage("b3", c.b2, c.b3, count: 3)
        stage("b4", c.b3, c.b4, count: 6)
        blocks.append(("b5", ResNet38Block(c.b4, c.b5Mid, c.b5, firstDilation: 1, dilation: 2, rng: &rng)))
        for i in 1...2 { blocks.append(("b5_\(i)", ResNet38Block(c.b5, c.b5Mid, c.b5, firstDilation: 2, dilation: 2, rng: &rng))) }
        self.blocks = blocks
        b6 = ResNet38BottleneckBlock(c.b5, c.b6, dilation: 4, dropout: 0.3, rng: &rng)
        b7 = ResNet38BottleneckBlock(c.b6, c.b7, dilation: 4, dropout: 0.5, rng: &rng)
        bn7 = BatchNorm2d(c.b7)
    }

    public var children: [(name: String, module: Module)] {
        [("conv1a", conv1a)] + blocks.map { ($0.name, $0.block as Module) } + [("b6", b6), ("b7", b7), ("bn7", bn7)]
    }

    /// The side outputs for images (B, 3, H, W); `training` turns the channel dropout on (BatchNorm follows its
    /// own mode). The random stream draws the dropout masks.
    public func features(_ x: Tensor, training: Bool, rng: inout SeededRandom) -> ResNet38Features {
        var y = conv1a(x)
        var conv4: Tensor?
        for (name, block) in blocks {
            let (out, pre) = block(y)
            if name == "b5" { conv4 = pre }
            y = out
        }
        let (o6, conv5) = b6(y, training: training, rng: &rng)
        let (o7, _) = b7(o6, training: training, rng: &rng)
        return ResNet38Features(conv4: conv4!, conv5: conv5, conv6: bn7(o7, relu: true))
    }
}
