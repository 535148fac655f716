import CDNNL
import Dispatch

/// A oneDNN primitive with its descriptor and one reusable memory object per argument, so executing it again
/// only swaps data pointers (`dnnl_memory_set_data_handle`) and allocates nothing.
public final class Primitive {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    private var memories: [Int32: dnnl_memory_t] = [:]
    private var args: [dnnl_exec_arg_t] = []

    init(_ pd: dnnl_primitive_desc_t) {
        self.pd = pd
        var p: dnnl_primitive_t?
        dnnlCheck(dnnl_primitive_create(&p, pd), "create a primitive")
        primitive = p!
    }

    deinit {
        for (_, m) in memories { dnnl_memory_destroy(m) }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The layout the primitive expects for an execution argument (e.g. `DNNL_ARG_SRC`).
    public func desc(_ arg: Int32) -> dnnl_memory_desc_t {
        guard let md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg) else {
            preconditionFailure("primitive has no argument \(arg)")
        }
        return md.pointee
    }

    /// oneDNN's name for the implementation it picked (e.g. `jit:avx512_core`, `jit_wino_4x3:avx512_core`).
    public var implementation: String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else { return "?" }
        return String(cString: name)
    }

    /// Runs the primitive on raw buffers laid out as `desc(arg)` says, and waits for it.
    public func execute(_ buffers: [(Int32, UnsafeMutableRawPointer)]) {
        args.removeAll(keepingCapacity: true)
        for (arg, data) in buffers {
            let memory: dnnl_memory_t
            if let m = memories[arg] {
                memory = m
                dnnlCheck(dnnl_memory_set_data_handle(m, data), "set argument \(arg)")
            } else {
                var md = desc(arg)
                var m: dnnl_memory_t?
                dnnlCheck(dnnl_memory_create(&m, &md, DNNLRuntime.shared.engine, data), "create memory for argument \(arg)")
                memories[arg] = m!
                memory = m!
            }
            args.append(dnnl_exec_arg_t(arg: arg, memory: memory))
        }
        let stream = DNNLRuntime.shared.stream
        let start = DispatchTime.now().uptimeNanoseconds
        dnnlCheck(dnnl_primitive_execute(primitive, stream, Int32(args.count), args), "execute a primitive")
        dnnlCheck(dnnl_stream_wait(stream), "wait for the stream")
        Primitive.executionNanoseconds += DispatchTime.now().uptimeNanoseconds - start
    }

    /// Time spent inside oneDNN primitives (reorders included) since the process started: what the kernel
    /// benchmark sets against a layer's total time to show the framework's own overhead.
    nonisolated(unsafe) public private(set) static var executionNanoseconds: UInt64 = 0
}

/// Primitives cached by a key that describes the operation, its shapes and layouts: a training step creates no
/// primitive after the first.
public enum PrimitiveCache {
    nonisolated(unsafe) private static var cache: [String: Primitive] = [:]
    nonisolated(unsafe) public private(set) static var created = 0

    /// The cached primitive for `key`, or the one `make` describes (a primitive descriptor), created once.
    static func primitive(_ key: String, make: () -> dnnl_primitive_desc_t) -> Primitive {
        if let p = cache[key] { return p }
        let p = Primitive(make())
        cache[key] = p
        created += 1
        return p
    }

    /// As `primitive`, for a descriptor oneDNN may not implement (`make` returns nil): the answer, either way, is
    /// cached, so an unimplemented algorithm is asked about once per shape.
    static func optionalPrimitive(_ key: String, make: () -> dnnl_primitive_desc_t?) -> Primitive? {
        if let p = cache[key] { return p }
        if unimplemented.contains(key) { return nil }
        guard let pd = make() else { unimplemented.insert(key); return nil }
        let p = Primitive(pd)
        cache[key] = p
        created += 1
        return p
    }
    nonisolated(unsafe) private static var unimplemented: Set<String> = []

    /// A string that identifies a memory descriptor's layout (for cache keys).
    static func key(_ md: dnnl_memory_desc_t) -> String {
        var md = md
        return withUnsafeBytes(of: &md) { raw in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in raw { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            return String(h, radix: 36)
        }
    }
}
