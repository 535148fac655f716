import CDNNL

/// Multi-head self-attention as timm's / Conformer's `Attention` module (spec §2.2: 6 heads × 64, dim 384, qkv bias,
/// scale 64^−½), with PyTorch's parameter names: `qkv.weight` (3C, C), `qkv.bias` (3C), `proj.weight` (C, C),
/// `proj.bias` (C).
///
/// For x (B, N, C), h heads of d = C/h features:
///
///     qkv = x·W_qkvᵀ + b_qkv                      (B, N, 3C), seen as (B, N, 3, h, d) → q, k, v each (B, h, N, d)
///     A   = softmax(q·kᵀ · s) over the last axis   (B, h, N, N), s = d^−½
///     o   = A·v                                    (B, h, N, d) → (B, N, h, d) = (B, N, C)
///     y   = o·W_projᵀ + b_proj                     (B, N, C)
///
/// Attention and projection dropout are 0 upstream and omitted. The head-averaged map (1/h)·Σ_heads A (B, N, N)
/// can be handed to a caller-supplied `attentionSink` (the CAM sums it over the 12 layers, spec §2.5 step 6 and
/// §13 note 4) instead of every layer keeping its maps.
public final class MultiHeadAttention {
    public let heads: Int
    public let dim: Int
    /// The logit scale s (d^−½ unless overridden, like timm's `qk_scale`).
    public let scale: Float
    public let qkv: Linear
    public let proj: Linear

    /// Linear weights truncated-normal (σ = 0.02), biases zero (spec §2.6).
    public init(dim: Int, heads: Int, qkvBias: Bool = true, scale: Float? = nil, rng: inout SeededRandom) {
        precondition(heads > 0 && dim % heads == 0, "MultiHeadAttention: dim \(dim) is not divisible by \(heads) heads")
        self.heads = heads
        self.dim = dim
        // d^−½ evaluated in Double and rounded once, as Python computes `head_dim ** -0.5` before PyTorch casts it.
        self.scale = scale ?? Float(1 / Double(dim / heads).squareRoot())
        qkv = Linear(dim, 3 * dim, bias: qkvBias, rng: &rng)
        proj = Linear(dim, dim, rng: &rng)
    }

    /// y = proj(attention(qkv(x))) for x (B, N, C); the head-averaged attention (B, N, N) goes to `attentionSink`.
    public func forward(_ x: Tensor, attentionSink: ((Tensor) -> Void)? = nil) -> Tensor {
        precondition(x.shape.count == 3 && x.shape[2] == dim, "MultiHeadAttention: input \(x.shape) is not (B, N, \(dim))")
        let o = selfAttention(qkv(x), heads: heads, scale: scale, attentionSink: attentionSink)
        return proj(o)
    }

    public func callAsFunction(_ x: Tensor, attentionSink: ((Tensor) -> Void)? = nil) -> Tensor {
        forward(x, attentionSink: attentionSink)
    }

    /// Parameters under their state-dict names (`<prefix>qkv.weight`, …).
    public func namedParameters(_ prefix: String) -> [(String, Tensor)] {
        qkv.namedParameters("\(prefix)qkv.") + proj.namedParameters("\(prefix)proj.")
    }
}

