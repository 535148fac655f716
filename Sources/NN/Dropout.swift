/// Inverted dropout, as PyTorch's `F.dropout(x, p, training)`: every element is kept with probability 1 − p and
/// kept elements are scaled by 1/(1 − p), so the expectation is unchanged:
///
///     y = x ⊙ m,   m_i = [keep_i] / (1 − p),   keep_i ~ Bernoulli(1 − p).
///
/// Shapes: x any shape and layout, y the same. The identity (x itself) when `training` is false or p = 0; p = 1
/// zeroes everything. The mask m is drawn from `rng` (one `nextFloat()` per element, row-major) and saved for
/// backward: dx = dy ⊙ m.
public func dropout(_ x: Tensor, p: Float, training: Bool, rng: inout SeededRandom) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout: p = \(p) is outside [0, 1] (input \(x.shape))")
    guard training && p > 0 else { return x }
    let keep = (0..<x.elementCount).map { _ in rng.nextFloat() >= p }
    return dropout(x, p: p, keep: keep)
}

/// Dropout with a given mask (`keep` row-major, one flag per element of x): y = x ⊙ [keep] / (1 − p).
/// What `dropout(_:p:training:rng:)` applies; also how a mask drawn elsewhere (e.g. by PyTorch) is replayed.
public func dropout(_ x: Tensor, p: Float, keep: [Bool]) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout: p = \(p) is outside [0, 1] (input \(x.shape))")
    precondition(keep.count == x.elementCount, "dropout: \(keep.count) mask flags for input \(x.shape)")
    return mul(x, dropMask(keep, p: p, shape: x.shape))
}

/// Channel dropout, as PyTorch's `F.dropout2d(x, p, training)` (ResNet-38's b6 / b7, spec §8.1): each channel
/// (b, c) of x (B, C, H, W) is kept whole with probability 1 − p and scaled by 1/(1 − p), or zeroed whole:
///
///     y[b, c, :, :] = x[b, c, :, :] · [keep_bc] / (1 − p),   keep_bc ~ Bernoulli(1 − p).
///
/// Shapes: x (B, C, H, W) any layout, y the same. The identity (x itself) when `training` is false or p = 0; p = 1
/// zeroes everything. One `nextFloat()` per (b, c), row-major (b outer), kept when ≥ p; the (B, C, 1, 1) mask is
/// saved for backward: dx[b, c] = dy[b, c] · [keep_bc] / (1 − p).
public func dropout2d(_ x: Tensor, p: Float, training: Bool, rng: inout SeededRandom) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout2d: p = \(p) is outside [0, 1] (input \(x.shape))")
    precondition(x.shape.count == 4, "dropout2d: input \(x.shape) is not (B, C, H, W)")
    guard training && p > 0 else { return x }
    let keep = (0..<(x.shape[0] * x.shape[1])).map { _ in rng.nextFloat() >= p }
    return dropout2d(x, p: p, keep: keep)
}

/// Channel dropout with a given mask (`keep`, one flag per (b, c), row-major): y[b, c] = x[b, c] · [keep_bc] / (1 − p).
/// What `dropout2d(_:p:training:rng:)` applies; also how a mask drawn elsewhere (e.g. by PyTorch) is replayed.
public func dropout2d(_ x: Tensor, p: Float, keep: [Bool]) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout2d: p = \(p) is outside [0, 1] (input \(x.shape))")
    precondition(x.shape.count == 4, "dropout2d: input \(x.shape) is not (B, C, H, W)")
    precondition(keep.count == x.shape[0] * x.shape[1], "dropout2d: \(keep.count) mask flags for input \(x.shape)")
    return mul(x, dropMask(keep, p: p, shape: [x.shape[0], x.shape[1], 1, 1]))
}

/// Stochastic depth ("drop path"), as timm's `drop_path(x, p, training)`: each SAMPLE (index along dim 0) is kept
/// with probability 1 − p, kept samples scaled by 1/(1 − p), dropped samples zeroed as a whole:
///
///     y[b, …] = x[b, …] · [keep_b] / (1 − p),   keep_b ~ Bernoulli(1 − p).
///
/// Shapes: x (B, …) any layout, y the same. The identity when `training` is false or p = 0. One `nextFloat()`
/// per sample; the per-sample mask (B, 1, …, 1) is saved for backward: dx[b] = dy[b] · [keep_b] / (1 − p).
/// Each residual branch must draw its own mask (spec §2.2: attention and MLP branches are independent).
public func dropPath(_ x: Tensor, p: Float, training: Bool, rng: inout SeededRandom) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropPath: p = \(p) is outside [0, 1] (input \(x.shape))")
    guard training && p > 0 else { return x }
    let keep = (0..<x.shape[0]).map { _ in rng.nextFloat() >= p }
    return dropPath(x, p: p, keep: keep)
}

/// Drop path with a given per-sample mask (`keep`, one flag per index of dim 0): y[b] = x[b] · [keep_b] / (1 − p).
public func dropPath(_ x: Tensor, p: Float, keep: [Bool]) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropPath: p = \(p) is outside [0, 1] (input \(x.shape))")
    precondition(!x.shape.isEmpty && keep.count == x.shape[0], "dropPath: \(keep.count) mask flags for input \(x.shape)")
    let maskShape = [x.shape[0]] + [Int](repeating: 1, count: x.shape.count - 1)
    return mul(x, dropMask(keep, p: p, shape: maskShape))
}

/// The constant mask [keep] / (1 − p) (all zeros when p = 1), as a plain tensor that takes no gradient.
private func dropMask(_ keep: [Bool], p: Float, shape: [Int]) -> Tensor {
    let kept: Float = p < 1 ? 1 / (1 - p) : 0
    return Tensor(keep.map { $0 ? kept : 0 }, shape: shape)
}
