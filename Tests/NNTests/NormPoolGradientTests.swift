import CDNNL
import XCTest
@testable import NN

/// x (N, C, H, W) in oneDNN's blocked nChw16c layout, as a convolution stack hands it on; differentiable (the
/// gradient flows back to x). Shared with the parity tests.
func nChw16c(_ x: Tensor, file: StaticString = #filePath, line: UInt = #line) -> Tensor {
    var md = dnnl_memory_desc_t()
    let status = dnnl_memory_desc_init_by_tag(&md, 4, x.shape.map { Int64($0) }, dnnl_f32, dnnl_aBcd16b)
    XCTAssertEqual(status, dnnl_success, "describe \(x.shape) as nChw16c", file: file, line: line)
    let out = Reorder.convert(x, to: md)
    XCTAssertFalse(out.isPlain, "\(x.shape) in nChw16c is not plain", file: file, line: line)
    if Autograd.needsGrad(x) { Autograd.record(out) { dy in x.accumulateGrad(dy) } }
    return out
}

/// Forward values against direct Double references and backward against finite differences for LayerNorm,
/// softmax, BatchNorm2d (every mode) and the poolings, on odd shapes, plain and blocked (32 channels, nChw16c).
final class NormPoolGradientTests: XCTestCase {
    func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        Tensor(GradientCheck.random(shape, seed: seed, scale: scale).map { $0 + offset }, shape: shape, requiresGrad: true)
    }

    func blocked(_ x: Tensor) -> Tensor { nChw16c(x) }

    func assertClose(_ a: [Float], _ b: [Double], _ tol: Double, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        let scale = max(1, b.map(abs).max() ?? 0)
        let worst = zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tol * scale, "\(what): worst error \(worst)", line: line)
    }

    // MARK: LayerNorm and softmax

    func referenceLayerNorm(_ x: [Float], c: Int, _ w: [Float], _ b: [Float], eps: Double) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for r in 0..<(x.count / c) {
            let row = (0..<c).map { Double(x[r * c + $0]) }
            let mean = row.reduce(0, +) / Double(c)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
            for j in 0..<c { y[r * c + j] = (row[j] - mean) / (variance + eps).squareRoot() * Double(w[j]) + Double(b[j]) }
        }
        return y
    }

    func testLayerNormForwardAndGradients() {
        for (i, shape) in [[2, 5, 13], [3, 7], [4, 384]].enumerated() {
            let c = shape[shape.count - 1]
            let x = tensor(shape, seed: UInt64(40 + i), scale: 2, offset: 0.7)
            let w = tensor([c], seed: UInt64(50 + i), offset: 1), b = tensor([c], seed: UInt64(60 + i))
            let y = Autograd.noGrad { layerNorm(x, weight: w, bias: b, eps: 1e-6) }
            XCTAssertEqual(y.shape, shape)
            assertClose(y.toArray(), referenceLayerNorm(x.toArray(), c: c, w.toArray(), b.toArray(), eps: 1e-6), 1e-5, "layer norm \(shape)")
            if c < 100 { GradientCheck.check([x, w, b], eps: 1e-2) { layerNorm(x, weight: w, bias: b, eps: 1e-6) } }
        }
        let layer = LayerNorm(6, eps: 1e-6)
        XCTAssertEqual(layer.namedParameters("norm1.").map(\.0), ["norm1.weight", "norm1.bias"])
        XCTAssertEqual(layer.weight.toArray(), [Float](repeating: 1, count: 6))
        XCTAssertEqual(layer.bias.toArray(), [Float](repeating: 0, count: 6))
        let x = tensor([2, 6], seed: 3)
        GradientCheck.check([x, layer.weight, layer.bias]) { layer(blocked4(x)) }
    }

    /// A (2, 6) tensor seen as (2, 1, 1, 6) blocked and back: exercises layerNorm's conversion of a blocked input.
    func blocked4(_ x: Tensor) -> Tensor { blocked(x.reshaped([2, 1, 1, 6])).plain().reshaped([2, 6]) }

    func testSoftmaxForwardAndGradients() {
        let cases: [(shape: [Int], axis: Int, blocked: Bool)] = [([2, 3, 5, 7], -1, false), ([2, 3, 5, 7], 1, false),
                                                                 ([3, 11], 0, false), ([2, 32, 3, 3], 1, true)]
        for (i, c) in cases.enumerated() {
            let x = tensor(c.shape, seed: UInt64(70 + i), scale: 3)
            let input = { c.blocked ? self.blocked(x) : x }
            let y = Autograd.noGrad { softmax(input(), axis: c.axis) }
            XCTAssertEqual(y.isPlain, !c.blocked, "softmax keeps the input's layout")
            let a = c.axis < 0 ? c.axis + c.shape.count : c.axis
            let inner = c.shape[(a + 1)...].reduce(1, *), len = c.shape[a]
            let xs = x.toArray()
            var reference = [Double](repeating: 0, count: xs.count)
            for outer in 0..<(xs.count / (inner * len)) { for k in 0..<inner {
                let index = (0..<len).map { (outer * len + $0) * inner + k }
                let top = index.map { Double(xs[$0]) }.max() ?? 0
                let e = index.map { exp(Double(xs[$0]) - top) }
                let sum = e.reduce(0, +)
                for (j, at) in index.enumerated() { reference[at] = e[j] / sum }
            } }
            assertClose(y.toArray(), reference, 1e-6, "softmax case \(i)")
            GradientCheck.check([x], eps: 1e-3) { softmax(input(), axis: c.axis) }
        }
    }

    // MARK: BatchNorm2d

    func referenceBatchNorm(_ x: [Float], _ shape: [Int], _ w: [Float], _ b: [Float], mean: [Double]?, variance: [Double]?,
                            eps: Double) -> (y: [Double], mean: [Double], variance: [Double]) {
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
        var y = [Double](repeating: 0, count: x.count), means = [Double](), variances = [Double]()
        for ch in 0..<c {
            let index = (0..<n).flatMap { b0 in (0..<hw).map { (b0 * c + ch) * hw + $0 } }
            let values = index.map { Double(x[$0]) }
            let m = mean?[ch] ?? values.reduce(0, +) / Double(values.count)
            let v = variance?[ch] ?? values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count)
            means.append(m)
            variances.append(v)
            for (at, value) in zip(index, values) { y[at] = (value - m) / (v + eps).squareRoot() * Double(w[ch]) + Double(b[ch]) }
        }
        return (y, means, variances)
    }

    func makeBatchNorm(_ c: Int, eps: Float, seed: UInt64) -> BatchNorm2d {
        let bn = BatchNorm2d(c, eps: eps)
        let w = GradientCheck.random([c], seed: seed).map { $0 + 1 }, b = GradientCheck.random([c], seed: seed + 1)
        let rm = GradientCheck.random([c], seed: seed + 2), rv = GradientCheck.random([c], seed: seed + 3).map { $0 + 1.5 }
        for (t, v) in [(bn.weight, w), (bn.bias, b), (bn.runningMean, rm), (bn.runningVar, rv)] {
            for (j, value) in v.enumerated() { t.storage.floats[j] = value }
        }
        return bn
    }

    func testBatchNormGradientsInEveryMode() {
        let cases: [(shape: [Int], blocked: Bool, eps: Float)] = [([2, 5, 7, 3], false, 1e-6), ([2, 32, 3, 5], true, 1e-5)]
        for (i, c) in cases.enumerated() {
            let bn = makeBatchNorm(c.shape[1], eps: c.eps, seed: UInt64(80 + 10 * i))
            let x = tensor(c.shape, seed: UInt64(90 + i), scale: 2, offset: 0.3)
            let input = { c.blocked ? self.blocked(x) : x }
            for mode in [BatchNormMode.training, .inference, .frozen] {
                bn.mode = mode
                let stats = (mean: bn.runningMean.toArray().map(Double.init), variance: bn.runningVar.toArray().map(Double.init))
                let y = Autograd.noGrad { bn(input()) }
                XCTAssertEqual(y.isPlain, !c.blocked, "batch norm keeps the input's layout")
                let global = mode != .training
                let reference = referenceBatchNorm(x.toArray(), c.shape, bn.weight.toArray(), bn.bias.toArray(),
                                                   mean: global ? stats.mean : nil, variance: global ? stats.variance : nil,
                                                   eps: Double(c.eps))
                assertClose(y.toArray(), reference.y, 1e-5, "batch norm \(c.shape) \(mode)")
                bn.weight.grad = nil
                bn.bias.grad = nil
                let inputs = mode == .frozen ? [x] : [x, bn.weight, bn.bias]
                GradientCheck.check(inputs, eps: 1e-2) { bn(input()) }
                if mode == .frozen {
                    XCTAssertNil(bn.weight.grad, "frozen weight gets no gradient")
                    XCTAssertNil(bn.bias.grad, "frozen bias gets no gradient")
                }
            }
        }
    }

    /// `bn(x, relu: true)` (oneDNN's fused ReLU with its bit mask) against `relu(bn(x))` in every mode, plain and
    /// blocked: the same output, input and parameter gradients and running statistics. (The two ops are each
    /// checked against finite differences above; across the ReLU's kink finite differences are not reliable.)
    func testBatchNormFusedReLUEqualsTheTwoOps() {
        let cases: [(shape: [Int], blocked: Bool)] = [([2, 5, 7, 3], false), ([2, 32, 3, 5], true)]
        for (i, c) in cases.enumerated() {
            for mode in [BatchNormMode.training, .inference, .frozen] {
                var results: [[[Float]]] = []
                for fused in [false, true] {
                    let bn = makeBatchNorm(c.shape[1], eps: 1e-5, seed: UInt64(120 + 10 * i))
                    bn.mode = mode
                    let x = tensor(c.shape, seed: UInt64(130 + i), scale: 2, offset: 0.3)
                    x.requiresGrad = true
                    let input = c.blocked ? blocked(x) : x
                    let y = fused ? bn(input, relu: true) : relu(bn(input))
                    XCTAssertEqual(y.isPlain, !c.blocked, "fused batch norm keeps the input's layout")
                    Autograd.backward(y, seed: tensor(c.shape, seed: UInt64(140 + i)))
                    results.append([y.plain().toArray(), x.grad!.toArray(), bn.weight.grad?.toArray() ?? [],
                                    bn.bias.grad?.toArray() ?? [], bn.runningMean.toArray(), bn.runningVar.toArray()])
                }
                let what = "\(c.shape) \(c.blocked ? "blocked" : "plain") \(mode)"
                XCTAssertGreaterThan(results[1][0].filter { $0 == 0 }.count, 0, "\(what): the ReLU cuts something")
                for (k, name) in ["y", "dx", "dweight", "dbias", "running mean", "running var"].enumerated() {
                    assertClose(results[1][k], results[0][k].map(Double.init), 1e-6, "\(what): fused \(name)")
                }
            }
        }
    }

    func testBatchNormRunningStatistics() {
        let shape = [2, 5, 7, 3], n = 2.0 * 7 * 3, m = 0.1
        let bn = makeBatchNorm(5, eps: 1e-6, seed: 7)
        XCTAssertEqual(bn.namedParameters("bn1.").map(\.0), ["bn1.weight", "bn1.bias"])
        XCTAssertEqual(bn.namedBuffers("bn1.").map(\.0), ["bn1.running_mean", "bn1.running_var"])
        XCTAssertEqual(BatchNorm2d(3).runningVar.toArray(), [1, 1, 1])
        var expectedMean = bn.runningMean.toArray().map(Double.init), expectedVar = bn.runningVar.toArray().map(Double.init)
        for step in 1...2 {
            let x = tensor(shape, seed: UInt64(100 + step), scale: 2, offset: Float(step))
            let version = bn.runningMean.version
            _ = Autograd.noGrad { bn(x) }
            let batch = referenceBatchNorm(x.toArray(), shape, bn.weight.toArray(), bn.bias.toArray(), mean: nil, variance: nil, eps: 1e-6)
            expectedMean = zip(expectedMean, batch.mean).map { (1 - m) * $0 + m * $1 }
            expectedVar = zip(expectedVar, batch.variance).map { (1 - m) * $0 + m * $1 * n / (n - 1) }
            assertClose(bn.runningMean.toArray(), expectedMean, 1e-6, "running mean after step \(step)")
            assertClose(bn.runningVar.toArray(), expectedVar, 1e-6, "running var after step \(step)")
            XCTAssertEqual(bn.numBatchesTracked, step)
            XCTAssertGreaterThan(bn.runningMean.version, version, "the update marks the buffer changed")
        }
        let before = (bn.runningMean.toArray(), bn.runningVar.toArray())
        for mode in [BatchNormMode.inference, .frozen] {
            bn.mode = mode
            let x = tensor(shape, seed: 120, scale: 3)
            _ = bn(x)
            Autograd.reset()
            XCTAssertEqual(bn.runningMean.toArray(), before.0, "\(mode) leaves the running mean alone")
            XCTAssertEqual(bn.runningVar.toArray(), before.1, "\(mode) leaves the running variance alone")
            XCTAssertEqual(bn.numBatchesTracked, 2, "\(mode) does not count batches")
        }
    }

    // MARK: pooling

    /// Direct Double pooling (PyTorch floor mode, symmetric padding).
    func referencePool(_ x: [Float], _ shape: [Int], k: (Int, Int), s: Int, p: Int, kind: String) -> [Double] {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let oh = (h + 2 * p - k.0) / s + 1, ow = (w + 2 * p - k.1) / s + 1
        var y = [Double]()
        for plane in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var values = [Double]()
            for dy in 0..<k.0 { for dx in 0..<k.1 {
                let (r, q) = (i * s - p + dy, j * s - p + dx)
                if r >= 0, r < h, q >= 0, q < w { values.append(Double(x[(plane * h + r) * w + q])) }
            } }
            switch kind {
            case "max": y.append(values.max() ?? -.infinity)
            case "avg": y.append(values.reduce(0, +) / Double(k.0 * k.1))
            default: y.append(values.reduce(0, +) / Double(values.count))
            }
        } } }
        return y
    }

    /// Distinct values 0.05 apart in random order, so that a finite-difference step never changes an argmax.
    func distinct(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed: seed)
        var values = (0..<shape.reduce(1, *)).map { Float($0) * 0.05 - 1 }
        for i in stride(from: values.count - 1, to: 0, by: -1) { values.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return Tensor(values, shape: shape, requiresGrad: true)
    }

    func testPoolingForwardAndGradients() {
        let cases: [(shape: [Int], k: Int, s: Int, p: Int, kind: String, blocked: Bool)] = [
            ([2, 3, 9, 7], 3, 2, 1, "max", false), ([1, 32, 6, 5], 3, 2, 1, "max", true), ([2, 3, 8, 6], 2, 2, 0, "max", false),
            ([2, 3, 9, 7], 3, 2, 1, "avg", false), ([2, 3, 9, 7], 3, 2, 1, "avgx", false),
            ([2, 5, 7, 5], 2, 2, 0, "avg", false), ([1, 32, 8, 8], 4, 4, 0, "avg", true),
        ]
        for (i, c) in cases.enumerated() {
            let x = c.kind == "max" ? distinct(c.shape, seed: UInt64(130 + i)) : tensor(c.shape, seed: UInt64(130 + i))
            let input = { c.blocked ? self.blocked(x) : x }
            let op = { () -> Tensor in
                c.kind == "max" ? maxPool2d(input(), kernel: c.k, stride: c.s, padding: c.p)
                    : avgPool2d(input(), kernel: c.k, stride: c.s, padding: c.p, countIncludePad: c.kind == "avg")
            }
            let y = Autograd.noGrad { op() }
            XCTAssertEqual(y.isPlain, !c.blocked, "pooling keeps the input's layout")
            let reference = referencePool(x.toArray(), c.shape, k: (c.k, c.k), s: c.s, p: c.p, kind: c.kind)
            XCTAssertEqual(y.shape, [c.shape[0], c.shape[1], (c.shape[2] + 2 * c.p - c.k) / c.s + 1, (c.shape[3] + 2 * c.p - c.k) / c.s + 1])
            assertClose(y.toArray(), reference, 1e-6, "\(c.kind) pool case \(i)")
            GradientCheck.check([x], eps: 1e-2) { op() }
        }
    }

    func testGlobalAveragePool() {
        for (i, c) in [(shape: [2, 5, 7, 3], blocked: false), (shape: [2, 32, 3, 5], blocked: true)].enumerated() {
            let x = tensor(c.shape, seed: UInt64(150 + i), scale: 2)
            let input = { c.blocked ? self.blocked(x) : x }
            let y = Autograd.noGrad { globalAveragePool(input()) }
            XCTAssertEqual(y.shape, [c.shape[0], c.shape[1]])
            XCTAssertTrue(y.isPlain)
            let reference = referencePool(x.toArray(), c.shape, k: (c.shape[2], c.shape[3]), s: 1, p: 0, kind: "avg")
            assertClose(y.toArray(), reference, 1e-6, "global average pool \(c.shape)")
            GradientCheck.check([x]) { globalAveragePool(input()) }
        }
    }
}
