import NN

/// A pre-norm transformer block (spec §2.2), with per-sample stochastic depth on both residual branches:
///
///     x ← x + DropPath(Attn(LN1(x)))
///     x ← x + DropPath(fc2(GELU(fc1(LN2(x)))))
///
/// Shapes: x (B, N, C). LayerNorms have eps 1e-6; the MLP widens by `mlpRatio`; GELU is the exact erf form.
/// The attention's head-averaged map goes to `attentionSink` (the CAM's accumulator) when one is given.
public final class TransformerBlock: Module {
    public let norm1: LayerNorm, attn: MultiHeadAttention
    public let norm2: LayerNorm, fc1: Linear, fc2: Linear
    public let dropPathRate: Float

    public init(dim: Int, heads: Int, mlpRatio: Int, dropPath: Float, rng: inout SeededRandom) {
        norm1 = LayerNorm(dim, eps: 1e-6)
        attn = MultiHeadAttention(dim: dim, heads: heads, rng: &rng)
        norm2 = LayerNorm(dim, eps: 1e-6)
        fc1 = Linear(dim, dim * mlpRatio, rng: &rng)
        fc2 = Linear(dim * mlpRatio, dim, rng: &rng)
        dropPathRate = dropPath
    }

    /// - Parameters:
    ///   - training: draw drop-path masks from `rng` (independently for the two branches).
    public func callAsFunction(_ x: Tensor, training: Bool, rng: inout SeededRandom, attentionSink: ((Tensor) -> Void)?) -> Tensor {
        let h = add(x, dropPath(attn(norm1(x), attentionSink: attentionSink), p: dropPathRate, training: training, rng: &rng))
        return add(h, dropPath(fc2(gelu(fc1(norm2(h)))), p: dropPathRate, training: training, rng: &rng))
    }

    public var children: [(name: String, module: Module)] {
        [("norm1", norm1), ("attn", attn), ("norm2", norm2), ("mlp.fc1", fc1), ("mlp.fc2", fc2)]
    }
}
