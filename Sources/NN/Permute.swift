/// The dimensions of x reordered, as PyTorch's `x.permute(order).contiguous()`: out.shape[i] = x.shape[order[i]].
///
/// Shapes: x any rank (blocked inputs are converted to plain first); out plain. E.g. patch tokens
/// (B, C, P) → (B, P, C) with order [0, 2, 1]. Backward: dx = permute(dy, order⁻¹).
public func permute(_ x: Tensor, _ order: [Int]) -> Tensor {
    precondition(order.sorted() == Array(0..<x.shape.count), "permute: order \(order) is not a permutation of \(x.shape.count) axes (input \(x.shape))")
    let x = x.plain()
    let out = Tensor(shape: order.map { x.shape[$0] })
    Kernels.permute(x.storage.floats, x.shape, order: order, into: out.storage.floats)
    guard Autograd.needsGrad(x) else { return out }
    var inverse = [Int](repeating: 0, count: order.count)
    for (i, o) in order.enumerated() { inverse[o] = i }
    Autograd.record(out) { [x = x.slot] dy in x.accumulateGrad(permute(dy, inverse)) }
    return out
}
