/// The few hot loops oneDNN has no primitive for. Plain loops over raw pointers, written so the compiler
/// vectorises them; everything else goes through oneDNN.
public enum Kernels {
    /// a[i] += b[i]
    @inline(__always)
    public static func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    /// a[i] *= s
    @inline(__always)
    public static func scaleInPlace(_ a: UnsafeMutablePointer<Float>, _ s: Float, count: Int) {
        for i in 0..<count { a[i] *= s }
    }

    /// Sum of the rows of a (rows × cols) row-major matrix into `out` (cols), accumulated in Double.
    public static func columnSums(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        var acc = [Double](repeating: 0, count: cols)
        acc.withUnsafeMutableBufferPointer { s in
            for r in 0..<rows {
                let row = a + r * cols
                for c in 0..<cols { s[c] += Double(row[c]) }
            }
            for c in 0..<cols { out[c] = Float(s[c]) }
        }
    }
}

extension Kernels {
    /// One AdamW update over a parameter (see `AdamW` for the formula).
    /// Returns whether the parameter and both moments are finite everywhere after the update.
    public static func adamW(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                             _ v: UnsafeMutablePointer<Float>, count: Int, lr: Float, weightDecay: Float, beta1: Float,
                             beta2: Float, eps: Float, stepSize: Float, sqrtBiasCorrection2: Float) -> Bool {
        let decay = 1 - lr * weightDecay
        // x·0 is NaN exactly when x is ±inf or NaN, so one running sum tells whether everything stayed finite,
        // at the cost of three multiply-adds in a loop that is memory-bound anyway.
        var poison: Float = 0
        for i in 0..<count {
            let gi = g[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            p[i] = p[i] * decay - stepSize * m[i] / (v[i].squareRoot() / sqrtBiasCorrection2 + eps)
            poison += p[i] * 0 + m[i] * 0 + v[i] * 0
        }
        return poison == 0
    }
}

extension Kernels {
    /// a[i] ← (1 − m)·a[i] + m·s·b[i]: the momentum update of a running average (BatchNorm's running statistics,
    /// where s = n/(n − 1) turns a biased batch variance into the unbiased one PyTorch keeps).
    public static func momentumUpdate(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, momentum m: Float,
                                      scale s: Float = 1, count: Int) {
        for i in 0..<count { a[i] = (1 - m) * a[i] + m * s * b[i] }
    }
}

extension Kernels {
    /// Row-major element strides of `shape`.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
        return s
    }

    /// dst[i₀…iₙ] = src[i₀…iₙ] over every index of `shape`, each side addressed through its own element strides
    /// (a stride of 0 repeats an element). Permutes, broadcasts, slices and concatenates plain buffers; the last
    /// axis is copied with `update` when both of its strides are 1.
    public static func copyStrided(_ src: UnsafePointer<Float>, strides ss: [Int], _ dst: UnsafeMutablePointer<Float>,
                                   strides ds: [Int], shape: [Int]) {
        precondition(ss.count == shape.count && ds.count == shape.count, "copyStrided: strides \(ss), \(ds) for shape \(shape)")
        guard let inner = shape.last else { dst[0] = src[0]; return }
        let (si, di) = (ss[shape.count - 1], ds[shape.count - 1])
        let rows = shape.dropLast().reduce(1, *)
        // Rows (all but the last axis) split over the threads; each range starts from its first row's index.
        ComputeThreads.parallelRanges(rows, minimumPerThread: max(1, (1 << 15) / max(inner, 1))) { range in
            var index = [Int](repeating: 0, count: shape.count - 1)
            var (s, d) = (0, 0)
            var rest = range.lowerBound
            for axis in stride(from: index.count - 1, through: 0, by: -1) {
                index[axis] = rest % shape[axis]
                rest /= shape[axis]
                s += index[axis] * ss[axis]
                d += index[axis] * ds[axis]
            }
            for _ in range {
                if si == 1 && di == 1 {
                    (dst + d).update(from: src + s, count: inner)
                } else {
                    for j in 0..<inner { dst[d + j * di] = src[s + j * si] }
                }
                var axis = index.count - 1
                while axis >= 0 {
                    index[axis] += 1; s += ss[axis]; d += ds[axis]
                    if index[axis] < shape[axis] { break }
                    s -= ss[axis] * shape[axis]; d -= ds[axis] * shape[axis]; index[axis] = 0
                    axis -= 1
                }
            }
        }
    }

