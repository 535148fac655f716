import CDNNL

/// 2-d max pooling, as PyTorch's `F.max_pool2d(x, kernel, stride, padding)` (floor mode, no dilation).
///
/// Shapes: x (N, C, H, W) in any layout, y (N, C, H', W') in the layout oneDNN picks (x's), with
/// H' = ⌊(H + 2p − k)/s⌋ + 1 (likewise W'). y[n, c, i, j] = max over the window rows s·i − p ..< s·i − p + k
/// (columns likewise) that fall inside x: padding never wins a max (it counts as −∞).
///
/// Backward: each dy[n, c, i, j] goes to the position of its window's maximum (kept in the workspace that the
/// training forward pass writes), and contributions of overlapping windows add up.
///
/// `ceilMode` is PyTorch's `ceil_mode=True` (deeplab-pytorch's stem): H' = ⌈(H + 2p − k)/s⌉ + 1, less one when the
/// last window would start at or past H + p (it must start inside the input or the left padding). The extra
/// windows reach into padding on the bottom/right only, which oneDNN takes as a larger right padding; padding
/// still never wins a max.
public func maxPool2d(_ x: Tensor, kernel: Int, stride: Int, padding: Int = 0, ceilMode: Bool = false) -> Tensor {
    let g = ConvGeometry(kernel: kernel, stride: stride, padding: padding)
    guard ceilMode, x.shape.count == 4 else { return pool2d(x, dnnl_pooling_max, g, "max") }
    // The right padding that makes oneDNN's floor rule give PyTorch's ceil-mode size.
    func rightPadding(_ input: Int) -> Int {
        var out = (input + 2 * padding - kernel + stride - 1) / stride + 1
        if (out - 1) * stride >= input + padding { out -= 1 }
        return (out - 1) * stride + kernel - input - padding
    }
    return pool2d(x, dnnl_pooling_max, g, "max", rightPadding: (rightPadding(x.shape[2]), rightPadding(x.shape[3])))
}

/// 2-d average pooling, as PyTorch's `F.avg_pool2d(x, kernel, stride, padding, count_include_pad:)` (floor mode).
///
/// Shapes as `maxPool2d`; `stride` defaults to `kernel` as in PyTorch. Each output is the sum of its window's
/// values inside x divided by k² when `countIncludePad` (PyTorch's default; in floor mode a window never reaches
/// past the padding, so this is PyTorch's divisor too), or by the number of window positions inside x otherwise.
///
/// Backward: each dy[n, c, i, j], divided by the same divisor, is added to every position of its window inside x.
public func avgPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
    pool2d(x, countIncludePad ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding,
           ConvGeometry(kernel: kernel, stride: stride ?? kernel, padding: padding), countIncludePad ? "avg" : "avgx")
}

/// Spatial mean of each channel, as `x.mean(dim: (2, 3))`: x (N, C, H, W) in any layout → y (N, C), plain.
///
/// y[n, c] = (1/(H·W)) Σ_{h,w} x[n, c, h, w]; backward: dx[n, c, h, w] = dy[n, c] / (H·W).
/// Runs as an average pooling whose window is the whole image, then converts the (N, C, 1, 1) result to plain.
public func globalAveragePool(_ x: Tensor) -> Tensor {
    precondition(x.shape.count == 4, "globalAveragePool: input \(x.shape) is not (N, C, H, W)")
    var g = ConvGeometry(kernel: 1)
    g.kernel = (x.shape[2], x.shape[3])
    let pooled = pool2d(x, dnnl_pooling_avg_include_padding, g, "avg")
    return pooled.plain().reshaped([x.shape[0], x.shape[1]])
}

