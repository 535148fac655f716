@testable import NN
import XCTest

/// Finite differences for DeepLab's new ops on shapes the PyTorch fixtures do not cover, and the edge rules:
/// ceil-mode sizes, scale-factor sizes, and the max's tie rule (the first input wins).
final class MSCOpsGradientTests: XCTestCase {
    override func tearDown() { Autograd.reset() }

    func tensor(_ shape: [Int], seed: UInt64) -> Tensor {
        Tensor(GradientCheck.random(shape, seed: seed), shape: shape, requiresGrad: true)
    }

    func testCeilModeMaxPoolSizesAndGradient() {
        // PyTorch's rule: ⌈(H + 2p − k)/s⌉ + 1, less one when the last window starts past H + p.
        for (h, expected) in [(5, 3), (6, 4), (7, 4), (8, 5), (161, 81), (160, 81), (2, 2), (1, 1)] {
            let y = maxPool2d(Tensor(shape: [1, 1, h, h]), kernel: 3, stride: 2, padding: 1, ceilMode: true)
            XCTAssertEqual(y.shape, [1, 1, expected, expected], "ceil-mode pooling of \(h)")
        }
        XCTAssertEqual(maxPool2d(Tensor(shape: [1, 1, 7, 7]), kernel: 2, stride: 2, ceilMode: true).shape, [1, 1, 4, 4])
        let x = tensor([1, 2, 7, 6], seed: 3)
        GradientCheck.check([x]) { maxPool2d(x, kernel: 3, stride: 2, padding: 1, ceilMode: true) }
    }

    func testScaleFactorSizesAndGradient() {
        XCTAssertEqual(interpolate(Tensor(shape: [1, 1, 321, 321]), scaleFactor: 0.75).shape, [1, 1, 240, 240])
        XCTAssertEqual(interpolate(Tensor(shape: [1, 1, 375, 500]), scaleFactor: 0.5).shape, [1, 1, 187, 250])
        let x = tensor([1, 2, 7, 9], seed: 4)
        GradientCheck.check([x]) { interpolate(x, scaleFactor: 0.75) }
    }

    func testMaximumGradientAndTies() {
        // b differs from a by at least 0.1 everywhere, so no finite-difference step crosses a kink.
        let a = tensor([2, 3, 4], seed: 5)
        let offsets = GradientCheck.random([24], seed: 6)
        let b = Tensor(zip(a.toArray(), offsets).map { $0 + ($1 < 0 ? -0.1 : 0.1) + $1 }, shape: [2, 3, 4], requiresGrad: true)
        GradientCheck.check([a, b]) { maximum([a, b]) }
        Autograd.reset()
        let p = Tensor([1, 2, 3], shape: [3], requiresGrad: true), q = Tensor([1, 5, 0], shape: [3], requiresGrad: true)
        let y = maximum([p, q])
        XCTAssertEqual(y.toArray(), [1, 5, 3])
        Autograd.backward(y, seed: Tensor([10, 20, 30], shape: [3]))
        XCTAssertEqual(p.grad?.toArray(), [10, 0, 30], "a tie goes to the first input")
        XCTAssertEqual(q.grad?.toArray(), [0, 20, 0])
    }
}
