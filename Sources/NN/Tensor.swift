import CDNNL

/// A Float32 tensor: a logical shape (NCHW order for images, row-major otherwise), a oneDNN memory descriptor that
/// says how the elements are laid out in `storage` — plain row-major, or one of oneDNN's blocked formats — and,
/// for autograd, a gradient slot.
///
/// Convolutional stacks hand blocked tensors from layer to layer without converting them; `plain()` converts
/// explicitly (and `Reorder.count` counts every conversion), so layout changes are easy to find in a profile.
public final class Tensor {
    public let shape: [Int]
    public let desc: dnnl_memory_desc_t
    /// `PrimitiveCache.key(desc)`, hashed once: every op's primitive lookup uses it.
    public private(set) lazy var layoutKey = PrimitiveCache.key(desc)
    public let storage: TensorStorage
    /// Where this tensor's gradient accumulates (see `GradSlot`: backward closures hold the slot, not the data).
    public let slot: GradSlot
    /// Gradient of the loss with respect to this tensor, filled by `backward()` (same shape; any layout).
    public var grad: Tensor? {
        get { slot.grad }
        set { slot.grad = newValue }
    }
    /// Whether operations on this tensor are recorded on the tape so that gradients flow back to it.
    public var requiresGrad: Bool {
        get { slot.requiresGrad }
        set { slot.requiresGrad = newValue }
    }
    /// Bumped by every in-place write (optimiser steps, loading); layout copies made by `inLayout` check it.
    public var version = 0
    private var layoutCopies: [String: (version: Int, tensor: Tensor)] = [:]

    /// A tensor with uninitialised contents in the given layout.
    public init(shape: [Int], desc: dnnl_memory_desc_t, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 > 0 }, "tensor shape \(shape) has an empty dimension")
        self.shape = shape
        self.desc = desc
        self.storage = TensorStorage(byteCount: max(MemoryDesc.byteCount(desc), 4))
        self.slot = GradSlot(shape: shape, desc: desc, requiresGrad: requiresGrad)
    }

    /// A plain tensor with uninitialised contents.
    public convenience init(shape: [Int]) {
        self.init(shape: shape, desc: MemoryDesc.plain(shape))
    }

    /// A plain tensor holding `values` (row-major).
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values cannot fill shape \(shape)")
        self.init(shape: shape, desc: MemoryDesc.plain(shape), requiresGrad: requiresGrad)
        values.withUnsafeBufferPointer { storage.floats.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A plain tensor filled with `value`.
    public static func filled(_ value: Float, shape: [Int]) -> Tensor {
        let t = Tensor(shape: shape)
        t.storage.floats.update(repeating: value, count: t.elementCount)
        return t
    }

    public static func zeros(_ shape: [Int]) -> Tensor { filled(0, shape: shape) }

    /// A tensor of zeros with the same shape and layout as `other` (padding included).
    public static func zeros(like other: Tensor) -> Tensor {
        let t = Tensor(shape: other.shape, desc: other.desc)
        t.storage.data.initializeMemory(as: UInt8.self, repeating: 0, count: t.storage.byteCount)
        return t
    }

    /// Number of logical elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Floats in the buffer, padding of blocked layouts included.
    public var storedFloatCount: Int { MemoryDesc.byteCount(desc) / 4 }

    public var isPlain: Bool { MemoryDesc.equal(desc, MemoryDesc.plain(shape)) }

    /// This tensor in plain row-major layout: itself when already plain, else a converted copy.
    /// Differentiable: the gradient flows back to this tensor (in its own layout).
    public func plain() -> Tensor {
        if isPlain { return self }
        let out = Reorder.convert(self, to: MemoryDesc.plain(shape))
        if Autograd.needsGrad(self) {
            let input = slot
            Autograd.record(out) { dy in input.accumulateGrad(dy) }
        }
        return out
    }

    /// The elements in row-major order (converting from a blocked layout if needed).
    public func toArray() -> [Float] {
        let p = plain()
        return Array(UnsafeBufferPointer(start: p.storage.floats, count: elementCount))
    }

    /// The same buffer seen with another shape of equal element count; only for plain tensors (free of copies).
    /// Differentiable.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(isPlain, "reshaped(\(newShape)) needs a plain tensor; call plain() first")
        precondition(newShape.reduce(1, *) == elementCount, "cannot reshape \(shape) to \(newShape)")
        let out = Tensor(sharing: storage, shape: newShape, desc: MemoryDesc.plain(newShape))
        if Autograd.needsGrad(self) {
            let original = shape
            let input = slot
            Autograd.record(out) { dy in input.accumulateGrad(dy.plain().reshaped(original)) }
        }
        return out
    }

    private init(sharing storage: TensorStorage, shape: [Int], desc: dnnl_memory_desc_t) {
        self.shape = shape
        self.desc = desc
        self.storage = storage
        self.slot = GradSlot(shape: shape, desc: desc, requiresGrad: false)
    }

    /// Overwrites this (plain) tensor's values with `source`'s, as `w.data.copy_(source)` for a re-initialisation;
    /// bumps `version` so cached layout copies are rebuilt.
    public func assign(_ source: Tensor) {
        precondition(source.shape == shape && isPlain, "assign: \(source.shape) into a tensor of shape \(shape) (plain: \(isPlain))")
        let values = source.plain()
        withExtendedLifetime(values) { storage.floats.update(from: values.storage.floats, count: elementCount) }
        version += 1
    }

    /// This tensor's values in layout `desc`, cached until the tensor changes (`version`): how plain parameters
    /// (weights keep their PyTorch layout for the state dict) are fed to primitives that want them blocked,
    /// without converting them on every call.
    public func inLayout(_ desc: dnnl_memory_desc_t) -> Tensor {
        if MemoryDesc.equal(desc, self.desc) { return self }
        let key = PrimitiveCache.key(desc)
        if let copy = layoutCopies[key], copy.version == version { return copy.tensor }
        let copy = Reorder.convert(self, to: desc, kind: .weights)
        layoutCopies[key] = (version, copy)
        return copy
    }

    /// Adds `g` into `grad`; see `GradSlot.accumulateGrad`.
    public func accumulateGrad(_ g: Tensor) { slot.accumulateGrad(g) }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(\(shape)\(isPlain ? "" : ", blocked"))" }
}
