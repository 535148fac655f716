import CDNNL

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
    let kept: Float = p < 1 ? 1 / (1 - p) : 0
    let scales = keep.map { $0 ? kept : 0 }
    // oneDNN's binary primitive has no optimised kernel for a (B, C, 1, 1) operand on a blocked activation (its
    // reference one took ~50× a plain product), so the channels are scaled directly where the layout allows.
    guard let y = scaledPerChannel(x, scales) else { return mul(x, dropMask(keep, p: p, shape: [x.shape[0], x.shape[1], 1, 1])) }
    guard Autograd.needsGrad(x) else { return y }
    Autograd.record(y) { [x = x.slot] dy in x.accumulateGrad(scaledPerChannel(Reorder.ensure(dy, x.desc), scales)!) }
    return y
}

/// x (B, C, H, W) with channel c of sample b multiplied by scales[b·C + c] (the same float product as the broadcast
/// `mul`), in x's layout: plain, or channels in one inner block (oneDNN's nChw8c / nChw16c, padding channels
/// multiplied by 0). nil for any other layout.
private func scaledPerChannel(_ x: Tensor, _ scales: [Float]) -> Tensor? {
    let md = x.desc
    guard x.shape.count == 4, md.format_kind == dnnl_blocked, md.offset0 == 0 else { return nil }
    let blocking = md.format_desc.blocking
    let innerCount = Int(blocking.inner_nblks)
    let innerIndex = withUnsafeBytes(of: blocking.inner_idxs) { Array($0.bindMemory(to: Int64.self).prefix(innerCount)) }
    let innerSize = withUnsafeBytes(of: blocking.inner_blks) { Array($0.bindMemory(to: Int64.self).prefix(innerCount)) }
    let strides = withUnsafeBytes(of: blocking.strides) { $0.bindMemory(to: Int64.self).prefix(4).map { Int($0) } }
    let block: Int
    switch (innerCount, innerIndex.first) {
    case (0, _): block = 1
    case (1, 1): block = Int(innerSize[0])
    default: return nil
    }
    let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let channelBlocks = (c + block - 1) / block
    guard x.storedFloatCount == b * channelBlocks * h * w * block else { return nil }
    let y = Tensor(shape: x.shape, desc: x.desc)
    let src = x.storage.floats, dst = y.storage.floats
    ComputeThreads.parallelRanges(b * channelBlocks, minimumPerThread: 1) { range in
        var factors = [Float](repeating: 0, count: block)
        for task in range {
            let (n, cb) = (task / channelBlocks, task % channelBlocks)
            for k in 0..<block { factors[k] = cb * block + k < c ? scales[n * c + cb * block + k] : 0 }
            for i in 0..<h {
                for j in 0..<w {
                    let base = n * strides[0] + cb * strides[1] + i * strides[2] + j * strides[3]
                    for k in 0..<block { dst[base + k] = src[base + k] * factors[k] }
                }
            }
        }
    }
    return y
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
///
/// Each sample is one contiguous block of x's storage (in the plain layout and in oneDNN's channel-blocked ones),
/// so this scales blocks (`scaledPerSample`) rather than running a broadcast product: oneDNN has no optimised
/// binary primitive for a (B, 1, …, 1) operand and its reference one took a fifth of the Conformer's training step.
public func dropPath(_ x: Tensor, p: Float, keep: [Bool]) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropPath: p = \(p) is outside [0, 1] (input \(x.shape))")
    precondition(!x.shape.isEmpty && keep.count == x.shape[0], "dropPath: \(keep.count) mask flags for input \(x.shape)")
    let kept: Float = p < 1 ? 1 / (1 - p) : 0
    let scales = keep.map { $0 ? kept : 0 }
    guard floatsPerSample(x) != nil else {
        return mul(x, Tensor(scales, shape: [x.shape[0]] + [Int](repeating: 1, count: x.shape.count - 1)))
    }
    let y = scaledPerSample(x, scales)
    guard Autograd.needsGrad(x) else { return y }
    Autograd.record(y) { [x = x.slot] dy in x.accumulateGrad(scaledPerSample(Reorder.ensure(dy, x.desc), scales)) }
    return y
}

/// x (stored sample by sample, `floatsPerSample`) with sample b multiplied by scales[b]: the same float product as
/// the broadcast `mul` per element, zeros for a zero scale.
private func scaledPerSample(_ x: Tensor, _ scales: [Float]) -> Tensor {
    let per = floatsPerSample(x)!
    let y = Tensor(shape: x.shape, desc: x.desc)
    let src = x.storage.floats, dst = y.storage.floats
    ComputeThreads.parallelRanges(scales.count * per) { range in
        var i = range.lowerBound
        while i < range.upperBound {
            let b = i / per, end = min(range.upperBound, (b + 1) * per), s = scales[b]
            if s == 0 {
                (dst + i).update(repeating: 0, count: end - i)
            } else {
                for k in i..<end { dst[k] = src[k] * s }
            }
            i = end
        }
    }
    return y
}

/// The floats each index of dim 0 takes when x stores them one after another (the plain layout, and oneDNN's
/// blocked layouts that block no dimension 0 and put it outermost), else nil.
func floatsPerSample(_ x: Tensor) -> Int? {
    let md = x.desc
    guard md.format_kind == dnnl_blocked, md.offset0 == 0, let batch = x.shape.first, batch > 0 else { return nil }
    let blocking = md.format_desc.blocking
    let inner = withUnsafeBytes(of: blocking.inner_idxs) { Array($0.bindMemory(to: Int64.self).prefix(Int(blocking.inner_nblks))) }
    let stride0 = withUnsafeBytes(of: blocking.strides) { Int($0.bindMemory(to: Int64.self)[0]) }
    guard !inner.contains(0), stride0 * batch == x.storedFloatCount else { return nil }
    return stride0
}

/// The constant mask [keep] / (1 − p) (all zeros when p = 1), as a plain tensor that takes no gradient.
private func dropMask(_ keep: [Bool], p: Float, shape: [Int]) -> Tensor {
    let kept: Float = p < 1 ? 1 / (1 - p) : 0
    return Tensor(keep.map { $0 ? kept : 0 }, shape: shape)
}
