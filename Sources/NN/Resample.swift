import CDNNL

/// How `interpolate` computes an output pixel (PyTorch's `mode` names).
///
/// - `bilinear`: PyTorch `mode='bilinear', align_corners=False`, no antialiasing (spec §0 "bilinear (half-pixel)").
///   Per axis with scale s = in/out (Float), the source coordinate of output index o is c = max((o + ½)·s − ½, 0);
///   i₀ = min(⌊c⌋, in − 1), i₁ = min(i₀ + 1, in − 1), λ = c − i₀, and y = (1 − λ)·x[i₀] + λ·x[i₁] along each axis
///   (2×2 taps). Downsampling uses the same two taps (no prefilter). Output is plain.
/// - `nearest`: PyTorch's default `mode='nearest'` (spec §0 "nearest (torch)"): source index
///   i = min(⌊o · s⌋, in − 1) with s = in/out computed in Float, as PyTorch does.
public enum InterpolationMode: String {
    case bilinear, nearest
}

/// Resizes the spatial axes of x (N, C, H, W) to (N, C, size.h, size.w), as PyTorch's
/// `F.interpolate(x, size=size, mode=mode)` (see `InterpolationMode` for the exact source coordinates).
///
/// - Nearest with an integer upsampling factor on both axes (FCUUp's ×dw, an identity included) runs on oneDNN's
///   resampling primitive in x's own layout (a blocked activation stays blocked): there oneDNN's rounding,
///   round((o + ½)·s − ½), picks the same pixel as PyTorch's ⌊o·s⌋. Any other ratio differs, so it runs as a
///   gather loop (`Kernels.gatherNearest`) on a plain copy.
/// - Bilinear runs as a loop on a plain copy (`Kernels.bilinear`) that evaluates PyTorch's CPU arithmetic
///   (Float scale in/out, coordinate fma(s, o + ½, −½), the taps combined with fmas). Against torch 2.13's CPU
///   kernel this was bit-identical at 512² → 224² and 37×53 → 512×500, and within 2 ulp on the small parity
///   fixtures (PyTorch combines the taps in another order there). oneDNN's linear resampling computes the
///   coordinate more exactly than PyTorch's rounded Float scale, so it misses PyTorch by 2e-6 at 16 → 7, 6e-6 at
///   40 → 17, and more as sizes grow.
///
/// Backward: dx = Aᵀ·dy for the (linear) resampling operator A: each output gradient goes back onto the taps that
/// produced it with the same weights (bilinear), or is added to its single source pixel (nearest).
public func interpolate(_ x: Tensor, size: (h: Int, w: Int), mode: InterpolationMode) -> Tensor {
    precondition(x.shape.count == 4, "interpolate: input \(x.shape) must be (N, C, H, W)")
    precondition(size.h > 0 && size.w > 0, "interpolate: output size \(size) must be positive (input \(x.shape))")
    let (inH, inW) = (x.shape[2], x.shape[3])
    switch mode {
    case .bilinear: return bilinearLoop(x, size: size)
    case .nearest where size.h % inH == 0 && size.w % inW == 0: return nearestOnDNNL(x, size: size)
    case .nearest: return nearestGather(x, size: size)
    }
}

/// Bilinear (half-pixel) resizing by a scale factor, as PyTorch's
/// `F.interpolate(x, scale_factor: f, mode: 'bilinear', align_corners: False)` with `recompute_scale_factor` unset
/// (deeplab-pytorch's MSC inputs at 0.5 and 0.75): the output is ⌊in · f⌋ per axis (in Double), and the source
/// coordinate uses the nominal s = Float(1/f), not in/out (spec §12 Q12; the two differ when in · f is not an
/// integer). Otherwise as `interpolate(_:size:mode: .bilinear)`, backward included.
public func interpolate(_ x: Tensor, scaleFactor f: Double) -> Tensor {
    precondition(x.shape.count == 4 && f > 0, "interpolate: input \(x.shape) must be (N, C, H, W) and the factor \(f) positive")
    let (inH, inW) = (x.shape[2], x.shape[3])
    let size = (h: Int((Double(inH) * f).rounded(.down)), w: Int((Double(inW) * f).rounded(.down)))
    precondition(size.h > 0 && size.w > 0, "interpolate: \(x.shape) scaled by \(f) is empty")
    let scale = Float(1 / f)
    let rows = bilinearTaps(input: inH, output: size.h, scale: scale), cols = bilinearTaps(input: inW, output: size.w, scale: scale)
    return planarResample(x, size: size,
                          forward: { Kernels.bilinear($0, planes: $2, inH: inH, inW: inW, rows: rows, cols: cols, into: $1) },
                          backward: { Kernels.bilinearBackward($0, planes: $2, inH: inH, inW: inW, rows: rows, cols: cols, into: $1) })
}

/// PyTorch's bilinear taps along one axis: for each output index o, c = max(fma(s, o + ½, −½), 0) with s = in/out
/// in Float (or the given `scale`, PyTorch's 1/scale_factor), i₀ = min(⌊c⌋, in − 1), i₁ = i₀ + [i₀ < in − 1],
/// l₁ = clamp(c − i₀, 0, 1), l₀ = 1 − l₁ (equal sizes copy: i₀ = i₁ = o, l₀ = 1).
public func bilinearTaps(input: Int, output: Int, scale given: Float? = nil) -> (i0: [Int], i1: [Int], l0: [Float], l1: [Float]) {
    if input == output { return (Array(0..<output), Array(0..<output), .init(repeating: 1, count: output), .init(repeating: 0, count: output)) }
    let scale = given ?? Float(input) / Float(output)
    var taps: (i0: [Int], i1: [Int], l0: [Float], l1: [Float]) = ([], [], [], [])
    for o in 0..<output {
        let c = max((-0.5 as Float).addingProduct(scale, Float(o) + 0.5), 0)
        let i0 = min(Int(c.rounded(.down)), input - 1)
        let l1 = min(max(c - Float(i0), 0), 1)
        taps.i0.append(i0); taps.i1.append(i0 + (i0 < input - 1 ? 1 : 0)); taps.l0.append(1 - l1); taps.l1.append(l1)
    }
    return taps
}

