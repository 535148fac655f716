import CDNNL

/// A (B, C, …) activation stored as one contiguous chunk per (sample, block of `block` channels), channel lane
/// `index % block` within it: the plain layout (block 1) and oneDNN's layouts with one inner block, on the channels
/// (nChw8c, nChw16c). nil for any other layout.
struct ChannelChunks {
    let block: Int
    let channelBlocks: Int
    /// Floats per chunk: block × the spatial size.
    let chunk: Int

    init?(_ x: Tensor) {
        let md = x.desc
        guard x.shape.count >= 2, md.format_kind == dnnl_blocked, md.offset0 == 0 else { return nil }
        let blocking = md.format_desc.blocking
        let count = Int(blocking.inner_nblks)
        let index = withUnsafeBytes(of: blocking.inner_idxs) { Array($0.bindMemory(to: Int64.self).prefix(count)) }
        let size = withUnsafeBytes(of: blocking.inner_blks) { Array($0.bindMemory(to: Int64.self).prefix(count)) }
        switch (count, index.first) {
        case (0, _): block = 1
        case (1, 1): block = Int(size[0])
        default: return nil
        }
        let strides = withUnsafeBytes(of: blocking.strides) { $0.bindMemory(to: Int64.self).prefix(x.shape.count).map { Int($0) } }
        // Contiguous chunks: the spatial axes nest innermost-first from a stride of `block`, then channel blocks,
        // then samples.
        var expected = block
        for axis in stride(from: x.shape.count - 1, through: 2, by: -1) {
            guard strides[axis] == expected else { return nil }
            expected *= x.shape[axis]
        }
        chunk = expected
        channelBlocks = (x.shape[1] + block - 1) / block
        guard strides[1] == chunk, strides[0] == chunk * channelBlocks else { return nil }
    }
}

extension ChannelChunks {
    /// A 4-d descriptor of `shape` with the same channel blocking (plain, nChw8c or nChw16c): for a result that
    /// keeps its input's layout under a new shape.
    func desc(_ shape: [Int]) -> dnnl_memory_desc_t {
        precondition(shape.count == 4, "ChannelChunks.desc: 4-d shapes only, got \(shape)")
        let tag: dnnl_format_tag_t
        switch block {
        case 1: tag = dnnl_abcd
        case 8: tag = dnnl_aBcd8b
        case 16: tag = dnnl_aBcd16b
        default: preconditionFailure("ChannelChunks.desc: no format tag for channel blocks of \(block)")
        }
        var md = dnnl_memory_desc_t()
        dnnlCheck(dnnl_memory_desc_init_by_tag(&md, 4, shape.map { Int64($0) }, dnnl_f32, tag), "describe \(shape) in blocks of \(block)")
        return md
    }
}
