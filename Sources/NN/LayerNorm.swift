import CDNNL

/// oneDNN's flags for a normalisation with separate scale (γ) and shift (β) buffers, each of shape (C).
let normalizationScaleShift = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue

/// Layer normalisation over the last dimension, as PyTorch's `F.layer_norm(x, (C,), weight, bias, eps)`.
///
/// x is viewed as M rows of C features (M = product of the leading dimensions). For each row r:
///
///     μ_r = (1/C) Σ_c x_rc,   σ²_r = (1/C) Σ_c (x_rc − μ_r)²   (biased),
///     x̂_rc = (x_rc − μ_r) / √(σ²_r + ε),   y_rc = γ_c · x̂_rc + β_c.
///
/// Shapes: x (…, C) (a blocked input is converted to plain first), weight γ (C), bias β (C); y (…, C), plain.
///
/// Backward, on oneDNN's backward primitive with the μ and σ² saved by the forward pass (g = dy ⊙ γ):
///
///     dβ_c = Σ_r dy_rc,   dγ_c = Σ_r dy_rc · x̂_rc,
///     dx_rc = (g_rc − mean_c(g_r) − x̂_rc · mean_c(g_r ⊙ x̂_r)) / √(σ²_r + ε).
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    guard let c = x.shape.last else { preconditionFailure("layerNorm: input of shape \(x.shape) has no last dimension") }
    precondition(weight.shape == [c] && bias.shape == [c],
                 "layerNorm: weight \(weight.shape) and bias \(bias.shape) must both be [\(c)] for input \(x.shape)")
    precondition(weight.isPlain && bias.isPlain, "layerNorm: weight and bias must be plain")
    precondition(eps >= 0, "layerNorm: eps \(eps) is negative")
    let x = x.plain()
    let rows = x.elementCount / c
    let training = Autograd.needsGrad(x, weight, bias)
    // oneDNN sees x as a (rows, C) matrix, which a plain tensor of any rank already is.
    let shapes = "\(rows)x\(c)eps\(eps)"

    let forward = PrimitiveCache.primitive("layernorm.fwd\(training)\(shapes)") {
        var data = MemoryDesc.plain([rows, c])
        var desc = dnnl_layer_normalization_desc_t()
        dnnlCheck(dnnl_layer_normalization_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, &data, nil, eps, normalizationScaleShift),
                  "describe layer norm \(x.shape)")
        return makePrimitiveDesc(&desc, "layer norm \(x.shape)")
    }
    let y = Tensor(shape: x.shape)
    var args: [(Int32, UnsafeMutableRawPointer)] = [(DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DST, y.storage.data),
                                                    (DNNL_ARG_SCALE, weight.storage.data), (DNNL_ARG_SHIFT, bias.storage.data)]
    // Training writes the row statistics out; backward reads them back.
    let mean = Tensor(shape: [rows]), variance = Tensor(shape: [rows])
    if training { args += [(DNNL_ARG_MEAN, mean.storage.data), (DNNL_ARG_VARIANCE, variance.storage.data)] }
    forward.execute(args)

    guard training else { return y }
    Autograd.record(y) { dy in
        let backward = PrimitiveCache.primitive("layernorm.bwd\(shapes)") {
            var data = MemoryDesc.plain([rows, c]), diff = MemoryDesc.plain([rows, c])
            var desc = dnnl_layer_normalization_desc_t()
            dnnlCheck(dnnl_layer_normalization_backward_desc_init(
                &desc, dnnl_backward, &diff, &data, nil, eps, normalizationScaleShift), "describe layer norm backward \(x.shape)")
            return makePrimitiveDesc(&desc, "layer norm backward \(x.shape)", hint: forward.pd)
        }
        let dy = dy.plain()
        // The shift goes in although the backward pass does not read it: oneDNN 2.6.3 counts it among the inputs
        // and rejects an execution without it.
        let dx = Tensor(shape: x.shape), dW = Tensor(shape: [c]), dB = Tensor(shape: [c])
        backward.execute([(DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DIFF_DST, dy.storage.data),
                          (DNNL_ARG_MEAN, mean.storage.data), (DNNL_ARG_VARIANCE, variance.storage.data),
                          (DNNL_ARG_SCALE, weight.storage.data), (DNNL_ARG_SHIFT, bias.storage.data),
                          (DNNL_ARG_DIFF_SRC, dx.storage.data),
                          (DNNL_ARG_DIFF_SCALE, dW.storage.data), (DNNL_ARG_DIFF_SHIFT, dB.storage.data)])
        if x.requiresGrad { x.accumulateGrad(dx) }
        if weight.requiresGrad { weight.accumulateGrad(dW) }
        if bias.requiresGrad { bias.accumulateGrad(dB) }
    }
    return y
}

/// A layer normalisation layer with PyTorch's parameter names: `weight` (C, ones) and `bias` (C, zeros).
///
/// `eps` defaults to PyTorch's 1e-5 (Conformer-S's final `trans_norm`); its blocks and FCUDown use 1e-6 (spec §2.2).
public final class LayerNorm {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ features: Int, eps: Float = 1e-5) {
        weight = Initializers.constant([features], 1)
        bias = Initializers.constant([features], 0)
        self.eps = eps
    }

    /// Normalises x (…, C) over its last dimension; see `layerNorm`.
    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }

    /// Parameters under their state-dict names.
    public func namedParameters(_ prefix: String) -> [(String, Tensor)] {
        [("\(prefix)weight", weight), ("\(prefix)bias", bias)]
    }
}
