import XCTest
import CDNNL
@testable import NN

/// Winograd 3×3 convolutions and the sub-grid (polyphase) form of dilated ones (Note [Winograd convolutions]):
/// the same values and gradients as the direct algorithm, and the algorithm actually used is the one asked for.
final class ConvAlgorithmTests: XCTestCase {
    override func tearDown() { ConvAlgorithm.preferred = .winograd }

    /// Forward output and the gradients of x, weight and bias for one algorithm, in plain layout.
    func run(_ algorithm: ConvAlgorithm, x: [Float], xShape: [Int], w: [Float], wShape: [Int], bias: [Float],
             geometry: ConvGeometry, blockedInput: Bool) -> [[Float]] {
        ConvAlgorithm.preferred = algorithm
        let xt = Tensor(x, shape: xShape, requiresGrad: true), wt = Tensor(w, shape: wShape, requiresGrad: true)
        let bt = Tensor(bias, shape: [wShape[0]], requiresGrad: true)
        // Inner layers receive blocked activations: a 1×1 convolution in training mode lays x out as they do.
        let input: Tensor
        if blockedInput {
            var eye = [Float](repeating: 0, count: xShape[1] * xShape[1])
            for c in 0..<xShape[1] { eye[c * xShape[1] + c] = 1 }
            input = conv2d(xt, weight: Tensor(eye, shape: [xShape[1], xShape[1], 1, 1]), bias: nil, geometry: ConvGeometry(kernel: 1))
            XCTAssertFalse(input.isPlain, "a 1×1 convolution in training mode gives a blocked layout")
        } else {
            input = xt
        }
        let y = conv2d(input, weight: wt, bias: bt, geometry: geometry)
        let seed = GradientCheck.random(y.shape, seed: 3)
        Autograd.backward(y, seed: Tensor(seed, shape: y.shape))
        return [y.toArray(), xt.grad!.toArray(), wt.grad!.toArray(), bt.grad!.toArray()]
    }

