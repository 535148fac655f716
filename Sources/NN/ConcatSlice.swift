/// Concatenation along one axis, as PyTorch's `torch.cat(xs, dim=axis)`.
///
/// Shapes: every xᵢ has the same shape except along `axis` (which may be negative, −1 = last); out has the sum of
/// their sizes along `axis`. Inputs in a blocked layout are converted to plain; out is plain. E.g. the class token
/// (B, 1, C) and the patch tokens (B, P, C) → (B, 1 + P, C).
///
/// Backward: dxᵢ = dy[…, offsetᵢ ..< offsetᵢ + sizeᵢ, …], the slice of the upstream gradient xᵢ came from.
public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
    guard let first = xs.first else { preconditionFailure("concat: no tensors to concatenate") }
    let rank = first.shape.count
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "concat: axis \(axis) is out of range for \(first.shape)")
    for x in xs {
        precondition(x.shape.count == rank && x.shape.indices.allSatisfy { $0 == a || x.shape[$0] == first.shape[$0] },
                     "concat along axis \(a): shapes \(xs.map(\.shape)) differ off that axis")
    }
    let plains = xs.map { $0.plain() }
    let sizes = plains.map { $0.shape[a] }
    var yShape = first.shape
    yShape[a] = sizes.reduce(0, +)
    let y = Tensor(shape: yShape)
    let yStrides = Kernels.strides(yShape)
    var offset = 0
    for x in plains {
        Kernels.copyStrided(x.storage.floats, strides: Kernels.strides(x.shape), y.storage.floats + offset * yStrides[a],
                            strides: yStrides, shape: x.shape)
        offset += x.shape[a]
    }
    guard Autograd.needsGrad(plains) else { return y }
    Autograd.record(y) { [inputs = plains.map(\.slot)] dy in
        let dy = dy.plain()
        var offset = 0
        for x in inputs {
            if x.requiresGrad { x.accumulateGrad(sliceCopy(dy, axis: a, range: offset ..< offset + x.shape[a])) }
            offset += x.shape[a]
        }
    }
    return y
}

/// The elements at `range` along `axis`, as PyTorch's `x.narrow(axis, range.lowerBound, range.count)` (a copy).
///
/// Shapes: x (…, n, …) in any layout (converted to plain first), `range` ⊆ 0..<n, out (…, range.count, …) plain.
/// `axis` may be negative. E.g. splitting the class token `slice(t, axis: 1, range: 0..<1)` off the tokens.
///
/// Backward: dx is zero except dx[…, range, …] = dy.
public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
    let rank = x.shape.count
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "slice: axis \(axis) is out of range for \(x.shape)")
    precondition(range.lowerBound >= 0 && range.upperBound <= x.shape[a] && !range.isEmpty,
                 "slice: range \(range) is empty or outside 0..<\(x.shape[a]) on axis \(a) of \(x.shape)")
    let x = x.plain()
    let y = sliceCopy(x, axis: a, range: range)
    guard Autograd.needsGrad(x) else { return y }
    Autograd.record(y) { [x = x.slot] dy in
        let dy = dy.plain()
        let dx = Tensor.zeros(x.shape)
        let strides = Kernels.strides(x.shape)
        Kernels.copyStrided(dy.storage.floats, strides: Kernels.strides(dy.shape), dx.storage.floats + range.lowerBound * strides[a],
                            strides: strides, shape: dy.shape)
        x.accumulateGrad(dx)
    }
    return y
}

/// A plain copy of `x[…, range, …]` (x plain, axis non-negative); records nothing.
private func sliceCopy(_ x: Tensor, axis a: Int, range: Range<Int>) -> Tensor {
    var yShape = x.shape
    yShape[a] = range.count
    let y = Tensor(shape: yShape)
    let strides = Kernels.strides(x.shape)
    Kernels.copyStrided(x.storage.floats + range.lowerBound * strides[a], strides: strides, y.storage.floats,
                        strides: Kernels.strides(yShape), shape: yShape)
    return y
}
