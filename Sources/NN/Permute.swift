/// The dimensions of x reordered, as PyTorch's `x.permute(order).contiguous()`: out.shape[i] = x.shape[order[i]].
///
/// Shapes: x any rank (blocked inputs are converted to plain first); out plain. E.g. patch tokens
/// (B, C, P) → (B, P, C) with order [0, 2, 1]. Backward: dx = permute(dy, order⁻¹).
public func permute(_ x: Tensor, _ order: [Int]) -> Tensor {
    precondition(order.sorted() == Array(0..<x.shape.count), "permute: order \(order) is not a permutation of \(x.shape.count) axes (input \(x.shape))")
    let x = x.plain()
    let outShape = order.map { x.shape[$0] }
    let inStrides = Kernels.strides(x.shape)
    let out = Tensor(shape: outShape)
    Kernels.copyStrided(x.storage.floats, strides: order.map { inStrides[$0] }, out.storage.floats,
                        strides: Kernels.strides(outShape), shape: outShape)
    guard Autograd.needsGrad(x) else { return out }
    var inverse = [Int](repeating: 0, count: order.count)
    for (i, o) in order.enumerated() { inverse[o] = i }
    Autograd.record(out) { [x = x.slot] dy in x.accumulateGrad(permute(dy, inverse)) }
    return out
}
