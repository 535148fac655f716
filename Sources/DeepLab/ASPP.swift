import NN

/// DeepLab-v2's atrous spatial pyramid pooling, "ASPP-L" (spec §10.1, deeplab-pytorch's `_ASPP`):
///
///     y = Σ_i c_i(x),   c_i = Conv3×3(cin → classes, dilation = padding = rate_i, bias)
///
/// with rates 6, 12, 18, 24; weights N(0, 0.01), biases 0. State-dict names `c0` … `c3`.
public final class ASPP: Module {
    public let branches: [Conv2d]

    public init(_ cin: Int, classes: Int, rates: [Int], rng: inout SeededRandom) {
        branches = rates.map { rate in
            let conv = Conv2d(cin, classes, kernel: 3, padding: rate, dilation: rate, bias: true, rng: &rng)
            conv.weight.assign(Initializers.normal(conv.weight.shape, std: 0.01, rng: &rng))
            conv.bias!.assign(Initializers.constant([classes], 0))
            return conv
        }
    }

    public var children: [(name: String, module: Module)] { branches.enumerated().map { ("c\($0.offset)", $0.element) } }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        branches.dropFirst().reduce(branches[0](x)) { add($0, $1(x)) }
    }
}