    /// How many elements differ (all of them when the lengths do): a failure message of one number.
    func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : max(a.count, b.count)
    }

    func assertClose(_ a: [[Float]], _ b: [[Float]], tolerance: Float, _ what: String) {
        for (k, name) in ["output", "dx", "dW", "db"].enumerated() {
            XCTAssertEqual(a[k].count, b[k].count, "\(what) \(name)")
            let scale = max(1, b[k].map(abs).max() ?? 1)
            let worst = zip(a[k], b[k]).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(what) \(name): worst difference \(worst), scale \(scale)")
        }
    }

    func testWinogradAndPolyphaseMatchTheDirectAlgorithm() {
        // (x shape, geometry): a plain 3×3, then dilated ones with sizes that d divides and that it does not.
        let cases: [([Int], ConvGeometry)] = [
            ([2, 32, 12, 10], ConvGeometry(kernel: 3, padding: 1)),
            ([2, 16, 12, 16], ConvGeometry(kernel: 3, padding: 2, dilation: 2)),
            ([1, 32, 13, 11], ConvGeometry(kernel: 3, padding: 2, dilation: 2)),
            ([2, 16, 19, 17], ConvGeometry(kernel: 3, padding: 4, dilation: 4)),
        ]
        for (i, (xShape, g)) in cases.enumerated() {
            let wShape = [32, xShape[1], 3, 3]
            let x = GradientCheck.random(xShape, seed: UInt64(40 + i)), w = GradientCheck.random(wShape, seed: UInt64(50 + i), scale: 0.2)
            let b = GradientCheck.random([32], seed: UInt64(60 + i))
            for blocked in [false, true] {
                let direct = run(.direct, x: x, xShape: xShape, w: w, wShape: wShape, bias: b, geometry: g, blockedInput: blocked)
                let winograd = run(.winograd, x: x, xShape: xShape, w: w, wShape: wShape, bias: b, geometry: g, blockedInput: blocked)
                assertClose(winograd, direct, tolerance: 2e-5, "case \(i) \(xShape) \(g) blocked \(blocked)")
            }
        }
    }

    func testWinogradIsTheImplementationAskedFor() {
        let g = ConvGeometry(kernel: 3, padding: 1)
        let wino = convForwardPrimitive([2, 32, 12, 12], [32, 32, 3, 3], bias: false, geometry: g, training: true,
                                        algorithm: dnnl_convolution_winograd)
        XCTAssertTrue(wino?.implementation.contains("wino") == true, "implementation \(wino?.implementation ?? "none")")
        let direct = convForwardPrimitive([2, 32, 12, 12], [32, 32, 3, 3], bias: false, geometry: g, training: true,
                                          algorithm: dnnl_convolution_direct)
        XCTAssertEqual(direct?.implementation.contains("wino"), false)
        // Shapes Winograd's kernel cannot take (a 5×5 kernel here) get nil, and conv2d runs the direct algorithm.
        XCTAssertNil(convForwardPrimitive([1, 32, 12, 12], [32, 32, 5, 5], bias: false, geometry: ConvGeometry(kernel: 5, padding: 2),
                                          training: true, algorithm: dnnl_convolution_winograd))
        let x = Tensor(GradientCheck.random([1, 32, 12, 12], seed: 1), shape: [1, 32, 12, 12])
        let w = Tensor(GradientCheck.random([32, 32, 5, 5], seed: 2), shape: [32, 32, 5, 5])
        XCTAssertEqual(conv2d(x, weight: w, bias: nil, geometry: ConvGeometry(kernel: 5, padding: 2)).shape, [1, 32, 12, 12])
    }

    func testSplitAndMergeAreExactInversesAndAdjoint() {
        for (shape, d) in [([2, 16, 9, 7], 2), ([1, 20, 10, 13], 4), ([1, 5, 6, 6], 3)] {
            let values = GradientCheck.random(shape, seed: 7)
            let x = Tensor(values, shape: shape)
            let split = polyphaseSplit(x, dilation: d)
            XCTAssertEqual(split.shape, [shape[0] * d * d, shape[1], (shape[2] + d - 1) / d, (shape[3] + d - 1) / d])
            // Sample (a·d + b)·N + n, row i, column j holds x[n, :, a + i·d, b + j·d].
            let s = split.toArray(), (sh, sw) = (split.shape[2], split.shape[3])
            let (a, b, i, j, c) = (d - 1, 1, 1, 1, shape[1] - 1)
            let (r, col) = (a + i * d, b + j * d)
            let expected = r < shape[2] && col < shape[3] ? values[(c * shape[2] + r) * shape[3] + col] : 0
            XCTAssertEqual(s[((((a * d + b) * shape[0]) * shape[1] + c) * sh + i) * sw + j], expected, "\(shape) d \(d)")
            let merged = polyphaseMerge(split, dilation: d, height: shape[2], width: shape[3])
            XCTAssertEqual(differing(merged.toArray(), values), 0, "merge(split(x)) == x for \(shape) d \(d): elements that differ")
            // ⟨split(x), r⟩ = ⟨x, merge(r)⟩: each is the other's backward.
            let seed = GradientCheck.random(split.shape, seed: 8)
            let adjoint = polyphaseMerge(Tensor(seed, shape: split.shape), dilation: d, height: shape[2], width: shape[3])
            let lhs = zip(s, seed).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let rhs = zip(values, adjoint.toArray()).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)), "adjoint for \(shape) d \(d)")
        }
    }

    /// NHWC (what oneDNN's inference kernels pick at batch 1) is one of ChannelChunks' layouts: the sub-grid
    /// gather and the blockwise per-channel product give on it what they give on the plain layout.
    func testChannelsLastLayout() {
        let shape = [2, 24, 7, 9]
        let x = Tensor(GradientCheck.random(shape, seed: 21), shape: shape)
        let nhwc = Reorder.convert(x, to: MemoryDesc.strided(shape, strides: [7 * 9 * 24, 1, 9 * 24, 24]))
        let layout = ChannelChunks(nhwc)
        XCTAssertEqual(layout?.channelsLast, true)
        XCTAssertEqual(layout?.block, 24)
        XCTAssertEqual(ChannelChunks(x)?.channelsLast, false)
        let split = polyphaseSplit(nhwc, dilation: 2)
        XCTAssertFalse(split.isPlain, "the split keeps NHWC")
        XCTAssertEqual(differing(split.toArray(), polyphaseSplit(x, dilation: 2).toArray()), 0, "split: elements that differ")
        XCTAssertEqual(differing(polyphaseMerge(split, dilation: 2, height: 7, width: 9).toArray(), x.toArray()), 0, "merge: elements that differ")
        let mask = Tensor(GradientCheck.random([2, 24, 1, 1], seed: 22), shape: [2, 24, 1, 1])
        let (values, factors) = (x.toArray(), mask.toArray())
        let expected = values.indices.map { i in values[i] * factors[i / (7 * 9)] }
        XCTAssertEqual(differing(Autograd.noGrad { mul(nhwc, mask) }.toArray(), expected), 0, "per-channel product: elements that differ")
    }

    func testPolyphaseGradientsAgainstFiniteDifferences() {
        ConvAlgorithm.preferred = .winograd
        let g = ConvGeometry(kernel: 3, padding: 2, dilation: 2)
        let x = Tensor(GradientCheck.random([1, 16, 9, 8], seed: 11), shape: [1, 16, 9, 8], requiresGrad: true)
        let w = Tensor(GradientCheck.random([16, 16, 3, 3], seed: 12, scale: 0.3), shape: [16, 16, 3, 3], requiresGrad: true)
        GradientCheck.check([x, w], tolerance: 5e-3) { conv2d(x, weight: w, bias: nil, geometry: g) }
    }
}
