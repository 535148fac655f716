import NN

/// ResNet-38d's pre-activation block (spec §8.1, PSA's `ResBlock`), with upstream's state-dict names:
///
///     t   = ReLU(bn_branch2a(x))                                   (the shared pre-activation)
///     out = conv_branch2b1(ReLU(bn_branch2b1(conv_branch2a(t))))   (3×3, then 3×3)
///         + (conv_branch1(t) if the shape changes, else x)
///
/// `conv_branch2a` carries the stride and `firstDilation`, `conv_branch2b1` `dilation`; padding equals the
/// dilation. All convolutions are bias-free. No activation after the sum.
public final class ResNet38Block: Module {
    public let bn2a: BatchNorm2d, conv2a: Conv2d, bn2b1: BatchNorm2d, conv2b1: Conv2d
    public let conv1: Conv2d?

    public init(_ cin: Int, _ mid: Int, _ cout: Int, stride: Int = 1, firstDilation: Int = 1, dilation: Int = 1, rng: inout SeededRandom) {
        bn2a = BatchNorm2d(cin)
        conv2a = Conv2d(cin, mid, kernel: 3, stride: stride, padding: firstDilation, dilation: firstDilation, bias: false, rng: &rng)
        bn2b1 = BatchNorm2d(mid)
        conv2b1 = Conv2d(mid, cout, kernel: 3, padding: dilation, dilation: dilation, bias: false, rng: &rng)
        conv1 = cin != cout || stride != 1 ? Conv2d(cin, cout, kernel: 1, stride: stride, bias: false, rng: &rng) : nil
    }

    public var children: [(name: String, module: Module)] {
        var c: [(name: String, module: Module)] = [("bn_branch2a", bn2a), ("conv_branch2a", conv2a), ("bn_branch2b1", bn2b1),
                                                   ("conv_branch2b1", conv2b1)]
        if let conv1 { c.append(("conv_branch1", conv1)) }
        return c
    }

    /// The block's output and its pre-activation t (AffinityNet's side outputs are pre-activations).
    public func callAsFunction(_ x: Tensor) -> (out: Tensor, preActivation: Tensor) {
        let t = bn2a(x, relu: true)
        let branch2 = conv2b1(bn2b1(conv2a(t), relu: true))
        return (add(branch2, conv1.map { $0(t) } ?? x), t)
    }
}

/// ResNet-38d's bottleneck block with channel dropout (spec §8.1, PSA's `ResBlock_bot`, `b6` and `b7`):
///
///     t   = ReLU(bn_branch2a(x))
///     out = conv_branch2b2(Dropout2d(ReLU(bn_branch2b2(conv_branch2b1(Dropout2d(ReLU(bn_branch2b1(conv_branch2a(t)))))))))
///         + conv_branch1(t)
///
/// 1×1 to cout/4, 3×3 (dilation = padding = d) to cout/2, 1×1 to cout; bias-free; dropout p in training only.
public final class ResNet38BottleneckBlock: Module {
    public let bn2a: BatchNorm2d, conv2a: Conv2d, bn2b1: BatchNorm2d, conv2b1: Conv2d, bn2b2: BatchNorm2d, conv2b2: Conv2d
    public let conv1: Conv2d
    public let dropout: Float

    public init(_ cin: Int, _ cout: Int, dilation: Int, dropout: Float, rng: inout SeededRandom) {
        bn2a = BatchNorm2d(cin)
        conv2a = Conv2d(cin, cout / 4, kernel: 1, bias: false, rng: &rng)
        bn2b1 = BatchNorm2d(cout / 4)
        conv2b1 = Conv2d(cout / 4, cout / 2, kernel: 3, padding: dilation, dilation: dilation, bias: false, rng: &rng)
        bn2b2 = BatchNorm2d(cout / 2)
        conv2b2 = Conv2d(cout / 2, cout, kernel: 1, bias: false, rng: &rng)
        conv1 = Conv2d(cin, cout, kernel: 1, bias: false, rng: &rng)
        self.dropout = dropout
    }

    public var children: [(name: String, module: Module)] {
        [("bn_branch2a", bn2a), ("conv_branch2a", conv2a), ("bn_branch2b1", bn2b1), ("conv_branch2b1", conv2b1),
         ("bn_branch2b2", bn2b2), ("conv_branch2b2", conv2b2), ("conv_branch1", conv1)]
    }

    public func callAsFunction(_ x: Tensor, training: Bool, rng: inout SeededRandom) -> (out: Tensor, preActivation: Tensor) {
        let t = bn2a(x, relu: true)
        var y = dropout2d(bn2b1(conv2a(t), relu: true), p: dropout, training: training, rng: &rng)
        y = dropout2d(bn2b2(conv2b1(y), relu: true), p: dropout, training: training, rng: &rng)
        return (add(conv2b2(y), conv1(t)), t)
    }
}
