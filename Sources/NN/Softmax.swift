import CDNNL

/// Softmax along one axis, as PyTorch's `torch.softmax(x, dim: axis)`, on oneDNN's softmax primitive (the
/// "accurate" algorithm, which subtracts the maximum before exponentiating), in whatever layout x has.
///
/// For every line of x along `axis` (index j):
///
///     y_j = exp(x_j − max_k x_k) / Σ_k exp(x_k − max_k x_k).
///
/// Shapes: x (any rank ≤ 6, any layout), y same shape and layout. `axis` may be negative (−1 = the last axis).
///
/// Backward (from the saved output y): dx_j = y_j · (dy_j − Σ_k dy_k · y_k).
public func softmax(_ x: Tensor, axis: Int = -1) -> Tensor {
    let rank = x.shape.count
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "softmax: axis \(axis) is out of range for input \(x.shape)")
    let training = Autograd.needsGrad(x)
    let layout = x.layoutKey
    let shapes = "\(x.shape)axis\(a)\(layout)"

    let forward = PrimitiveCache.primitive("softmax.fwd\(training)\(shapes)") {
        var src = x.desc, dst = x.desc
        var desc = dnnl_softmax_v2_desc_t()
        dnnlCheck(dnnl_softmax_v2_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                    dnnl_softmax_accurate, &src, &dst, Int32(a)),
                  "describe softmax over axis \(a) of \(x.shape)")
        return makePrimitiveDesc(&desc, "softmax \(shapes)")
    }
    let y = Tensor(shape: x.shape, desc: x.desc)
    forward.execute([(DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DST, y.storage.data)])

    guard training else { return y }
    Autograd.record(y) { [x = x.slot] dy in
        let backward = PrimitiveCache.primitive("softmax.bwd\(shapes)") {
            var diffSrc = x.desc, diffDst = x.desc, dst = x.desc
            var desc = dnnl_softmax_v2_desc_t()
            dnnlCheck(dnnl_softmax_v2_backward_desc_init(&desc, dnnl_softmax_accurate, &diffSrc, &diffDst, &dst, Int32(a)),
                      "describe softmax backward over axis \(a) of \(x.shape)")
            return makePrimitiveDesc(&desc, "softmax backward \(shapes)", hint: forward.pd)
        }
        let dy = Reorder.ensure(dy, x.desc)
        let dx = Tensor(shape: x.shape, desc: x.desc)
        backward.execute([(DNNL_ARG_DST, y.storage.data), (DNNL_ARG_DIFF_DST, dy.storage.data),
                          (DNNL_ARG_DIFF_SRC, dx.storage.data)])
        x.accumulateGrad(dx)
    }
    return y
}
