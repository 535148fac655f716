import XCTest
@testable import NN

/// Finite-difference checks (and direct reference loops for the forward passes) of the resampling, broadcasting,
/// concatenation/slicing, dropout and attention ops, on small odd shapes.
final class AttentionResampleGradientTests: XCTestCase {
    func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        Tensor(GradientCheck.random(shape, seed: seed, scale: scale), shape: shape, requiresGrad: true)
    }

    /// PyTorch's half-pixel bilinear (align_corners=False) and floor-nearest, in Double, as a reference.
    func referenceResample(_ x: [Float], _ shape: [Int], _ oh: Int, _ ow: Int, _ mode: InterpolationMode) -> [Double] {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        func taps(_ o: Int, _ input: Int, _ output: Int) -> (Int, Int, Double) {
            let c = max((Double(o) + 0.5) * Double(input) / Double(output) - 0.5, 0)
            let i0 = min(Int(c), input - 1)
            return (i0, min(i0 + 1, input - 1), c - Double(i0))
        }
        func nearest(_ o: Int, _ input: Int, _ output: Int) -> Int { min(o * input / output, input - 1) }
        var y = [Double]()
        for p in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
            let at = { (iy: Int, ix: Int) in Double(x[(p * h + iy) * w + ix]) }
            if mode == .nearest {
                y.append(at(nearest(oy, h, oh), nearest(ox, w, ow)))
            } else {
                let (y0, y1, ly) = taps(oy, h, oh), (x0, x1, lx) = taps(ox, w, ow)
                y.append((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)))
            }
        } } }
        return y
    }

    func testInterpolateMatchesReferenceAndGradients() {
        let cases: [(InterpolationMode, [Int], (h: Int, w: Int))] = [
            (.bilinear, [2, 3, 5, 7], (9, 4)), (.bilinear, [1, 2, 8, 8], (3, 5)), (.bilinear, [1, 2, 16, 16], (7, 7)),
            (.nearest, [2, 3, 5, 7], (9, 4)), (.nearest, [1, 2, 8, 8], (3, 5)), (.nearest, [1, 2, 3, 4], (6, 12)),
            (.nearest, [1, 2, 2, 3], (8, 9)),
        ]
        for (i, (mode, shape, size)) in cases.enumerated() {
            let x = tensor(shape, seed: UInt64(40 + i))
            let y = Autograd.noGrad { interpolate(x, size: size, mode: mode) }
            XCTAssertEqual(y.shape, [shape[0], shape[1], size.h, size.w])
            let reference = referenceResample(x.toArray(), shape, size.h, size.w, mode)
            for (j, (a, r)) in zip(y.toArray(), reference).enumerated() {
                XCTAssertEqual(Double(a), r, accuracy: 1e-5, "\(mode) \(shape) → \(size), element \(j)")
            }
            GradientCheck.check([x]) { interpolate(x, size: size, mode: mode) }
        }
    }

    func testInterpolateKeepsBlockedLayoutAndPassesGradients() {
        let x = tensor([1, 4, 4, 5], seed: 1), w = tensor([16, 4, 1, 1], seed: 2, scale: 0.5)
        let g = ConvGeometry(kernel: 1)
        let features = Autograd.noGrad { conv2d(x, weight: w, bias: nil, geometry: g) }
        XCTAssertFalse(features.isPlain, "oneDNN chose a blocked layout for 16 channels")
        for mode in [InterpolationMode.nearest, .bilinear] {
            let up = Autograd.noGrad { interpolate(features, size: (8, 15), mode: mode) }
            // Nearest ×2, ×3 runs on oneDNN in the blocked layout; bilinear runs as a loop on a plain copy.
            XCTAssertEqual(up.isPlain, mode == .bilinear, "\(mode) resampling of a blocked tensor")
            let reference = referenceResample(features.toArray(), features.shape, 8, 15, mode)
            for (a, r) in zip(up.toArray(), reference) { XCTAssertEqual(Double(a), r, accuracy: 1e-5, "\(mode)") }
            GradientCheck.check([x, w]) { interpolate(conv2d(x, weight: w, bias: nil, geometry: g), size: (8, 15), mode: mode) }
        }
    }

    func testBroadcastingAddMulScaleExpand() {
        let cases: [([Int], [Int])] = [([2, 3, 4, 5], [2, 3, 4, 5]), ([2, 3, 4, 5], [1, 3, 1, 1]), ([2, 5, 6], [1, 5, 6]),
                                       ([2, 5, 6], [6]), ([6], [2, 5, 6]), ([2, 5, 6], [1, 1, 6])]
        for (i, (sa, sb)) in cases.enumerated() {
            let a = tensor(sa, seed: UInt64(60 + i)), b = tensor(sb, seed: UInt64(70 + i))
            let (av, bv) = (a.toArray(), b.toArray())
            let big = sa.count >= sb.count && sa.reduce(1, *) >= sb.reduce(1, *) ? sa : sb
            let sum = Autograd.noGrad { add(a, b) }, product = Autograd.noGrad { mul(a, b) }
            XCTAssertEqual(sum.shape, big)
            // Reference: index each operand by the output index modulo its broadcast dimensions.
            let outStrides = Kernels.strides(big)
            func element(_ values: [Float], _ shape: [Int], _ flat: Int) -> Float {
                let padded = [Int](repeating: 1, count: big.count - shape.count) + shape
                let strides = Kernels.strides(padded)
                var offset = 0
                for axis in big.indices where padded[axis] != 1 { offset += (flat / outStrides[axis] % big[axis]) * strides[axis] }
                return values[offset]
            }
            for (j, (s, p)) in zip(sum.toArray(), product.toArray()).enumerated() {
                XCTAssertEqual(s, element(av, sa, j) + element(bv, sb, j), "add \(sa) \(sb) element \(j)")
                XCTAssertEqual(p, element(av, sa, j) * element(bv, sb, j), "mul \(sa) \(sb) element \(j)")
            }
            GradientCheck.check([a, b]) { add(a, b) }
            GradientCheck.check([a, b]) { mul(a, b) }
        }
        let x = tensor([3, 7], seed: 80)
        XCTAssertEqual(Autograd.noGrad { scale(x, -0.25) }.toArray(), x.toArray().map { $0 * -0.25 })
        GradientCheck.check([x]) { scale(x, 0.125) }
        GradientCheck.check([x]) { mul(x, x) }
        GradientCheck.check([x]) { add(x, x) }
        let token = tensor([1, 1, 5], seed: 81)
        let expanded = Autograd.noGrad { expand(token, to: [3, 1, 5]) }
        XCTAssertEqual(expanded.toArray(), Array([[Float]](repeating: token.toArray(), count: 3).joined()))
        GradientCheck.check([token]) { expand(token, to: [3, 2, 5]) }
    }

    func testSameShapeAddOfBlockedTensorsKeepsLayout() {
        let x = tensor([2, 8, 5, 5], seed: 3)
        let w1 = tensor([16, 8, 1, 1], seed: 4, scale: 0.3), w2 = tensor([16, 8, 3, 3], seed: 5, scale: 0.2)
        let g = ConvGeometry(kernel: 3, padding: 1)
        let (a, b) = Autograd.noGrad { (conv2d(x, weight: w1, bias: nil, geometry: ConvGeometry(kernel: 1)),
                                        conv2d(x, weight: w2, bias: nil, geometry: g)) }
        XCTAssertFalse(a.isPlain)
        let sum = Autograd.noGrad { add(a, b) }
        XCTAssertTrue(MemoryDesc.equal(sum.desc, a.desc), "a residual sum keeps the blocked layout")
        XCTAssertEqual(sum.toArray(), zip(a.toArray(), b.toArray()).map { $0 + $1 })
        let mixed = Autograd.noGrad { add(a, b.plain()) }
        XCTAssertTrue(MemoryDesc.equal(mixed.desc, a.desc), "a plain addend is converted to the blocked layout")
        XCTAssertEqual(mixed.toArray(), sum.toArray())
        GradientCheck.check([x, w1, w2]) {
            add(conv2d(x, weight: w1, bias: nil, geometry: ConvGeometry(kernel: 1)), conv2d(x, weight: w2, bias: nil, geometry: g))
        }
    }

    func testConcatAndSlice() {
        let cls = tensor([2, 1, 6], seed: 90), patches = tensor([2, 4, 6], seed: 91)
        let tokens = Autograd.noGrad { concat([cls, patches], axis: 1) }
        XCTAssertEqual(tokens.shape, [2, 5, 6])
        let t = tokens.toArray(), c = cls.toArray(), p = patches.toArray()
        XCTAssertEqual(Array(t[0..<6]), Array(c[0..<6]))
        XCTAssertEqual(Array(t[6..<30]), Array(p[0..<24]))
        XCTAssertEqual(Array(t[30..<36]), Array(c[6..<12]))
        XCTAssertEqual(Autograd.noGrad { slice(tokens, axis: 1, range: 1..<5) }.toArray(), p)
        XCTAssertEqual(Autograd.noGrad { slice(tokens, axis: -2, range: 0..<1) }.toArray(), c)
        let x = tensor([3, 2, 7], seed: 92), y = tensor([3, 2, 2], seed: 93), z = tensor([1, 2, 7], seed: 94)
        GradientCheck.check([cls, patches]) { concat([cls, patches], axis: 1) }
        GradientCheck.check([x, y]) { concat([x, y], axis: -1) }
        GradientCheck.check([x, z]) { concat([x, z, x], axis: 0) }
        GradientCheck.check([x]) { slice(x, axis: 2, range: 2..<5) }
        // Splitting off the class token and putting it back is the identity, gradients included.
        GradientCheck.check([tokens]) {
            concat([slice(tokens, axis: 1, range: 0..<1), slice(tokens, axis: 1, range: 1..<5)], axis: 1)
        }
    }

    func testDropoutAndDropPath() {
        var rng = SeededRandom(seed: 7)
        let x = tensor([4, 50, 20], seed: 95)
        XCTAssertTrue(dropout(x, p: 0.3, training: false, rng: &rng) === x, "identity outside training")
        XCTAssertTrue(dropout(x, p: 0, training: true, rng: &rng) === x, "identity for p = 0")
        XCTAssertTrue(dropPath(x, p: 0.2, training: false, rng: &rng) === x)
        let y = Autograd.noGrad { dropout(x, p: 0.3, training: true, rng: &rng) }.toArray()
        let kept = zip(y, x.toArray()).filter { $0.0 != 0 }
        XCTAssertEqual(Double(kept.count) / Double(y.count), 0.7, accuracy: 0.03, "keep fraction 1 − p")
        for (out, v) in kept { XCTAssertEqual(out, v * (1 / 0.7), accuracy: 1e-6) }
        let samples = Autograd.noGrad { dropPath(tensor([64, 3, 2], seed: 96), p: 0.25, training: true, rng: &rng) }
        let source = tensor([64, 3, 2], seed: 96).toArray(), values = samples.toArray()
        var keptSamples = 0
        for b in 0..<64 {
            let out = Array(values[b * 6..<(b + 1) * 6]), v = Array(source[b * 6..<(b + 1) * 6])
            if out.allSatisfy({ $0 == 0 }) { continue }
            keptSamples += 1
            for (o, s) in zip(out, v) { XCTAssertEqual(o, s / 0.75, accuracy: 1e-6, "sample \(b) is kept whole") }
        }
        XCTAssertTrue((32...62).contains(keptSamples), "\(keptSamples) of 64 samples kept with p = 0.25")
        XCTAssertEqual(Autograd.noGrad { dropout(x, p: 1, training: true, rng: &rng) }.toArray().max(), 0)
        let small = tensor([3, 4, 5], seed: 97)
        let mask = (0..<60).map { $0 % 3 != 1 }
        GradientCheck.check([small]) { dropout(small, p: 0.4, keep: mask) }
        GradientCheck.check([small]) { dropPath(small, p: 0.4, keep: [true, false, true]) }
    }

    /// Channel dropout's (B, C, 1, 1) product runs blockwise (`blockwiseBinary`): on plain and channel-blocked
    /// activations (nChw16c, 20 channels: the last block half padding) it must equal the broadcast `mul` by the mask,
    /// forward and backward, in the input's layout.
    func testDropout2dOnPlainAndBlockedLayouts() {
        let plain = tensor([2, 20, 3, 5], seed: 100)
        let keep = (0..<40).map { $0 % 3 != 1 }
        let mask = Tensor(keep.map { $0 ? 1 / Float(0.6) : 0 }, shape: [2, 20, 1, 1])
        let seed = tensor([2, 20, 3, 5], seed: 101)
        var results: [(y: [Float], dx: [Float])] = []
        for (index, x) in [plain, nChw16c(plain), plain].enumerated() {
            x.requiresGrad = true
            x.grad = nil
            let y = index == 2 ? mul(x, mask) : dropout2d(x, p: 0.4, keep: keep)
            XCTAssertTrue(MemoryDesc.equal(y.desc, x.desc), "the output keeps the input's layout")
            Autograd.backward(y, seed: seed)
            results.append((y.plain().toArray(), x.grad!.plain().toArray()))
        }
        XCTAssertEqual(results[0].y, results[2].y, "plain forward against the broadcast product")
        XCTAssertEqual(results[0].dx, results[2].dx, "plain backward against the broadcast product")
        XCTAssertEqual(results[1].y, results[2].y, "blocked forward against the broadcast product")
        XCTAssertEqual(results[1].dx, results[2].dx, "blocked backward against the broadcast product")
        XCTAssertGreaterThan(results[0].y.filter { $0 == 0 }.count, 0, "some channels dropped")
        let values = plain.toArray(), factors = mask.toArray()
        XCTAssertEqual(results[0].y, values.indices.map { values[$0] * factors[$0 / 15] }, "y = x · mask[b, c]")
    }

    /// Drop path's per-sample product runs blockwise (`blockwiseBinary`); on a channel-blocked activation (nChw16c,
    /// channels not a multiple of 16) it must give, forward and backward, what it gives on the plain one, in the
    /// input's layout.
    func testDropPathOnABlockedLayout() {
        let plain = tensor([3, 20, 5, 4], seed: 98)
        let blocked = nChw16c(plain)
        XCTAssertFalse(blocked.isPlain, "the test needs a blocked input")
        XCTAssertNotNil(blockwiseBinary(.mul, blocked, Tensor([1, 0, 1], shape: [3, 1, 1, 1]), padded: [3, 1, 1, 1]),
                        "a per-sample product on nChw16c takes the blockwise path, not oneDNN's reference kernel")
        let keep = [true, false, true]
        let seed = tensor([3, 20, 5, 4], seed: 99)
        var results: [(y: [Float], dx: [Float])] = []
        for x in [plain, blocked] {
            x.requiresGrad = true
            x.grad = nil
            let y = dropPath(x, p: 0.3, keep: keep)
            XCTAssertTrue(MemoryDesc.equal(y.desc, x.desc), "the output keeps the input's layout")
            Autograd.backward(y, seed: seed)
            results.append((y.plain().toArray(), x.grad!.plain().toArray()))
        }
        XCTAssertEqual(results[1].y, results[0].y, "blocked forward")
        XCTAssertEqual(results[1].dx, results[0].dx, "blocked backward")
        let values = plain.toArray(), per = 20 * 5 * 4
        XCTAssertEqual(Array(results[0].y[per..<(2 * per)]), [Float](repeating: 0, count: per), "sample 1 dropped")
        XCTAssertEqual(Array(results[0].y[0..<per]), values[0..<per].map { $0 * (1 / 0.7) }, "sample 0 scaled by 1/(1 − p)")
    }

    /// Attention in Double, straight from the formula: (y, head-averaged A) for x (B, N, C).
    func referenceAttention(_ m: MultiHeadAttention, _ x: Tensor) -> (y: [Double], mean: [Double]) {
        let (b, n, c, h) = (x.shape[0], x.shape[1], x.shape[2], m.heads)
        let d = c / h
        let xs = x.toArray().map(Double.init), wq = m.qkv.weight.toArray().map(Double.init)
        let bq = m.qkv.bias?.toArray().map(Double.init) ?? [Double](repeating: 0, count: 3 * c)
        let wp = m.proj.weight.toArray().map(Double.init), bp = m.proj.bias?.toArray().map(Double.init) ?? []
        var y = [Double](), mean = [Double](repeating: 0, count: b * n * n)
        for s in 0..<b {
            let qkv = (0..<n).map { t in (0..<3 * c).map { o in (0..<c).reduce(bq[o]) { $0 + xs[(s * n + t) * c + $1] * wq[o * c + $1] } } }
            var o = [[Double]](repeating: [Double](repeating: 0, count: c), count: n)
            for head in 0..<h {
                for i in 0..<n {
                    let logits = (0..<n).map { j in (0..<d).reduce(0.0) { $0 + qkv[i][head * d + $1] * qkv[j][c + head * d + $1] } / Double(d).squareRoot() }
                    let top = logits.max() ?? 0
                    let e = logits.map { exp($0 - top) }, total = e.reduce(0, +)
                    for j in 0..<n {
                        mean[(s * n + i) * n + j] += e[j] / total / Double(h)
                        for f in 0..<d { o[i][head * d + f] += e[j] / total * qkv[j][2 * c + head * d + f] }
                    }
                }
            }
            for t in 0..<n { for out in 0..<c { y.append((0..<c).reduce(bp[out]) { $0 + o[t][$1] * wp[out * c + $1] }) } }
        }
        return (y, mean)
    }

    func testMultiHeadAttentionForwardSinkAndGradients() {
        for (i, (b, n, c, heads)) in [(2, 5, 6, 2), (1, 5, 12, 2), (2, 4, 9, 3)].enumerated() {
            var rng = SeededRandom(seed: UInt64(100 + i))
            let attention = MultiHeadAttention(dim: c, heads: heads, rng: &rng)
            // Larger weights than the 0.02 initialisation, so the softmax is far from uniform.
            for (k, (_, p)) in attention.namedParameters("").enumerated() {
                let values = GradientCheck.random(p.shape, seed: UInt64(110 + 10 * i + k), scale: 0.6)
                p.storage.floats.update(from: values, count: values.count)
            }
            XCTAssertEqual(attention.namedParameters("attn.").map(\.0),
                           ["attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias"])
            let x = tensor([b, n, c], seed: UInt64(120 + i), scale: 1.5)
            var sum: [Float]?
            let sink: (Tensor) -> Void = { map in
                XCTAssertEqual(map.shape, [b, n, n])
                let values = map.toArray()
                sum = sum.map { zip($0, values).map { $0 + $1 } } ?? values
            }
            let y = Autograd.noGrad { attention(attention(x, attentionSink: sink), attentionSink: sink) }
            XCTAssertEqual(y.shape, [b, n, c])
            let once = Autograd.noGrad { attention(x) }, reference = referenceAttention(attention, x)
            for (a, r) in zip(once.toArray(), reference.y) { XCTAssertEqual(Double(a), r, accuracy: 1e-5 * max(1, abs(r))) }
            // Two layers summed: every row of the accumulated map sums to 2.
            let total = sum ?? []
            XCTAssertEqual(total.count, b * n * n)
            for row in 0..<b * n {
                XCTAssertEqual(total[row * n..<(row + 1) * n].reduce(0, +), 2, accuracy: 1e-5)
            }
            var single: [Float] = []
            _ = Autograd.noGrad { attention(x) { single = $0.toArray() } }
            for (a, r) in zip(single, reference.mean) { XCTAssertEqual(Double(a), r, accuracy: 1e-6) }
            let parameters = attention.namedParameters("").map(\.1)
            GradientCheck.check([x] + parameters, eps: 5e-3) { attention(x) }
        }
    }
}