/// The attention core between the two projections: qkv (B, N, 3C) (the output of the qkv Linear, laid out as
/// (B, N, 3, h, d)) → o (B, N, C), with A = softmax(s·q·kᵀ) and o = A·v per sample and head (see
/// `MultiHeadAttention`). The head-averaged A (B, N, N), a new plain tensor that takes no gradient, is passed to
/// `attentionSink` when one is given.
///
/// Saves the split q, k, v and A for backward. With G = dy split into heads (B, h, N, d):
///
///     dv = Aᵀ·G,   dA = G·vᵀ,   dZ = A ⊙ (dA − rowsum(dA ⊙ A)),   dq = s·dZ·k,   dk = s·dZᵀ·q,
///
/// and dqkv (B, N, 3C) interleaves dq, dk, dv back into the qkv layout.
public func selfAttention(_ qkv: Tensor, heads h: Int, scale s: Float, attentionSink: ((Tensor) -> Void)? = nil) -> Tensor {
    precondition(qkv.shape.count == 3 && qkv.shape[2] % (3 * h) == 0,
                 "selfAttention: qkv \(qkv.shape) is not (B, N, 3·C) with C divisible by \(h) heads")
    let qkv = qkv.plain()
    let (b, n, c) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
    let d = c / h
    let bh = b * h, headSize = bh * n * d
    // (B, N, 3, h, d) → (3, B, h, N, d): q, k, v become contiguous batches of (N, d) matrices.
    let split = Tensor(shape: [3, b, h, n, d])
    defer { withExtendedLifetime(split) {} } // q, k, v below are raw pointers into it
    Kernels.permute(qkv.storage.floats, [b, n, 3, h, d], order: [2, 0, 3, 1, 4], into: split.storage.floats)
    let (q, k, v) = (split.storage.data, split.storage.data + 4 * headSize, split.storage.data + 8 * headSize)

    // The scale is applied to the products inside oneDNN (an output scale): the same float arithmetic as scaling
    // q·kᵀ afterwards, without another pass over the (N, N) logits.
    let logits = Tensor(shape: [b, h, n, n])
    batchedMatmul(q, k, logits.storage.data, batch: bh, m: n, k: d, n: n, transposeB: true, outputScale: s)
    let attention = Autograd.noGrad { softmax(logits, axis: -1) }
    if let attentionSink {
        let mean = Tensor(shape: [b, n, n])
        Kernels.meanOverMiddleAxis(attention.storage.floats, batch: b, h: h, count: n * n, into: mean.storage.floats)
        attentionSink(mean)
    }
    let heads = Tensor(shape: [b, h, n, d])
    batchedMatmul(attention.storage.data, v, heads.storage.data, batch: bh, m: n, k: n, n: d)
    let y = Tensor(shape: [b, n, c])
    Kernels.permute(heads.storage.floats, [b, h, n, d], order: [0, 2, 1, 3], into: y.storage.floats)

    guard Autograd.needsGrad(qkv) else { return y }
    Autograd.record(y) { [qkv = qkv.slot] dy in
        // The closure must hold the tensors themselves, not raw pointers into them (their storage would be reused).
        let (q, k, v) = (split.storage.data, split.storage.data + 4 * headSize, split.storage.data + 8 * headSize)
        let dy = dy.plain()
        let g = Tensor(shape: [b, h, n, d])
        Kernels.permute(dy.storage.floats, [b, n, h, d], order: [0, 2, 1, 3], into: g.storage.floats)
        let dSplit = Tensor(shape: [3, b, h, n, d])
        let (dq, dk, dv) = (dSplit.storage.data, dSplit.storage.data + 4 * headSize, dSplit.storage.data + 8 * headSize)
        batchedMatmul(attention.storage.data, g.storage.data, dv, batch: bh, m: n, k: n, n: d, transposeA: true)
        let dA = Tensor(shape: [b, h, n, n])
        batchedMatmul(g.storage.data, v, dA.storage.data, batch: bh, m: n, k: d, n: n, transposeB: true)
        let dZ = Tensor(shape: [b, h, n, n])
        Kernels.softmaxBackwardRows(attention.storage.floats, dA.storage.floats, rows: bh * n, n: n, scale: s,
                                    into: dZ.storage.floats)
        batchedMatmul(dZ.storage.data, k, dq, batch: bh, m: n, k: n, n: d)
        batchedMatmul(dZ.storage.data, q, dk, batch: bh, m: n, k: n, n: d, transposeA: true)
        let dqkv = Tensor(shape: qkv.shape)
        Kernels.permute(dSplit.storage.floats, [3, b, h, n, d], order: [1, 3, 0, 2, 4], into: dqkv.storage.floats)
        qkv.accumulateGrad(dqkv)
    }
    return y
}

/// C[i] = A[i]·B[i] for `batch` consecutive (M, K)·(K, N) products of plain buffers, on oneDNN's matmul with a batch
/// dimension (the 3-d form of `matmul`). `transposeA`: each A[i] is stored as (K, M); `transposeB`: each B[i] as
/// (N, K). `outputScale` multiplies every product (C = s·A·B) inside the primitive. Primitives are cached per shape.
func batchedMatmul(_ a: UnsafeMutableRawPointer, _ b: UnsafeMutableRawPointer, _ c: UnsafeMutableRawPointer,
                   batch: Int, m: Int, k: Int, n: Int, transposeA: Bool = false, transposeB: Bool = false, outputScale: Float = 1) {
    let key = "bmatmul\(batch)x\(m)x\(k)x\(n)\(transposeA)\(transposeB)s\(outputScale)"
    let primitive = PrimitiveCache.primitive(key) {
        var aMD = transposeA ? MemoryDesc.strided([batch, m, k], strides: [m * k, 1, m]) : MemoryDesc.plain([batch, m, k])
        var bMD = transposeB ? MemoryDesc.strided([batch, k, n], strides: [k * n, 1, k]) : MemoryDesc.plain([batch, k, n])
        var cMD = MemoryDesc.plain([batch, m, n])
        var desc = dnnl_matmul_desc_t()
        dnnlCheck(dnnl_matmul_desc_init(&desc, &aMD, &bMD, nil, &cMD), "describe \(key)")
        return makePrimitiveDesc(&desc, key, outputScale: outputScale == 1 ? nil : outputScale)
    }
    primitive.execute([(DNNL_ARG_SRC, a), (DNNL_ARG_WEIGHTS, b), (DNNL_ARG_DST, c)])
    FlopCounter.add(2 * Double(batch) * Double(m) * Double(k) * Double(n))
}
