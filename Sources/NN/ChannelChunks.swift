import CDNNL

/// A (B, C, …) activation stored as one contiguous chunk per (sample, block of `block` channels), channel lane
/// `index % block` within it: the plain layout (block 1), oneDNN's layouts with one inner block on the channels
/// (nChw8c, nChw16c), and channels-last (NHWC: one block of all C channels per sample). nil for any other layout.
struct ChannelChunks {
    let block: Int
    let channelBlocks: Int
    /// Floats per chunk: block × the spatial size.
    let chunk: Int
    /// NHWC: the block is the whole channel axis, and its lanes are the channels themselves.
    let channelsLast: Bool

    init?(_ x: Tensor) {
        let md = x.desc
        guard x.shape.count >= 2, md.format_kind == dnnl_blocked, md.offset0 == 0 else { return nil }
        let blocking = md.format_desc.blocking
        let count = Int(blocking.inner_nblks)
        let index = withUnsafeBytes(of: blocking.inner_idxs) { Array($0.bindMemory(to: Int64.self).prefix(count)) }
        let size = withUnsafeBytes(of: blocking.inner_blks) { Array($0.bindMemory(to: Int64.self).prefix(count)) }
        let strides = withUnsafeBytes(of: blocking.strides) { $0.bindMemory(to: Int64.self).prefix(x.shape.count).map { Int($0) } }
        // Plain is tried before channels-last: where both fit (C = 1, or one pixel), they are the same order.
        switch (count, index.first) {
        case (0, _):
            if let plain = ChannelChunks(x.shape, strides, block: 1, channelsLast: false) { self = plain; return }
            guard x.shape.count >= 3, let last = ChannelChunks(x.shape, strides, block: x.shape[1], channelsLast: true) else { return nil }
            self = last
        case (1, 1):
            guard let blocked = ChannelChunks(x.shape, strides, block: Int(size[0]), channelsLast: false) else { return nil }
            self = blocked
        default: return nil
        }
    }

    /// The layout with these strides, if they are contiguous chunks: the spatial axes nest innermost-first from
    /// a stride of `block`, then channel blocks (stride 1 for channels-last: the lanes), then samples.
    private init?(_ shape: [Int], _ strides: [Int], block: Int, channelsLast: Bool) {
        var expected = block
        for axis in stride(from: shape.count - 1, through: 2, by: -1) {
            guard strides[axis] == expected else { return nil }
            expected *= shape[axis]
        }
        let blocks = (shape[1] + block - 1) / block
        guard strides[1] == (channelsLast ? 1 : expected), strides[0] == expected * blocks else { return nil }
        (self.block, self.channelBlocks, self.chunk, self.channelsLast) = (block, blocks, expected, channelsLast)
    }
}

extension ChannelChunks {
    /// A 4-d descriptor of `shape` with the same channel blocking (plain, nChw8c, nChw16c or NHWC): for a result that
    /// keeps its input's layout under a new shape.
    func desc(_ shape: [Int]) -> dnnl_memory_desc_t {
        precondition(shape.count == 4, "ChannelChunks.desc: 4-d shapes only, got \(shape)")
        let tag: dnnl_format_tag_t
        switch block {
        case _ where channelsLast: tag = dnnl_acdb
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
