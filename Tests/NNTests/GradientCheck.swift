import XCTest
@testable import NN

/// Finite-difference checks: L = Σ y ⊙ r for a fixed random r, so ∂L/∂y = r seeds backward and the numeric
/// gradient of L (central differences, accumulated in Double) must match what backward accumulated.
enum GradientCheck {
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<shape.reduce(1, *)).map { _ in (rng.nextFloat() * 2 - 1) * scale }
    }

    static func dot(_ y: Tensor, _ r: [Float]) -> Double {
        zip(y.toArray(), r).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Checks the gradient of every tensor in `inputs` for the function `f`; returns the worst relative error.
    @discardableResult
    static func check(_ inputs: [Tensor], eps: Float = 1e-2, tolerance: Double = 2e-3, seed: UInt64 = 99,
                      file: StaticString = #filePath, line: UInt = #line, _ f: () -> Tensor) -> Double {
        for t in inputs { t.grad = nil; t.requiresGrad = true }
        let y = f()
        let r = random(y.shape, seed: seed)
        Autograd.backward(y, seed: Tensor(r, shape: y.shape))
        var worst = 0.0
        for (which, t) in inputs.enumerated() {
            guard let analytic = t.grad?.toArray() else {
                XCTFail("input \(which) \(t.shape) received no gradient", file: file, line: line)
                continue
            }
            let p = t.storage.floats
            var numeric = [Double](repeating: 0, count: t.elementCount)
            Autograd.noGrad {
                for i in 0..<t.elementCount {
                    let saved = p[i]
                    p[i] = saved + eps; t.version += 1
                    let up = dot(f(), r)
                    p[i] = saved - eps; t.version += 1
                    let down = dot(f(), r)
                    p[i] = saved; t.version += 1
                    numeric[i] = (up - down) / Double(2 * eps)
                }
            }
            let scale = max(1, numeric.map(abs).max() ?? 1)
            for i in 0..<numeric.count {
                let error = abs(numeric[i] - Double(analytic[i])) / scale
                worst = max(worst, error)
                if error > tolerance {
                    XCTFail("input \(which) \(t.shape) element \(i): numeric \(numeric[i]) vs backward \(analytic[i])", file: file, line: line)
                    return worst
                }
            }
        }
        return worst
    }
}