/// PyTorch's nearest source index for output index `o`: min(⌊o · (in/out)⌋, in − 1), the scale rounded to Float
/// first (with PyTorch's exact shortcuts for out = in and out = 2·in).
func nearestSourceIndex(_ o: Int, input: Int, output: Int) -> Int {
    if output == input { return o }
    if output == 2 * input { return o >> 1 }
    let scale = Float(input) / Float(output)
    return min(Int((Float(o) * scale).rounded(.down)), input - 1)
}

private func nearestOnDNNL(_ x: Tensor, size: (h: Int, w: Int)) -> Tensor {
    let yShape = [x.shape[0], x.shape[1], size.h, size.w]
    let algorithm = dnnl_resampling_nearest
    let training = Autograd.needsGrad(x)
    let shapes = "nearest\(x.shape)->\(yShape)\(x.layoutKey)"

    let forward = PrimitiveCache.primitive("resampling.fwd\(training)\(shapes)") {
        var src = x.desc, dst = MemoryDesc.any(yShape)
        var desc = dnnl_resampling_desc_t()
        // No explicit factors: oneDNN derives them from the shapes (out / in), as PyTorch does from `size`.
        dnnlCheck(dnnl_resampling_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                    algorithm, nil, &src, &dst), "describe resampling \(shapes)")
        return makePrimitiveDesc(&desc, "resampling \(shapes)")
    }
    let y = Tensor(shape: yShape, desc: forward.desc(DNNL_ARG_DST))
    forward.execute([(DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DST, y.storage.data)])

    guard training else { return y }
    Autograd.record(y) { [x = x.slot] dy in
        let backward = PrimitiveCache.primitive("resampling.bwd\(shapes)") {
            var diffSrc = x.desc, diffDst = forward.desc(DNNL_ARG_DST)
            var desc = dnnl_resampling_desc_t()
            dnnlCheck(dnnl_resampling_backward_desc_init(&desc, algorithm, nil, &diffSrc, &diffDst),
                      "describe resampling backward \(shapes)")
            return makePrimitiveDesc(&desc, "resampling backward \(shapes)", hint: forward.pd)
        }
        let diffDst = Reorder.ensure(dy, backward.desc(DNNL_ARG_DIFF_DST))
        let dx = Tensor(shape: x.shape, desc: backward.desc(DNNL_ARG_DIFF_SRC))
        backward.execute([(DNNL_ARG_DIFF_DST, diffDst.storage.data), (DNNL_ARG_DIFF_SRC, dx.storage.data)])
        x.accumulateGrad(dx)
    }
    return y
}

private func nearestGather(_ x: Tensor, size: (h: Int, w: Int)) -> Tensor {
    let (inH, inW) = (x.shape[2], x.shape[3])
    let iy = (0..<size.h).map { nearestSourceIndex($0, input: inH, output: size.h) }
    let ix = (0..<size.w).map { nearestSourceIndex($0, input: inW, output: size.w) }
    return planarResample(x, size: size,
                          forward: { Kernels.gatherNearest($0, planes: $2, inH: inH, inW: inW, iy: iy, ix: ix, into: $1) },
                          backward: { Kernels.scatterNearest($0, planes: $2, inH: inH, inW: inW, iy: iy, ix: ix, into: $1) })
}

private func bilinearLoop(_ x: Tensor, size: (h: Int, w: Int)) -> Tensor {
    let (inH, inW) = (x.shape[2], x.shape[3])
    let rows = bilinearTaps(input: inH, output: size.h), cols = bilinearTaps(input: inW, output: size.w)
    return planarResample(x, size: size,
                          forward: { Kernels.bilinear($0, planes: $2, inH: inH, inW: inW, rows: rows, cols: cols, into: $1) },
                          backward: { Kernels.bilinearBackward($0, planes: $2, inH: inH, inW: inW, rows: rows, cols: cols, into: $1) })
}

/// The plumbing of the resampling loops on plain (N, C, H, W) copies: `forward(src, dst, planes)` fills the output
/// from the input planes, `backward(dy, dx, planes)` applies the adjoint (each kernel loops over whole planes, so
/// the closures are called once per op).
private func planarResample(_ x: Tensor, size: (h: Int, w: Int),
                            forward: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                            backward: @escaping (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
    let x = x.plain()
    let planes = x.shape[0] * x.shape[1]
    let y = Tensor(shape: [x.shape[0], x.shape[1], size.h, size.w])
    withExtendedLifetime(x) { forward(x.storage.floats, y.storage.floats, planes) }
    guard Autograd.needsGrad(x) else { return y }
    Autograd.record(y) { [x = x.slot] dy in
        let dy = dy.plain()
        let dx = Tensor(shape: x.shape)
        withExtendedLifetime(dy) { backward(dy.storage.floats, dx.storage.floats, planes) }
        x.accumulateGrad(dx)
    }
    return y
}
