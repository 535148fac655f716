import CDNNL

/// Dilated 3×3 convolutions as ordinary 3×3 convolutions on interleaved sub-grids, so that Winograd's algorithm
/// runs them (Note [Winograd convolutions] in `ConvAlgorithm.swift`).
///
/// With stride 1 and padding = dilation d, output pixel (r, c) reads input rows r + (k − 1)·d and columns
/// c + (k − 1)·d only: pixels of one phase (r mod d, c mod d). Phase (a, b)'s sub-grid `x[a + i·d, b + j·d]`,
/// zero-extended to ⌈H/d⌉ × ⌈W/d⌉, convolved with the same weights at dilation 1 and padding 1, gives exactly
/// the output pixels of that phase (the zero extension stands where the dilated convolution reads its zero
/// padding). The d² sub-grids go into the batch axis (sample (a·d + b)·N + n), one convolution runs them all,
/// and the results are scattered back (`convolve(…, phases: d)`). The gather and the scatter are each other's
/// adjoint, so each one's backward is the other.
///
/// nil when this does not apply or would not pay: inference, another algorithm is preferred, another geometry, a layout
/// other than plain, one channel block or NHWC, sub-grids under `minimumSubgrid` pixels a side (Winograd computes
/// 4 × 4 output tiles, so tiny grids are mostly padding), or no Winograd kernel for the sub-grid convolution.
func polyphaseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, flops: Double) -> Tensor? {
    let d = g.dilation.h
    guard ConvAlgorithm.preferred == .winograd, g.kernel == (3, 3), g.stride == (1, 1), d > 1, g.dilation.w == d,
          g.padding == g.dilation, ChannelChunks(x) != nil else { return nil }
    let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
    let (subH, subW) = ((h + d - 1) / d, (w + d - 1) / d)
    guard min(subH, subW) >= minimumSubgrid else { return nil }
    let inner = ConvGeometry(kernel: 3, padding: 1)
    // Training only, as every Winograd convolution (Note [Winograd convolutions]).
    guard Autograd.isRecording, [x, weight, bias].contains(where: { $0?.requiresGrad == true }),
          convForwardPrimitive([n * d * d, x.shape[1], subH, subW], weight.shape, bias: bias != nil, geometry: inner,
                               training: true, algorithm: dnnl_convolution_winograd) != nil else { return nil }
    return convolve(x, weight: weight, bias: bias, geometry: inner, flops: flops, phases: d)
}

/// The shape `polyphaseSplit` gives an (N, C, H, W) input.
func polyphaseShape(_ shape: [Int], dilation d: Int) -> [Int] {
    [d * d * shape[0], shape[1], (shape[2] + d - 1) / d, (shape[3] + d - 1) / d]
}

/// Sub-grids narrower than this run as dilated convolutions. DeepLab's layer4 at crop 321 (d 4: 11 × 11
/// sub-grids) ran 1.7× faster than the dilated convolution; below 4 a side most of each tile is padding.
private let minimumSubgrid = 4

/// (N, C, H, W) → (d²·N, C, ⌈H/d⌉, ⌈W/d⌉): sample (a·d + b)·N + n holds x[n, :, a + i·d, b + j·d], zero past
/// the edge. Keeps x's layout (plain, blocked channels or NHWC). Records no gradient (`convolve` does).
func polyphaseSplit(_ x: Tensor, dilation d: Int) -> Tensor {
    guard let layout = ChannelChunks(x) else { return polyphaseSplit(x.plain(), dilation: d) }
    let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
    let shape = polyphaseShape(x.shape, dilation: d)
    let (subH, subW) = (shape[2], shape[3])
    let out = Tensor(shape: shape, desc: layout.desc(shape))
    let (src, dst, block, blocks) = (x.storage.floats, out.storage.floats, layout.block, layout.channelBlocks)
    // One task per output row, so that one image in NHWC (a single chunk) still spreads over the threads.
    ComputeThreads.parallelRanges(d * d * n * blocks * subH, minimumPerThread: 8) { range in
        for task in range {
            let (chunk, i) = (task / subH, task % subH)
            let (sample, cb) = (chunk / blocks, chunk % blocks)
            let (phase, image) = (sample / n, sample % n)
            let (a, b) = (phase / d, phase % d)
            let (r, from) = (a + i * d, src + (image * blocks + cb) * layout.chunk)
            var to = dst + task * subW * block
            for j in 0..<subW {
                let col = b + j * d
                if r < h && col < w { to.update(from: from + (r * w + col) * block, count: block) } else { to.update(repeating: 0, count: block) }
                to += block
            }
        }
    }
    return withExtendedLifetime(x) { out }
}

/// The inverse of `polyphaseSplit`: (d²·N, C, ⌈H/d⌉, ⌈W/d⌉) → (N, C, H, W), dropping the zero extension. Keeps
/// y's layout. Records no gradient.
func polyphaseMerge(_ y: Tensor, dilation d: Int, height h: Int, width w: Int) -> Tensor {
    guard let layout = ChannelChunks(y) else { return polyphaseMerge(y.plain(), dilation: d, height: h, width: w) }
    let (n, c, subH, subW) = (y.shape[0] / (d * d), y.shape[1], y.shape[2], y.shape[3])
    precondition(n * d * d == y.shape[0] && subH == (h + d - 1) / d && subW == (w + d - 1) / d,
                 "polyphaseMerge: \(y.shape) is not the d = \(d) split of \(h)×\(w)")
    let shape = [n, c, h, w]
    let out = Tensor(shape: shape, desc: layout.desc(shape))
    let (src, dst, block, blocks) = (y.storage.floats, out.storage.floats, layout.block, layout.channelBlocks)
    let subChunk = subH * subW * block
    ComputeThreads.parallelRanges(n * blocks * h, minimumPerThread: 8) { range in
        for task in range {
            let (chunk, r) = (task / h, task % h)
            let (image, cb) = (chunk / blocks, chunk % blocks)
            let (a, i) = (r % d, r / d)
            var to = dst + task * w * block
            for col in 0..<w {
                let sample = (a * d + col % d) * n + image
                to.update(from: src + (sample * blocks + cb) * subChunk + (i * subW + col / d) * block, count: block)
                to += block
            }
        }
    }
    return withExtendedLifetime(y) { out }
}
