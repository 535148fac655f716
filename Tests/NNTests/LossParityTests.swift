import Foundation
import XCTest
@testable import NN

/// ReLU, the two losses and permute against PyTorch 2.13 (CPU), from the fixtures that
/// scripts/fixtures/make_loss_fixtures.py writes to Fixtures/ops3; plus a finite-difference check of permute.
///
/// Every op runs on PyTorch's inputs and backward is seeded with the case's `dy`. Per tensor:
/// |a − b| ≤ tol · max(1, max |b|), tol = 1e-5 forward and 1e-4 backward. The losses' gradients are O(1/(B·C)), far
/// below 1, so they are also held to 1e-4 of their own scale (max |b|). A missing fixture file, case, dataset or
/// attribute throws, which fails the test.
final class LossParityTests: ParityTestCase {
    override class var fixtureFolder: String { "ops3" }

    /// Allocates and NaN-fills buffers of the sizes a loss may keep for backward, between forward and backward (as a
    /// training step allocates in between): the pool hands a released buffer to the next request of its size, so a
    /// backward that reads a buffer whose tensor it did not keep alive sees NaN here, deterministically.
    func scribble(_ shape: [Int]) {
        for s in [shape, [1]] { _ = Tensor.filled(.nan, shape: s) }
    }

    func testReLUMatchesPyTorch() throws {
        let file = try open("relu.h5")
        for (group, blocked) in [("nchw", false), ("nchw", true), ("rows", false)] {
            let c = Case(file: file, group: group)
            let x = try c.tensor("x")
            let input = blocked ? nChw16c(x) : x
            let y = relu(input)
            XCTAssertEqual(y.isPlain, !blocked, "\(group): ReLU keeps the input's layout")
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(x.grad, "dx", tolerance: Self.backwardTolerance)
            // At the kink (x = ±0) PyTorch's gradient is exactly 0; so must ours be.
            let xs = x.toArray(), dx = try XCTUnwrap(x.grad).toArray()
            let zeros = xs.indices.filter { xs[$0] == 0 }
            XCTAssertFalse(zeros.isEmpty, "\(group): the fixture plants exact zeros")
            for i in zeros { XCTAssertEqual(dx[i], 0, "\(group): dx at x = 0 (element \(i))") }
            note(blocked ? "relu (nChw16c)" : "relu", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    func testMultilabelSoftMarginLossMatchesPyTorch() throws {
        let file = try open("multilabel_soft_margin.h5")
        for group in ["hard", "large", "large_right", "soft", "single"] {
            let c = Case(file: file, group: group)
            let logits = try c.tensor("logits"), targets = try c.tensor("targets", grad: false)
            let y = multilabelSoftMarginLoss(logits, targets)
            scribble(logits.shape)
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance, ownScale: true)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(logits.grad, "dlogits", tolerance: Self.backwardTolerance, ownScale: true)
            note("multilabel soft margin", forward: forward, backward: backward)
        }
    }

    func testCrossEntropyWithIgnoreIndexMatchesPyTorch() throws {
        let file = try open("cross_entropy.h5")
        for (group, blocked) in [("nchw", false), ("nchw", true), ("rows", false), ("large", false)] {
            let c = Case(file: file, group: group)
            let logits = try c.tensor("logits"), labels = try c.ints("labels")
            let ignore = Int32(try c.intAttribute("ignore_index")[0])
            XCTAssertTrue(labels.contains(ignore), "\(group): the fixture ignores some pixels")
            let y = crossEntropyLoss(blocked ? nChw16c(logits) : logits, labels: labels, ignoreIndex: ignore)
            scribble(logits.shape)
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance, ownScale: true)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(logits.grad, "dlogits", tolerance: Self.backwardTolerance, ownScale: true)
            // Ignored pixels get no gradient in any class.
            let g = try XCTUnwrap(logits.grad).toArray()
            let n = logits.shape[0], classes = logits.shape[1], spatial = logits.shape.dropFirst(2).reduce(1, *)
            for b in 0..<n {
                for p in 0..<spatial where labels[b * spatial + p] == ignore {
                    for k in 0..<classes { XCTAssertEqual(g[(b * classes + k) * spatial + p], 0, "\(group): ignored pixel \(b),\(p)") }
                }
            }
            note(blocked ? "cross entropy (ignore 255, nChw16c logits)" : "cross entropy (ignore 255)", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    func testPermuteMatchesPyTorch() throws {
        let file = try open("permute.h5")
        let cases: [(String, Bool)] = [("tokens", false), ("nchw_nhwc", false), ("shuffle4", false), ("qkv", false),
                                       ("reverse", false), ("cyclic_cube", false), ("identity", false),
                                       ("nchw_nhwc", true), ("shuffle4", true)]
        for (group, blocked) in cases {
            let c = Case(file: file, group: group)
            let x = try c.tensor("x"), order = try c.intAttribute("order")
            let y = permute(blocked ? nChw16c(x) : x, order)
            XCTAssertTrue(y.isPlain, "\(group): permute returns a plain tensor")
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
            // A permutation copies values: forward must be exact.
            XCTAssertEqual(y.toArray(), try c.expected("y").values, "\(group): permute must copy PyTorch's values")
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(x.grad, "dx", tolerance: Self.backwardTolerance)
            XCTAssertEqual(try XCTUnwrap(x.grad).toArray(), try c.expected("dx").values, "\(group): backward is a permutation too")
            note(blocked ? "permute (nChw16c input)" : "permute", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    /// Finite differences: permutations that change the shape, a shape-preserving cyclic one (where using `order`
    /// instead of its inverse in backward would go unnoticed by shapes), and a blocked input.
    func testPermuteGradientByFiniteDifferences() {
        let cases: [(shape: [Int], order: [Int], blocked: Bool)] = [
            ([2, 3, 4], [0, 2, 1], false), ([3, 3, 3], [1, 2, 0], false), ([2, 2, 2, 2], [1, 2, 3, 0], false),
            ([2, 3, 2, 3, 2], [2, 0, 3, 1, 4], false), ([2, 5, 3, 2], [3, 1, 0, 2], true),
        ]
        for (i, c) in cases.enumerated() {
            let x = Tensor(GradientCheck.random(c.shape, seed: UInt64(10 + i)), shape: c.shape, requiresGrad: true)
            let error = GradientCheck.check([x], tolerance: 1e-4, seed: UInt64(40 + i)) {
                permute(c.blocked ? nChw16c(x) : x, c.order)
            }
            XCTAssertLessThanOrEqual(error, 1e-4, "permute \(c.shape) by \(c.order)")
            Autograd.reset()
        }
    }
}
