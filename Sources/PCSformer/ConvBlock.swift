import NN

/// Conformer's bottleneck block (spec §2.3), `ConvBlock(cin, cout, stride, projected)` with m = cout / 4:
///
///     a  = ReLU(BN1(Conv1×1(x)))                (B, m, H, W)
///     x2 = ReLU(BN2(Conv3×3/s(a + t)))          (B, m, H/s, W/s)   t: the injected transformer feature, or 0
///     c  = BN3(Conv1×1(x2))                     (B, cout, H/s, W/s)
///     y  = ReLU(c + shortcut),  shortcut = BN_res(Conv1×1/s(x)) when projected, else x
///
/// Returns (y, x2). Every convolution is bias-free, every BN has eps 1e-6. Activations stay in oneDNN's blocked
/// layout through the whole block.
public final class ConvBlock: Module {
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let conv2: Conv2d, bn2: BatchNorm2d
    public let conv3: Conv2d, bn3: BatchNorm2d
    public let residualConv: Conv2d?, residualBN: BatchNorm2d?

    public init(_ cin: Int, _ cout: Int, stride: Int = 1, projected: Bool, rng: inout SeededRandom) {
        let m = cout / 4
        conv1 = Conv2d(cin, m, kernel: 1, bias: false, rng: &rng)
        bn1 = BatchNorm2d(m, eps: 1e-6)
        conv2 = Conv2d(m, m, kernel: 3, stride: stride, padding: 1, bias: false, rng: &rng)
        bn2 = BatchNorm2d(m, eps: 1e-6)
        conv3 = Conv2d(m, cout, kernel: 1, bias: false, rng: &rng)
        bn3 = BatchNorm2d(cout, eps: 1e-6)
        if projected {
            residualConv = Conv2d(cin, cout, kernel: 1, stride: stride, bias: false, rng: &rng)
            residualBN = BatchNorm2d(cout, eps: 1e-6)
        } else {
            residualConv = nil
            residualBN = nil
        }
    }

    /// (y, x2) for input x and an optional injection t (same shape as the first activation a).
    public func callAsFunction(_ x: Tensor, inject t: Tensor? = nil) -> (out: Tensor, medium: Tensor) {
        var a = bn1(conv1(x), relu: true)
        if let t { a = add(a, t) }
        let x2 = bn2(conv2(a), relu: true)
        let c = bn3(conv3(x2))
        let shortcut = residualConv.map { residualBN!($0(x)) } ?? x
        return (relu(add(c, shortcut)), x2)
    }

    public var children: [(name: String, module: Module)] {
        var c: [(name: String, module: Module)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3)]
        if let residualConv, let residualBN { c += [("residual_conv", residualConv), ("residual_bn", residualBN)] }
        return c
    }
}
