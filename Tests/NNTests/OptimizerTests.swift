import XCTest
@testable import NN

final class OptimizerTests: XCTestCase {
    func testAdamWMatchesItsFormulaAndSkipsParametersWithoutGradient() {
        let p = Tensor([1, -2], shape: [2], requiresGrad: true)
        let untouched = Tensor([3], shape: [1], requiresGrad: true)
        let opt = AdamW([ParameterGroup([p, untouched], learningRate: 0.1, weightDecay: 0.01)])
        var reference: [Double] = [1, -2], m: [Double] = [0, 0], v: [Double] = [0, 0]
        for step in 1...3 {
            let g: [Float] = [0.5 * Float(step), -1]
            p.grad = Tensor(g, shape: [2])
            opt.step()
            for i in 0..<2 {
                reference[i] *= 1 - 0.1 * 0.01
                m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                v[i] = 0.999 * v[i] + 0.001 * Double(g[i]) * Double(g[i])
                let mHat = m[i] / (1 - pow(0.9, Double(step))), vHat = v[i] / (1 - pow(0.999, Double(step)))
                reference[i] -= 0.1 * mHat / (vHat.squareRoot() + 1e-8)
            }
        }
        for (a, b) in zip(p.toArray(), reference) { XCTAssertEqual(Double(a), b, accuracy: 1e-5) }
        XCTAssertEqual(untouched.toArray(), [3], "no gradient: no step and no decay")
    }

    func testSGDWithMomentumAndSchedules() {
        let p = Tensor([1], shape: [1], requiresGrad: true)
        let opt = SGD([ParameterGroup([p], learningRate: 0.1, weightDecay: 0.5, schedule: .poly(maxIterations: 10, power: 0.9))], momentum: 0.9)
        p.grad = Tensor([2], shape: [1])
        opt.step() // d = 2 + 0.5·1 = 2.5; b = 2.5; p = 1 − 0.1·2.5 = 0.75
        XCTAssertEqual(p.toArray()[0], 0.75, accuracy: 1e-6)
        opt.step() // lr = 0.1·0.9^0.9; d = 2 + 0.375; b = 0.9·2.5 + 2.375
        let lr = 0.1 * pow(0.9, 0.9)
        XCTAssertEqual(Double(p.toArray()[0]), 0.75 - lr * (0.9 * 2.5 + 2.375), accuracy: 1e-6)
        XCTAssertEqual(LearningRateSchedule.step(stepSize: 3, gamma: 0.1).multiplier(at: 7), 0.01, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.poly(maxIterations: 4, power: 1).multiplier(at: 4), 0)
    }

    /// A gradient so large that AdamW's second moment overflows: the step reports the parameter (issue: a run with
    /// a huge learning rate used to finish with inf in its checkpoints); a normal step reports nothing.
    func testNonFiniteStateIsReported() {
        let p = Tensor([1, 2], shape: [2], requiresGrad: true), q = Tensor([3], shape: [1], requiresGrad: true)
        let adam = AdamW([ParameterGroup([p, q], learningRate: 0.1)])
        p.grad = Tensor([0.5, 0.5], shape: [2])
        q.grad = Tensor([1], shape: [1])
        adam.step()
        XCTAssertNil(adam.nonFinite)
        q.grad = Tensor([3e30], shape: [1])
        adam.step()
        XCTAssertTrue(adam.nonFinite === q)
        let sgd = SGD([ParameterGroup([p], learningRate: 1e30)], momentum: 0.9)
        p.grad = Tensor([1e30, 0], shape: [2])
        sgd.step()
        XCTAssertTrue(sgd.nonFinite === p)
    }

    /// deeplab-pytorch's PolynomialLR(step_size 10, iter_max 100, power 0.9): the rate of update u is
    /// base·(1 − 10⌊u/10⌋/100)^0.9, held for 10 updates, and held at its last value past iter_max.
    func testPolyRefreshedEveryTenUpdates() {
        let poly = LearningRateSchedule.poly(maxIterations: 100, power: 0.9, every: 10)
        for u in 0..<10 { XCTAssertEqual(poly.multiplier(at: u), 1) }
        XCTAssertEqual(poly.multiplier(at: 10), Float(pow(0.9, 0.9)), accuracy: 1e-7)
        XCTAssertEqual(poly.multiplier(at: 19), poly.multiplier(at: 10))
        XCTAssertEqual(poly.multiplier(at: 25), Float(pow(0.8, 0.9)), accuracy: 1e-7)
        XCTAssertEqual(poly.multiplier(at: 120), poly.multiplier(at: 100))
    }

    /// Groups keep their own rates and decays; SGD's momentum buffers survive export and import, so a copy
    /// continues exactly where the original is.
    func testSGDGroupsAndStateRoundTrip() {
        func make() -> (SGD, Tensor, Tensor) {
            let a = Tensor([1, 2], shape: [2], requiresGrad: true), b = Tensor([-1], shape: [1], requiresGrad: true)
            let sgd = SGD([ParameterGroup([a], learningRate: 0.1, weightDecay: 0.1, name: "a"),
                           ParameterGroup([b], learningRate: 1, weightDecay: 0, name: "b")], momentum: 0.9)
            return (sgd, a, b)
        }
        let (original, a, b) = make()
        for step in 0..<3 {
            a.grad = Tensor([Float(step), 1], shape: [2])
            b.grad = Tensor([0.5], shape: [1])
            original.step()
        }
        XCTAssertEqual(original.learningRates, [0.1, 1])
        let (copy, a2, b2) = make()
        a.toArray().withUnsafeBufferPointer { a2.storage.floats.update(from: $0.baseAddress!, count: 2) }
        b.toArray().withUnsafeBufferPointer { b2.storage.floats.update(from: $0.baseAddress!, count: 1) }
        let saved = original.exportState(names: [ObjectIdentifier(a): "a", ObjectIdentifier(b): "b"])
        XCTAssertEqual(saved.kind, "sgd")
        XCTAssertEqual(saved.buffers.keys.sorted(), ["a", "b"])
        copy.importState(saved, names: [ObjectIdentifier(a2): "a", ObjectIdentifier(b2): "b"])
        XCTAssertEqual(copy.iteration, 3)
        for (p, q) in [(a, a2), (b, b2)] {
            p.grad = Tensor.filled(0.25, shape: p.shape)
            q.grad = Tensor.filled(0.25, shape: q.shape)
        }
        original.step()
        copy.step()
        XCTAssertEqual(a.toArray(), a2.toArray())
        XCTAssertEqual(b.toArray(), b2.toArray())
    }

    func testTrainingReducesTheLoss() {
        var rng = SeededRandom(seed: 3)
        let conv = Conv2d(3, 8, kernel: 3, padding: 1, rng: &rng)
        let head = Linear(8 * 64, 4, rng: &rng)
        let x = Tensor(GradientCheck.random([4, 3, 8, 8], seed: 2), shape: [4, 3, 8, 8])
        let labels = Tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1], shape: [4, 4])
        let params = conv.namedParameters("").map(\.1) + head.namedParameters("").map(\.1)
        let opt = AdamW([ParameterGroup(params, learningRate: 0.01)])
        func loss() -> Tensor {
            multilabelSoftMarginLoss(head(relu(conv(x)).plain().reshaped([4, 8 * 64])), labels)
        }
        let first = loss().toArray()[0]
        for _ in 0..<50 {
            params.zeroGrad()
            loss().backward()
            opt.step()
        }
        let last = Autograd.noGrad { loss() }.toArray()[0]
        XCTAssertLessThan(last, first * 0.8, "the head alone should fit 4 samples")
    }
}
