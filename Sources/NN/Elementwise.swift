import CDNNL

/// Element-wise sums and products with PyTorch broadcasting, on oneDNN's binary primitive.
///
/// Broadcasting: the shapes are aligned from the right (missing leading dimensions count as 1), and one operand
/// may have size 1 where the other has size n. This covers what the model needs: equal shapes (a CNN residual
/// connection, blocked layouts included, whose layout the result keeps), (N, C, H, W) with (1, C, 1, 1), and
/// (B, N, C) with (1, N, C), (1, 1, C) or (C). The operand with the full shape ("big") may have any layout; the
/// other ("small") is read plain, or, for equal shapes, converted to big's layout. Both operands broadcasting at
/// once (e.g. (B, 1) with (1, C)) is not supported.
///
/// Shapes: out has big's shape and layout. Backward: the gradient of a broadcast operand is the upstream gradient
/// summed over its broadcast dimensions (accumulated in Double), `Kernels.sumToShape`.
public enum BinaryOperation: String {
    case add, mul

    var algorithm: dnnl_alg_kind_t { self == .add ? dnnl_binary_add : dnnl_binary_mul }
}

/// out = a + b with broadcasting. Backward: da = Σ_broadcast dy, db = Σ_broadcast dy.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor { binary(.add, a, b) }

/// out = a ⊙ b with broadcasting. Backward: da = Σ_broadcast dy ⊙ b, db = Σ_broadcast dy ⊙ a.
public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { binary(.mul, a, b) }

/// y = s · x, in x's layout. Backward: dx = s · dy.
public func scale(_ x: Tensor, _ s: Float) -> Tensor {
    let y = scaledCopy(x, s)
    guard Autograd.needsGrad(x) else { return y }
    Autograd.record(y) { [x = x.slot] dy in x.accumulateGrad(scaledCopy(dy, s)) }
    return y
}

/// x repeated along its size-1 dimensions to `shape` (PyTorch's `x.expand(shape)`, materialised, plain), e.g. the
/// class token (1, 1, C) → (B, 1, C). Backward: dx = Σ_broadcast dy.
public func expand(_ x: Tensor, to shape: [Int]) -> Tensor {
    guard let padded = broadcastShape(x.shape, to: shape) else {
        preconditionFailure("expand: \(x.shape) cannot be broadcast to \(shape)")
    }
    let x = x.plain()
    let plainStrides = Kernels.strides(padded)
    let sourceStrides = padded.indices.map { padded[$0] == 1 ? 0 : plainStrides[$0] }
    let y = Tensor(shape: shape)
    Kernels.copyStrided(x.storage.floats, strides: sourceStrides, y.storage.floats, strides: Kernels.strides(shape), shape: shape)
    guard Autograd.needsGrad(x) else { return y }
    Autograd.record(y) { [x = x.slot] dy in x.accumulateGrad(reduceGradient(dy, to: x.shape)) }
    return y
}

/// `small` left-padded with 1s to the rank of `big`, if it broadcasts to `big` (each dimension 1 or equal).
func broadcastShape(_ small: [Int], to big: [Int]) -> [Int]? {
    guard small.count <= big.count else { return nil }
    let padded = [Int](repeating: 1, count: big.count - small.count) + small
    return zip(padded, big).allSatisfy { $0 == $1 || $0 == 1 } ? padded : nil
}

/// The upstream gradient `dy` (big's shape, any layout) summed to `shape` (a shape that broadcasts to it); `dy`
/// itself, copied if `copy`, when no dimension is broadcast.
func reduceGradient(_ dy: Tensor, to shape: [Int], copy: Bool = false) -> Tensor {
    if shape == dy.shape { return copy ? scaledCopy(dy, 1) : dy }
    guard let padded = broadcastShape(shape, to: dy.shape) else {
        preconditionFailure("gradient \(dy.shape) cannot be reduced to \(shape)")
    }
    let dy = dy.plain()
    let out = Tensor(shape: shape)
    Kernels.sumToShape(dy.storage.floats, shape: dy.shape, out.storage.floats, target: padded)
    return out
}

/// A copy of x (any layout) multiplied by s.
private func scaledCopy(_ x: Tensor, _ s: Float) -> Tensor {
    let y = Tensor(shape: x.shape, desc: x.desc)
    let count = x.storedFloatCount
    y.storage.floats.update(from: x.storage.floats, count: count)
    if s != 1 { Kernels.scaleInPlace(y.storage.floats, s, count: count) }
    return y
}

private func binary(_ op: BinaryOperation, _ a: Tensor, _ b: Tensor) -> Tensor {
    // Both operations commute, so the operand with the full shape goes first (oneDNN broadcasts only src1).
    let aIsBig = broadcastShape(b.shape, to: a.shape) != nil
    precondition(aIsBig || broadcastShape(a.shape, to: b.shape) != nil,
                 "\(op): shapes \(a.shape) and \(b.shape) do not broadcast (one must broadcast to the other)")
    let (big, small) = aIsBig ? (a, b) : (b, a)
    let y = runBinary(op, big, small)
    guard Autograd.needsGrad(a, b) else { return y }
    // A sum needs no operand values in backward, so only their gradient slots are kept (see `GradSlot`).
    let operands = op == .mul ? (big, small) : nil
    Autograd.record(y) { [big = big.slot, small = small.slot] dy in
        if let (bigData, smallData) = operands {
            if big.requiresGrad { big.accumulateGrad(runBinary(.mul, dy, smallData)) }
            if small.requiresGrad { small.accumulateGrad(reduceGradient(runBinary(.mul, Reorder.ensure(dy, big.desc), bigData), to: small.shape)) }
        } else {
            // Same-shape operands must not share one gradient buffer: the first gets dy, the second a copy.
            if big.requiresGrad { big.accumulateGrad(dy) }
            if small.requiresGrad { small.accumulateGrad(reduceGradient(dy, to: small.shape, copy: big.requiresGrad)) }
        }
    }
    return y
}

/// Executes `big op small` without recording; the result has big's shape and layout.
private func runBinary(_ op: BinaryOperation, _ big: Tensor, _ small: Tensor) -> Tensor {
    guard let padded = broadcastShape(small.shape, to: big.shape) else {
        preconditionFailure("\(op): \(small.shape) does not broadcast to \(big.shape)")
    }
    if padded != big.shape, let y = blockwiseBinary(op, big, small, padded: padded) { return y }
    let src1 = padded == big.shape ? Reorder.ensure(small, big.desc) : small.plain()
    let src1Desc = padded == big.shape ? big.desc : MemoryDesc.plain(padded)
    let shapes = "\(big.shape)\(big.layoutKey)\(padded)\(PrimitiveCache.key(src1Desc))"
    let primitive = PrimitiveCache.primitive("binary.\(op)\(shapes)") {
        var s0 = big.desc, s1 = src1Desc, d = big.desc
        var desc = dnnl_binary_desc_t()
        dnnlCheck(dnnl_binary_desc_init(&desc, op.algorithm, &s0, &s1, &d), "describe \(op) of \(big.shape) and \(padded)")
        return makePrimitiveDesc(&desc, "\(op) \(shapes)")
    }
    let y = Tensor(shape: big.shape, desc: big.desc)
    primitive.execute([(DNNL_ARG_SRC_0, big.storage.data), (DNNL_ARG_SRC_1, src1.storage.data), (DNNL_ARG_DST, y.storage.data)])
    return y
}
