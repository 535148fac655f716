import CDNNL

/// Element-wise activations through oneDNN's eltwise primitives, in whatever layout the input has (a blocked
/// activation stays blocked).
///
/// - ReLU: y = max(x, 0); dx = dy · [x > 0].
/// - GELU, exact erf form (PyTorch's default `nn.GELU()`): y = x·Φ(x) = ½x(1 + erf(x/√2));
///   dx = dy · (Φ(x) + x·φ(x)).
/// - ELU (with its α): `elu(_:alpha:)`.
public enum Activation: String {
    case relu, gelu

    var algorithm: dnnl_alg_kind_t {
        switch self {
        // ReLU's backward reads its output (dx = dy·[y > 0]), so the input it came from can be freed
        // (PyTorch's in-place ReLU saves memory the same way); GELU's reads its input.
        case .relu: return dnnl_eltwise_relu_use_dst_for_bwd
        case .gelu: return dnnl_eltwise_gelu_erf
        }
    }
}

/// Applies an activation; see `Activation`.
public func activation(_ kind: Activation, _ x: Tensor) -> Tensor {
    eltwise("\(kind)", kind.algorithm, alpha: 0, savesOutput: kind == .relu, x)
}

/// ELU, as PyTorch's `F.elu(x, alpha)` (the AffinityNet head, spec §8.2), on oneDNN's eltwise primitive in x's
/// layout:
///
///     y = x                 (x > 0)
///     y = α·(eˣ − 1)        (x ≤ 0)
///
/// Backward: dx = dy for x > 0, dy·α·eˣ = dy·(y + α) for x ≤ 0 (so α·dy at x = 0, as PyTorch). For α ≥ 0 it is
/// computed from the output, so the input can be freed after forward; for α < 0 from the input.
public func elu(_ x: Tensor, alpha: Float = 1) -> Tensor {
    alpha >= 0 ? eltwise("elu\(alpha)", dnnl_eltwise_elu_use_dst_for_bwd, alpha: alpha, savesOutput: true, x)
               : eltwise("elu\(alpha)", dnnl_eltwise_elu, alpha: alpha, savesOutput: false, x)
}

/// One oneDNN eltwise op forward, recording its backward. `savesOutput`: backward reads y (a `_use_dst_for_bwd`
/// algorithm) rather than x.
private func eltwise(_ name: String, _ algorithm: dnnl_alg_kind_t, alpha: Float, savesOutput: Bool, _ x: Tensor) -> Tensor {
    let training = Autograd.needsGrad(x)
    let layout = x.layoutKey
    let forward = PrimitiveCache.primitive("eltwise.\(name)\(training)\(x.shape)\(layout)") {
        var md = x.desc
        var desc = dnnl_eltwise_desc_t()
        dnnlCheck(dnnl_eltwise_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                 algorithm, &md, alpha, 0), "describe \(name)")
        return makePrimitiveDesc(&desc, "\(name) \(x.shape)")
    }
    let y = Tensor(shape: x.shape, desc: x.desc)
    forward.execute([(DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DST, y.storage.data)])
    guard training else { return y }
    // What backward reads: the output or the input (see `Activation.algorithm`).
    let saved = savesOutput ? (DNNL_ARG_DST, y) : (DNNL_ARG_SRC, x)
    Autograd.record(y, label: name) { [x = x.slot] dy in
        let backward = PrimitiveCache.primitive("eltwise.\(name).bwd\(x.shape)\(layout)") {
            var md = x.desc
            var diff = x.desc
            var desc = dnnl_eltwise_desc_t()
            dnnlCheck(dnnl_eltwise_backward_desc_init(&desc, algorithm, &diff, &md, alpha, 0), "describe \(name) backward")
            return makePrimitiveDesc(&desc, "\(name) backward \(x.shape)", hint: forward.pd)
        }
        let dy = Reorder.ensure(dy, x.desc)
        let dx = Tensor(shape: x.shape, desc: x.desc)
        backward.execute([(saved.0, saved.1.storage.data), (DNNL_ARG_DIFF_DST, dy.storage.data), (DNNL_ARG_DIFF_SRC, dx.storage.data)])
        x.accumulateGrad(dx)
    }
    return y
}

public func relu(_ x: Tensor) -> Tensor { activation(.relu, x) }
public func gelu(_ x: Tensor) -> Tensor { activation(.gelu, x) }
