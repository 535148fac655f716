import XCTest
@testable import NN

final class LayerGradientTests: XCTestCase {
    func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        Tensor(GradientCheck.random(shape, seed: seed, scale: scale), shape: shape, requiresGrad: true)
    }

    /// Direct Double convolution, the reference for the forward pass.
    func referenceConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ g: ConvGeometry) -> [Double] {
        let xs = x.toArray(), ws = w.toArray(), bs = b?.toArray()
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let out = g.outputSize(h, wd)
        var y = [Double](repeating: 0, count: n * o * out.h * out.w)
        for b0 in 0..<n { for oc in 0..<o { for oy in 0..<out.h { for ox in 0..<out.w {
            var acc = bs.map { Double($0[oc]) } ?? 0
            for ic in 0..<c { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * g.stride.h - g.padding.h + ky * g.dilation.h
                let ix = ox * g.stride.w - g.padding.w + kx * g.dilation.w
                guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                acc += Double(xs[((b0 * c + ic) * h + iy) * wd + ix]) * Double(ws[((oc * c + ic) * kh + ky) * kw + kx])
            } } }
            y[((b0 * o + oc) * out.h + oy) * out.w + ox] = acc
        } } } }
        return y
    }

    func testConv2dForwardAndGradients() {
        let cases: [(x: [Int], w: [Int], g: ConvGeometry, bias: Bool)] = [
            ([2, 3, 7, 6], [4, 3, 3, 3], ConvGeometry(kernel: 3, stride: 2, padding: 1), true),
            ([1, 5, 6, 5], [6, 5, 3, 3], ConvGeometry(kernel: 3, padding: 2, dilation: 2), false),
            ([2, 16, 4, 5], [32, 16, 1, 1], ConvGeometry(kernel: 1), true),
        ]
        for (i, c) in cases.enumerated() {
            let x = tensor(c.x, seed: UInt64(10 + i)), w = tensor(c.w, seed: UInt64(20 + i), scale: 0.5)
            let b = c.bias ? tensor([c.w[0]], seed: UInt64(30 + i)) : nil
            let y = Autograd.noGrad { conv2d(x, weight: w, bias: b, geometry: c.g) }
            let reference = referenceConv(x, w, b, c.g)
            for (a, r) in zip(y.toArray(), reference) { XCTAssertEqual(Double(a), r, accuracy: 1e-4 * max(1, abs(r)), "case \(i)") }
            GradientCheck.check([x, w] + (b.map { [$0] } ?? [])) { conv2d(x, weight: w, bias: b, geometry: c.g) }
        }
    }

    func testConvStackStaysBlockedAndCachesPrimitives() {
        var rng = SeededRandom(seed: 5)
        let a = Conv2d(16, 32, kernel: 3, padding: 1, rng: &rng), b = Conv2d(32, 32, kernel: 1, rng: &rng)
        let x = Tensor(GradientCheck.random([2, 16, 12, 12], seed: 1), shape: [2, 16, 12, 12])
        _ = Autograd.noGrad { b(relu(a(x))) }
        let reorders = Reorder.count, created = PrimitiveCache.created
        let y = Autograd.noGrad { b(relu(a(x))) }
        XCTAssertFalse(y.isPlain, "oneDNN chose a blocked layout for 32 channels")
        XCTAssertEqual(Reorder.count - reorders, 1, "only the plain model input is converted")
        XCTAssertEqual(PrimitiveCache.created, created, "the second pass creates no primitive")
        XCTAssertEqual(y.plain().shape, [2, 32, 12, 12])
    }

    func testLinearForwardAndGradients() {
        let x = tensor([2, 3, 7], seed: 1), w = tensor([5, 7], seed: 2), b = tensor([5], seed: 3)
        let y = Autograd.noGrad { linear(x, weight: w, bias: b) }
        XCTAssertEqual(y.shape, [2, 3, 5])
        let xs = x.toArray(), ws = w.toArray(), bs = b.toArray(), ys = y.toArray()
        for r in 0..<6 { for o in 0..<5 {
            let expected = (0..<7).reduce(Double(bs[o])) { $0 + Double(xs[r * 7 + $1]) * Double(ws[o * 7 + $1]) }
            XCTAssertEqual(Double(ys[r * 5 + o]), expected, accuracy: 1e-5)
        } }
        GradientCheck.check([x, w, b]) { linear(x, weight: w, bias: b) }
    }

    func testActivations() {
        // Values kept away from ReLU's kink so the central difference is exact.
        let values = GradientCheck.random([3, 40], seed: 4, scale: 3).map { abs($0) < 0.05 ? $0 + 0.2 : $0 }
        let x = Tensor(values, shape: [3, 40], requiresGrad: true)
        XCTAssertEqual(Autograd.noGrad { relu(x) }.toArray(), values.map { max($0, 0) })
        let g = Autograd.noGrad { gelu(x) }.toArray()
        for (v, out) in zip(values, g) {
            let exact = 0.5 * Double(v) * (1 + erf(Double(v) / 2.0.squareRoot()))
            XCTAssertEqual(Double(out), exact, accuracy: 1e-5)
        }
        GradientCheck.check([x]) { relu(x) }
        GradientCheck.check([x], eps: 1e-3) { gelu(x) }
    }

    func testMultilabelSoftMarginLoss() {
        let s = tensor([3, 5], seed: 8, scale: 4)
        let labels: [Float] = [1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0]
        let y = Tensor(labels, shape: [3, 5])
        let loss = Autograd.noGrad { multilabelSoftMarginLoss(s, y) }.toArray()[0]
        var expected = 0.0
        for (v, t) in zip(s.toArray(), labels) {
            let sig = 1 / (1 + exp(-Double(v)))
            expected -= Double(t) * log(sig) + (1 - Double(t)) * log(1 - sig)
        }
        XCTAssertEqual(Double(loss), expected / 15, accuracy: 1e-6)
        GradientCheck.check([s], eps: 1e-3) { multilabelSoftMarginLoss(s, y) }
        let big = Tensor([1000, -1000], shape: [1, 2])
        XCTAssertEqual(Autograd.noGrad { multilabelSoftMarginLoss(big, Tensor([1, 0], shape: [1, 2])) }.toArray()[0], 0, accuracy: 1e-6)
    }

    func testCrossEntropyWithIgnoredPixels() {
        let z = tensor([2, 4, 3, 2], seed: 9, scale: 2)
        var labels = (0..<12).map { Int32($0 % 4) }
        labels[2] = 255
        labels[7] = 255
        GradientCheck.check([z], eps: 1e-3) { crossEntropyLoss(z, labels: labels) }
        let allIgnored = Autograd.noGrad { crossEntropyLoss(z, labels: [Int32](repeating: 255, count: 12)) }
        XCTAssertEqual(allIgnored.toArray(), [0])
        // The sum form (the global-batch loss): the mean times the 10 counted pixels, and its gradient.
        GradientCheck.check([z], eps: 1e-3) { crossEntropyLoss(z, labels: labels, reduction: .sum) }
        let mean = Autograd.noGrad { crossEntropyLoss(z, labels: labels) }.toArray()[0]
        let sum = Autograd.noGrad { crossEntropyLoss(z, labels: labels, reduction: .sum) }.toArray()[0]
        XCTAssertEqual(sum, 10 * mean, accuracy: 1e-4 * abs(sum))
    }
}

extension LayerGradientTests {
    func testGradientsFlowThroughLayoutChangesAndReshapes() {
        var rng = SeededRandom(seed: 12)
        let w = Initializers.kaimingNormalFanOut([16, 4, 3, 3], rng: &rng)
        let x = tensor([2, 4, 5, 5], seed: 13)
        let head = tensor([3, 16 * 25], seed: 14, scale: 0.1)
        GradientCheck.check([x, w, head]) {
            let features = conv2d(x, weight: w, bias: nil, geometry: ConvGeometry(kernel: 3, padding: 1))
            return linear(features.plain().reshaped([2, 16 * 25]), weight: head, bias: nil)
        }
    }
}
