import CDNNL

/// Where a tensor's gradient accumulates, kept apart from the tensor's data.
///
/// A backward closure that only needs to *deliver* a gradient to an input captures the input's slot, not the
/// input, so the input's buffer is freed as soon as the forward pass no longer uses it (as PyTorch frees what no
/// `grad_fn` saved). Closures capture a tensor itself only when backward reads its values (a convolution's input,
/// a ReLU's output). The tape holds outputs' slots for the same reason. Idiom in an op:
///
///     let x = x.slot   // backward needs only x's gradient, shape and layout
///     Autograd.record(y) { dy in x.accumulateGrad(…) }
public final class GradSlot {
    public let shape: [Int]
    /// The layout of the tensor this slot belongs to (a gradient may arrive in another one).
    public let desc: dnnl_memory_desc_t
    public var grad: Tensor?
    public var requiresGrad: Bool
    /// Backward closures recorded since the last reset that will deliver a gradient here (counted by
    /// `Autograd.needsGrad`); when the count returns to zero the gradient is complete and `onGradientReady` fires.
    /// This is how the gradient reducer learns, during backward, that a parameter's gradient can be sent.
    public var pendingUses = 0
    public var onGradientReady: (() -> Void)?

    init(shape: [Int], desc: dnnl_memory_desc_t, requiresGrad: Bool) {
        self.shape = shape
        self.desc = desc
        self.requiresGrad = requiresGrad
    }

    /// Adds `g` into `grad` (allocating it on first use), converting `g` to the layout of the existing gradient.
    public func accumulateGrad(_ g: Tensor) {
        precondition(g.shape == shape, "gradient of shape \(g.shape) for a tensor of shape \(shape)")
        if let existing = grad {
            let addend = MemoryDesc.equal(g.desc, existing.desc) ? g : Reorder.convert(g, to: existing.desc)
            Kernels.addInPlace(existing.storage.floats, addend.storage.floats, count: existing.storedFloatCount)
        } else {
            grad = g
        }
        if pendingUses > 0 {
            pendingUses -= 1
            if pendingUses == 0 { onGradientReady?() }
        }
    }
}