    /// Sums a plain (row-major) `shape` buffer down to `target` (same rank; each target dimension 1 or equal),
    /// accumulating in Double: the gradient of a broadcast.
    public static func sumToShape(_ src: UnsafePointer<Float>, shape: [Int], _ dst: UnsafeMutablePointer<Float>, target: [Int]) {
        precondition(shape.count == target.count && zip(shape, target).allSatisfy { $1 == $0 || $1 == 1 },
                     "sumToShape: \(shape) does not broadcast from \(target)")
        let plainTarget = strides(target)
        let ts = target.indices.map { target[$0] == 1 ? 0 : plainTarget[$0] }
        var acc = [Double](repeating: 0, count: target.reduce(1, *))
        acc.withUnsafeMutableBufferPointer { a in
            let inner = shape.last ?? 1, ti = ts.last ?? 0
            var index = [Int](repeating: 0, count: max(shape.count - 1, 0))
            var t = 0
            var s = 0
            for _ in 0..<shape.dropLast().reduce(1, *) {
                if ti == 0 {
                    var row = 0.0
                    for j in 0..<inner { row += Double(src[s + j]) }
                    a[t] += row
                } else {
                    for j in 0..<inner { a[t + j] += Double(src[s + j]) }
                }
                s += inner
                var axis = index.count - 1
                while axis >= 0 {
                    index[axis] += 1; t += ts[axis]
                    if index[axis] < shape[axis] { break }
                    t -= ts[axis] * shape[axis]; index[axis] = 0
                    axis -= 1
                }
            }
            for i in 0..<a.count { dst[i] = Float(a[i]) }
        }
    }

    /// Nearest-neighbour resampling of `planes` row-major (inH × inW) planes to (outH × outW) with precomputed
    /// source rows `iy` (outH) and columns `ix` (outW): y[p, oy, ox] = x[p, iy[oy], ix[ox]].
    public static func gatherNearest(_ x: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int, iy: [Int], ix: [Int],
                                     into y: UnsafeMutablePointer<Float>) {
        let (outH, outW) = (iy.count, ix.count)
        for p in 0..<planes {
            let src = x + p * inH * inW, dst = y + p * outH * outW
            for oy in 0..<outH {
                let row = src + iy[oy] * inW, out = dst + oy * outW
                for ox in 0..<outW { out[ox] = row[ix[ox]] }
            }
        }
    }

    /// The adjoint of `gatherNearest`: dx[p, iy[oy], ix[ox]] += dy[p, oy, ox], with dx zeroed first.
    public static func scatterNearest(_ dy: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int, iy: [Int], ix: [Int],
                                      into dx: UnsafeMutablePointer<Float>) {
        let (outH, outW) = (iy.count, ix.count)
        dx.update(repeating: 0, count: planes * inH * inW)
        for p in 0..<planes {
            let src = dy + p * outH * outW, dst = dx + p * inH * inW
            for oy in 0..<outH {
                let row = dst + iy[oy] * inW, g = src + oy * outW
                for ox in 0..<outW { row[ix[ox]] += g[ox] }
            }
        }
    }

    /// Softmax backward over rows of length n, from the saved output a: ds_j = s · a_j · (da_j − Σ_k da_k · a_k), the
    /// row sum accumulated in Double; rows over the compute threads.
    public static func softmaxBackwardRows(_ a: UnsafePointer<Float>, _ da: UnsafePointer<Float>, rows: Int, n: Int,
                                           scale: Float = 1, into ds: UnsafeMutablePointer<Float>) {
        ComputeThreads.parallelRanges(rows, minimumPerThread: max(1, (1 << 16) / max(n, 1))) { range in
            for r in range {
                let (ar, gr, out) = (a + r * n, da + r * n, ds + r * n)
                var dot = 0.0
                for j in 0..<n { dot += Double(ar[j]) * Double(gr[j]) }
                let d = Float(dot)
                if scale == 1 {
                    for j in 0..<n { out[j] = ar[j] * (gr[j] - d) }
                } else {
                    // The same two roundings as scaling the stored result afterwards.
                    for j in 0..<n { out[j] = (ar[j] * (gr[j] - d)) * scale }
                }
            }
        }
    }

