import CDNNL

/// Layout conversions through oneDNN's reorder primitive, cached per (source, destination) descriptor pair.
///
/// Every conversion is counted in `Reorder.count`: a convolutional stack should run without any, and the
/// kernel benchmark reports how many a layer needed.
public enum Reorder {
    /// What a conversion was for: activations (data moving between layers, heads, model boundaries) or weights
    /// (plain parameters given to a primitive in its preferred layout, and their gradients back).
    public enum Kind { case activations, weights }

    /// Conversions of activations so far.
    nonisolated(unsafe) public private(set) static var count = 0
    /// Conversions of weights and weight gradients so far.
    nonisolated(unsafe) public private(set) static var weightCount = 0
    nonisolated(unsafe) private static var cache: [ReorderKey: Primitive] = [:]

    /// A new tensor holding `tensor`'s values in layout `desc`.
    public static func convert(_ tensor: Tensor, to desc: dnnl_memory_desc_t, kind: Kind = .activations) -> Tensor {
        let out = Tensor(shape: tensor.shape, desc: desc)
        run(from: tensor.desc, tensor.storage.data, to: desc, out.storage.data, kind: kind)
        return out
    }

    /// `tensor` itself when it already has layout `desc`, else a converted copy.
    public static func ensure(_ tensor: Tensor, _ desc: dnnl_memory_desc_t, kind: Kind = .activations) -> Tensor {
        MemoryDesc.equal(tensor.desc, desc) ? tensor : convert(tensor, to: desc, kind: kind)
    }

    /// Converts raw buffers between two layouts of the same logical shape.
    public static func run(from src: dnnl_memory_desc_t, _ srcData: UnsafeMutableRawPointer,
                           to dst: dnnl_memory_desc_t, _ dstData: UnsafeMutableRawPointer, kind: Kind = .activations) {
        if kind == .activations { count += 1 } else { weightCount += 1 }
        let key = ReorderKey(src: src, dst: dst)
        let primitive: Primitive
        if let cached = cache[key] {
            primitive = cached
        } else {
            var pd: dnnl_primitive_desc_t?
            var s = src, d = dst
            let engine = DNNLRuntime.shared.engine
            dnnlCheck(dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, nil), "create a reorder")
            primitive = Primitive(pd!)
            cache[key] = primitive
        }
        primitive.execute([(DNNL_ARG_FROM, srcData), (DNNL_ARG_TO, dstData)])
    }
}

/// Memory descriptors as dictionary keys (compared and hashed by their bytes).
struct ReorderKey: Hashable {
    let bytes: [UInt8]
    init(src: dnnl_memory_desc_t, dst: dnnl_memory_desc_t) {
        var s = src, d = dst
        bytes = withUnsafeBytes(of: &s) { Array($0) } + withUnsafeBytes(of: &d) { Array($0) }
    }
}
