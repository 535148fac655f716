import NN

/// deeplab-pytorch's `_ConvBnReLU` (spec §10.1): a bias-free convolution, BatchNorm (eps 1e-5), and a ReLU unless
/// it is the last layer of a residual branch. State-dict names `conv.weight`, `bn.{weight,bias,running_mean,…}`.
public final class ConvBnReLU: Module {
    public let conv: Conv2d
    public let bn: BatchNorm2d
    public let relu: Bool

    public init(_ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1, relu: Bool,
                rng: inout SeededRandom) {
        conv = Conv2d(cin, cout, kernel: kernel, stride: stride, padding: padding, dilation: dilation, bias: false, rng: &rng)
        // Caffe's momentum 0.001 in PyTorch's convention; irrelevant while frozen, kept for training from scratch.
        bn = BatchNorm2d(cout, eps: 1e-5, momentum: 1 - 0.999)
        self.relu = relu
    }

    public var children: [(name: String, module: Module)] { [("conv", conv), ("bn", bn)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        bn(conv(x), relu: relu)
    }
}

/// The MSRA (Caffe) bottleneck of deeplab-pytorch's `_Bottleneck` (spec §10.1):
///
///     out = ReLU(increase(conv3x3(reduce(x))) + shortcut(x))
///
/// `reduce` (1×1 to cout/4) carries the stride, as in Caffe (torchvision puts it on the 3×3); `conv3x3` has
/// dilation = padding = d; `increase` (1×1 to cout) has no ReLU; `shortcut` (1×1 + BN, with the stride) exists
/// in the first block of a layer only, the identity elsewhere.
public final class Bottleneck: Module {
    public let reduce: ConvBnReLU, conv3x3: ConvBnReLU, increase: ConvBnReLU
    public let shortcut: ConvBnReLU?

    public init(_ cin: Int, _ cout: Int, stride: Int, dilation: Int, downsample: Bool, rng: inout SeededRandom) {
        let mid = cout / 4
        reduce = ConvBnReLU(cin, mid, kernel: 1, stride: stride, relu: true, rng: &rng)
        conv3x3 = ConvBnReLU(mid, mid, kernel: 3, padding: dilation, dilation: dilation, relu: true, rng: &rng)
        increase = ConvBnReLU(mid, cout, kernel: 1, relu: false, rng: &rng)
        shortcut = downsample ? ConvBnReLU(cin, cout, kernel: 1, stride: stride, relu: false, rng: &rng) : nil
    }

    public var children: [(name: String, module: Module)] {
        var c: [(name: String, module: Module)] = [("reduce", reduce), ("conv3x3", conv3x3), ("increase", increase)]
        if let shortcut { c.append(("shortcut", shortcut)) }
        return c
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        relu(add(increase(conv3x3(reduce(x))), shortcut.map { $0(x) } ?? x))
    }
}

/// deeplab-pytorch's `_ResLayer`: blocks `block1` … `blockN`, the first with the stride and the projection
/// shortcut, all with the layer's dilation (no multi-grid in v2).
public final class ResLayer: Module {
    public let blocks: [Bottleneck]

    public init(blocks count: Int, _ cin: Int, _ cout: Int, stride: Int, dilation: Int, rng: inout SeededRandom) {
        precondition(count >= 1, "ResLayer: \(count) blocks")
        blocks = (0..<count).map { i in
            Bottleneck(i == 0 ? cin : cout, cout, stride: i == 0 ? stride : 1, dilation: dilation, downsample: i == 0, rng: &rng)
        }
    }

    public var children: [(name: String, module: Module)] { blocks.enumerated().map { ("block\($0.offset + 1)", $0.element) } }

    public func callAsFunction(_ x: Tensor) -> Tensor { blocks.reduce(x) { $1($0) } }
}

/// deeplab-pytorch's `_Stem` (`layer1`): `conv1` 7×7/2 pad 3 + BN + ReLU, then max pooling 3×3/2 pad 1 in
/// **ceil mode** (321 → 161 → 81).
public final class Stem: Module {
    public let conv1: ConvBnReLU

    public init(_ cout: Int, rng: inout SeededRandom) {
        conv1 = ConvBnReLU(3, cout, kernel: 7, stride: 2, padding: 3, relu: true, rng: &rng)
    }

    public var children: [(name: String, module: Module)] { [("conv1", conv1)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { maxPool2d(conv1(x), kernel: 3, stride: 2, padding: 1, ceilMode: true) }
}
