import Formats
import Foundation
@testable import NN
import XCTest

/// DeepLab-v2's new ops against PyTorch 2.13 (CPU), from Fixtures/deeplab/msc_ops.h5
/// (scripts/fixtures/make_deeplab_fixtures.py): ceil-mode max pooling (odd, even, the stem's shape, a 2×3 input),
/// scale-factor bilinear resizing (0.5 and 0.75 on odd and even sizes, bit-level against PyTorch's float32 kernel
/// too) and the element-wise max of three maps (the MSC fusion), forward and backward, plain and blocked inputs.
final class MSCOpsParityTests: ParityTestCase {
    override class var fixtureFolder: String { "deeplab" }

    func testCeilModeMaxPoolMatchesPyTorch() throws {
        let file = try open("msc_ops.h5")
        for group in ["pool_odd", "pool_even", "pool_stem", "pool_tiny"] {
            for blocked in [false, true] {
                let c = Case(file: file, group: group)
                let x = try c.tensor("x")
                let y = maxPool2d(blocked ? nChw16c(x) : x, kernel: 3, stride: 2, padding: 1, ceilMode: true)
                let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
                Autograd.backward(y, seed: try c.tensor("dy", grad: false))
                let backward = try c.compare(x.grad, "dx", tolerance: Self.backwardTolerance)
                note("max pool ceil\(blocked ? " (nChw16c)" : "")", forward: forward, backward: backward)
                Autograd.reset()
            }
        }
    }

    func testScaleFactorBilinearMatchesPyTorch() throws {
        let file = try open("msc_ops.h5")
        for group in ["scale_half_odd", "scale_075_odd", "scale_075_61", "scale_half_even"] {
            let c = Case(file: file, group: group)
            let x = try c.tensor("x")
            let y = interpolate(x, scaleFactor: try c.attribute("factor"))
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
            // PyTorch's own float32 kernel: the same taps and arithmetic, so to a few ulp.
            try c.compare(y, "y32", tolerance: 1e-6)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(x.grad, "dx", tolerance: Self.backwardTolerance)
            note("bilinear scale factor", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    func testMaximumOfThreeMatchesPyTorch() throws {
        let c = Case(file: try open("msc_ops.h5"), group: "max3")
        let a = try c.tensor("a"), b = try c.tensor("b"), d = try c.tensor("c")
        let y = maximum([a, nChw16c(b), d])
        let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
        Autograd.backward(y, seed: try c.tensor("dy", grad: false))
        var backward = try c.compare(a.grad, "da", tolerance: Self.backwardTolerance)
        backward = max(backward, try c.compare(b.grad, "db", tolerance: Self.backwardTolerance))
        backward = max(backward, try c.compare(d.grad, "dc", tolerance: Self.backwardTolerance))
        note("maximum", forward: forward, backward: backward)
    }
}