    /// out[b, i] = (1/h) Σ_j x[b, j, i] for x of shape (batch, h, count): the mean over the middle axis (heads).
    /// Writes the plain `shape` buffer `src` permuted into `dst`: dst axis i is src axis `order[i]` (torch's
    /// `x.permute(order).contiguous()`).
    static func permute(_ src: UnsafeMutablePointer<Float>, _ shape: [Int], order: [Int], into dst: UnsafeMutablePointer<Float>) {
        let srcStrides = strides(shape)
        let outShape = order.map { shape[$0] }
        copyStrided(src, strides: order.map { srcStrides[$0] }, dst, strides: strides(outShape), shape: outShape)
    }

    public static func meanOverMiddleAxis(_ x: UnsafePointer<Float>, batch: Int, h: Int, count: Int,
                                          into out: UnsafeMutablePointer<Float>) {
        let divisor = Float(h)
        for b in 0..<batch {
            ComputeThreads.parallelRanges(count) { r in
                let dst = out + b * count + r.lowerBound, n = r.count
                dst.update(from: x + b * h * count + r.lowerBound, count: n)
                for j in 1..<max(h, 1) { addInPlace(dst, x + (b * h + j) * count + r.lowerBound, count: n) }
                for i in 0..<n { dst[i] /= divisor }
            }
        }
    }
}

extension Kernels {
    /// Bilinear resampling of `planes` row-major (inH × inW) planes with precomputed per-axis taps (rows: y0, y1,
    /// weights h0, h1; columns: x0, x1, weights w0, w1), evaluated as PyTorch's CPU kernel does:
    /// out = fma(h0, t0, h1·t1) with t0 = fma(w0, x[y0, x0], w1·x[y0, x1]), t1 likewise on row y1.
    public static func bilinear(_ x: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int,
                                rows: (i0: [Int], i1: [Int], l0: [Float], l1: [Float]),
                                cols: (i0: [Int], i1: [Int], l0: [Float], l1: [Float]), into y: UnsafeMutablePointer<Float>) {
        let (outH, outW) = (rows.i0.count, cols.i0.count)
        for p in 0..<planes {
            let src = x + p * inH * inW, dst = y + p * outH * outW
            for oy in 0..<outH {
                let r0 = src + rows.i0[oy] * inW, r1 = src + rows.i1[oy] * inW
                let (h0, h1) = (rows.l0[oy], rows.l1[oy])
                for ox in 0..<outW {
                    let (a, b, w0, w1) = (cols.i0[ox], cols.i1[ox], cols.l0[ox], cols.l1[ox])
                    let t0 = (w1 * r0[b]).addingProduct(w0, r0[a]), t1 = (w1 * r1[b]).addingProduct(w0, r1[a])
                    dst[oy * outW + ox] = (h1 * t1).addingProduct(h0, t0)
                }
            }
        }
    }

    /// The adjoint of `bilinear`: each dy[oy, ox] is added to its four taps with weights h·w (dx zeroed first).
    public static func bilinearBackward(_ dy: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int,
                                        rows: (i0: [Int], i1: [Int], l0: [Float], l1: [Float]),
                                        cols: (i0: [Int], i1: [Int], l0: [Float], l1: [Float]), into dx: UnsafeMutablePointer<Float>) {
        let (outH, outW) = (rows.i0.count, cols.i0.count)
        dx.update(repeating: 0, count: planes * inH * inW)
        for p in 0..<planes {
            let src = dy + p * outH * outW, dst = dx + p * inH * inW
            for oy in 0..<outH {
                let r0 = dst + rows.i0[oy] * inW, r1 = dst + rows.i1[oy] * inW
                let (h0, h1) = (rows.l0[oy], rows.l1[oy])
                for ox in 0..<outW {
                    let (a, b, w0, w1) = (cols.i0[ox], cols.i1[ox], cols.l0[ox], cols.l1[ox])
                    let g = src[oy * outW + ox]
                    r0[a] += h0 * w0 * g; r0[b] += h0 * w1 * g
                    r1[a] += h1 * w0 * g; r1[b] += h1 * w1 * g
                }
            }
        }
    }
}
