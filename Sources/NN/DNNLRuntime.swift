import CDNNL

/// The process's oneDNN CPU engine and stream, and the error check every call goes through.
///
/// One engine and one in-order stream per rank: oneDNN runs each primitive on its OpenMP pool (sized by
/// `ComputeThreads`), and primitives execute one after another on the main thread.
public final class DNNLRuntime: @unchecked Sendable {
    public static let shared = DNNLRuntime()

    let engine: dnnl_engine_t
    let stream: dnnl_stream_t

    private init() {
        var engine: dnnl_engine_t?
        var stream: dnnl_stream_t?
        dnnlCheck(dnnl_engine_create(&engine, dnnl_cpu, 0), "create the CPU engine")
        dnnlCheck(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "create a stream")
        self.engine = engine!
        self.stream = stream!
    }
}

/// Stops on a oneDNN failure. A failure here is a programming error (a shape the layer should have checked, or
/// an unsupported combination), never bad user input, so it is a precondition, not a thrown error.
@inline(__always)
func dnnlCheck(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
    precondition(status == dnnl_success, "oneDNN could not \(what()) (status \(status.rawValue))")
}

/// Memory descriptors: how a tensor's elements are laid out in its buffer.
public enum MemoryDesc {
    /// The row-major ("plain") descriptor of `shape`: NCHW for 4-d, (rows, cols) for 2-d.
    public static func plain(_ shape: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let dims = shape.map { Int64($0) }
        dnnlCheck(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), dims, dnnl_f32, plainTag(shape.count)),
                  "describe plain shape \(shape)")
        return md
    }

    /// A descriptor that lets the primitive choose the layout (`format_tag_any`): how activations get blocked.
    public static func any(_ shape: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let dims = shape.map { Int64($0) }
        dnnlCheck(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), dims, dnnl_f32, dnnl_format_tag_any),
                  "describe shape \(shape) with any layout")
        return md
    }

    /// A descriptor with explicit element strides (e.g. a transposed view of a plain matrix).
    public static func strided(_ shape: [Int], strides: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        dnnlCheck(dnnl_memory_desc_init_by_strides(&md, Int32(shape.count), shape.map { Int64($0) }, dnnl_f32,
                                                   strides.map { Int64($0) }), "describe strided shape \(shape)")
        return md
    }

    static func plainTag(_ rank: Int) -> dnnl_format_tag_t {
        switch rank {
        case 1: return dnnl_a
        case 2: return dnnl_ab
        case 3: return dnnl_abc
        case 4: return dnnl_abcd
        case 5: return dnnl_abcde
        case 6: return dnnl_abcdef
        default: preconditionFailure("tensors of rank \(rank) are not supported (1...6)")
        }
    }

    public static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var a = a, b = b
        return dnnl_memory_desc_equal(&a, &b) != 0
    }

    /// Bytes a buffer of this descriptor needs (blocked layouts may pad channels).
    public static func byteCount(_ md: dnnl_memory_desc_t) -> Int {
        var md = md
        return dnnl_memory_desc_get_size(&md)
    }
}
