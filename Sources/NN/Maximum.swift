/// The element-wise maximum of tensors of one shape, as PyTorch's `torch.max(torch.stack(xs), dim=0)[0]`
/// (deeplab-pytorch's MSC fusion of the scale-1 logits with the upsampled 0.5 and 0.75 logits):
///
///     y[i] = max_k xs[k][i]
///
/// Shapes: every xs[k] the same shape, any layout; y plain. Backward: dxs[k][i] = dy[i] where k is the winner of
/// element i and 0 elsewhere; on a tie the first tensor in `xs` wins, as PyTorch's CPU max picks the first index.
public func maximum(_ xs: [Tensor]) -> Tensor {
    precondition(!xs.isEmpty, "maximum: no tensors")
    precondition(xs.allSatisfy { $0.shape == xs[0].shape }, "maximum: shapes differ: \(xs.map(\.shape))")
    let plain = xs.map { $0.plain() }
    let count = xs[0].elementCount
    let y = Tensor(shape: xs[0].shape)
    // UInt8 winners: MSC fuses three maps; more than 255 inputs is not a use this op has.
    precondition(xs.count <= 255, "maximum: at most 255 tensors, got \(xs.count)")
    var winner = [UInt8](repeating: 0, count: count)
    withExtendedLifetime(plain) {
        let out = y.storage.floats
        out.update(from: plain[0].storage.floats, count: count)
        for k in 1..<plain.count {
            let source = plain[k].storage.floats
            for i in 0..<count where source[i] > out[i] {
                out[i] = source[i]
                winner[i] = UInt8(k)
            }
        }
    }
    guard Autograd.needsGrad(xs) else { return y }
    Autograd.record(y) { [slots = xs.map(\.slot)] dy in
        let dy = dy.plain()
        for (k, slot) in slots.enumerated() where slot.requiresGrad {
            let dx = Tensor(shape: slot.shape)
            withExtendedLifetime(dy) {
                let source = dy.storage.floats, target = dx.storage.floats
                for i in 0..<count { target[i] = winner[i] == UInt8(k) ? source[i] : 0 }
            }
            slot.accumulateGrad(dx)
        }
    }
    return y
}