/// Pooling forward and backward through oneDNN's pooling primitives; y and dx keep x's layout.
/// `rightPadding` replaces g's padding on the bottom/right (ceil mode); the output size follows from both sides.
func pool2d(_ x: Tensor, _ algorithm: dnnl_alg_kind_t, _ g: ConvGeometry, _ name: String,
            rightPadding: (h: Int, w: Int)? = nil) -> Tensor {
    precondition(x.shape.count == 4, "\(name)Pool2d: input \(x.shape) is not (N, C, H, W)")
    precondition(g.kernel.h > 0 && g.kernel.w > 0 && g.stride.h > 0 && g.stride.w > 0 && g.padding.h >= 0 && g.padding.w >= 0,
                 "\(name)Pool2d: invalid geometry \(g)")
    // PyTorch's rule; it also keeps every window partly inside x, so no average divides by zero.
    precondition(2 * g.padding.h <= g.kernel.h && 2 * g.padding.w <= g.kernel.w,
                 "\(name)Pool2d: padding must be at most half the kernel, got \(g)")
    let right = rightPadding ?? g.padding
    precondition(right.h >= 0 && right.w >= 0, "\(name)Pool2d: negative right padding \(right) for \(x.shape) \(g)")
    let out = (h: (x.shape[2] + g.padding.h + right.h - g.kernel.h) / g.stride.h + 1,
               w: (x.shape[3] + g.padding.w + right.w - g.kernel.w) / g.stride.w + 1)
    let paddingsRight = [Int64(right.h), Int64(right.w)]
    precondition(out.h > 0 && out.w > 0, "\(name)Pool2d: input \(x.shape) is too small for \(g)")
    let yShape = [x.shape[0], x.shape[1], out.h, out.w]
    let training = Autograd.needsGrad(x)
    let kernel = [Int64(g.kernel.h), Int64(g.kernel.w)]
    // Symmetric padding unless ceil mode: with floor rounding the last window ends at most p past the input, as in PyTorch.
    let shapes = "\(name)\(x.shape)\(g)r\(paddingsRight)\(x.layoutKey)"

    let forward = PrimitiveCache.primitive("pool.fwd\(training)\(shapes)") {
        var src = x.desc, dst = MemoryDesc.any(yShape)
        var desc = dnnl_pooling_desc_t()
        dnnlCheck(dnnl_pooling_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference, algorithm,
                                                 &src, &dst, g.strides, kernel, g.paddings, paddingsRight),
                  "describe \(name) pooling \(x.shape) \(g)")
        return makePrimitiveDesc(&desc, "\(name) pooling \(shapes)")
    }
    let y = Tensor(shape: yShape, desc: forward.desc(DNNL_ARG_DST))
    var args: [(Int32, UnsafeMutableRawPointer)] = [(DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DST, y.storage.data)]
    // Max pooling in training records where each maximum came from; average pooling needs no workspace.
    let workspaceBytes = training ? MemoryDesc.byteCount(forward.desc(DNNL_ARG_WORKSPACE)) : 0
    let workspace = workspaceBytes > 0 ? TensorStorage(byteCount: workspaceBytes) : nil
    if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace.data)) }
    forward.execute(args)

    guard training else { return y }
    Autograd.record(y) { [x = x.slot, yDesc = y.desc] dy in
        let backward = PrimitiveCache.primitive("pool.bwd\(shapes)") {
            var diffSrc = x.desc, diffDst = yDesc
            var desc = dnnl_pooling_desc_t()
            dnnlCheck(dnnl_pooling_backward_desc_init(&desc, algorithm, &diffSrc, &diffDst, g.strides, kernel,
                                                      g.paddings, paddingsRight),
                      "describe \(name) pooling backward \(x.shape) \(g)")
            return makePrimitiveDesc(&desc, "\(name) pooling backward \(shapes)", hint: forward.pd)
        }
        let dy = Reorder.ensure(dy, yDesc)
        let dx = Tensor(shape: x.shape, desc: x.desc)
        var args: [(Int32, UnsafeMutableRawPointer)] = [(DNNL_ARG_DIFF_DST, dy.storage.data), (DNNL_ARG_DIFF_SRC, dx.storage.data)]
        if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace.data)) }
        backward.execute(args)
        x.accumulateGrad(dx)
    }
    return y
}
