import Foundation
import XCTest
@testable import NN

/// AffinityNet's numeric pieces (spec §8.2, §8.3, §8.5) against direct references and finite differences: ELU,
/// channel dropout, the pair layout, the pair affinity, the affinity labels and losses, and the Kaiming-normal /
/// Xavier-uniform initialisers (statistics).
final class AffinityOpsGradientTests: XCTestCase {
    override func tearDown() { Autograd.reset() }

    func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        Tensor(GradientCheck.random(shape, seed: seed, scale: scale), shape: shape, requiresGrad: true)
    }

    // MARK: ELU

    func testELUForwardAndGradients() {
        // Kept away from 0, where the derivative jumps for α ≠ 1.
        let values = GradientCheck.random([2, 20, 3, 3], seed: 41, scale: 3).map { abs($0) < 0.05 ? $0 + 0.2 : $0 }
        let x = Tensor(values, shape: [2, 20, 3, 3], requiresGrad: true)
        for alpha: Float in [1, 0.5, 1.7] {
            let y = Autograd.noGrad { elu(x, alpha: alpha) }.toArray()
            for (v, out) in zip(values, y) {
                let exact = v > 0 ? Double(v) : Double(alpha) * (exp(Double(v)) - 1)
                XCTAssertEqual(Double(out), exact, accuracy: 1e-6 * max(1, abs(exact)), "alpha \(alpha), x \(v)")
            }
            GradientCheck.check([x], eps: 1e-3) { elu(x, alpha: alpha) }
            // Blocked input (20 channels → nChw16c), as a convolution hands it on: same values, same gradients.
            GradientCheck.check([x], eps: 1e-3) { elu(nChw16c(x), alpha: alpha) }
        }
        XCTAssertEqual(Autograd.noGrad { elu(x) }.toArray(), Autograd.noGrad { elu(x, alpha: 1) }.toArray(), "default α = 1")
        // At x = 0: y = 0 and dx = α·dy (PyTorch's rule).
        let zero = Tensor([0, -0.0, 1], shape: [3], requiresGrad: true)
        let y = elu(zero, alpha: 0.5)
        XCTAssertEqual(y.toArray(), [0, 0, 1])
        Autograd.backward(y, seed: Tensor([2, 2, 2], shape: [3]))
        XCTAssertEqual(zero.grad?.toArray(), [1, 1, 2])
    }

    // MARK: channel dropout

    func testDropout2dDrawsWholeChannels() {
        var rng = SeededRandom(seed: 8)
        let x = tensor([4, 32, 3, 5], seed: 42)
        XCTAssertTrue(dropout2d(x, p: 0.3, training: false, rng: &rng) === x, "identity outside training")
        XCTAssertTrue(dropout2d(x, p: 0, training: true, rng: &rng) === x, "identity for p = 0")
        let before = rng
        let y = Autograd.noGrad { dropout2d(x, p: 0.3, training: true, rng: &rng) }.toArray()
        // One nextFloat() per (b, c), row-major, kept when ≥ p.
        var replay = before
        let expectedKeep = (0..<(4 * 32)).map { _ in replay.nextFloat() >= 0.3 }
        XCTAssertEqual(rng, replay, "one draw per channel")
        let source = x.toArray()
        var kept = 0
        for channel in 0..<(4 * 32) {
            let out = y[(channel * 15)..<((channel + 1) * 15)], v = source[(channel * 15)..<((channel + 1) * 15)]
            if expectedKeep[channel] {
                kept += 1
                for (o, s) in zip(out, v) { XCTAssertEqual(o, s / 0.7, accuracy: 1e-6, "channel \(channel) kept whole") }
            } else {
                XCTAssertTrue(out.allSatisfy { $0 == 0 }, "channel \(channel) dropped whole")
            }
        }
        XCTAssertTrue((70...110).contains(kept), "\(kept) of 128 channels kept with p = 0.3")
        // Blocked input: the same mask applies.
        var again = before
        let blocked = Autograd.noGrad { dropout2d(nChw16c(x), p: 0.3, training: true, rng: &again) }
        XCTAssertEqual(blocked.plain().toArray(), y)
        XCTAssertEqual(Autograd.noGrad { dropout2d(x, p: 1, training: true, rng: &rng) }.toArray().max(), 0)
    }

    func testDropout2dGradientWithFixedMask() {
        let x = tensor([2, 3, 4, 5], seed: 43)
        let mask = [true, false, true, true, false, false]
        GradientCheck.check([x]) { dropout2d(x, p: 0.4, keep: mask) }
        GradientCheck.check([x]) { dropout2d(nChw16c(x), p: 0.4, keep: mask) }
    }

    // MARK: pair layout

    func testPairLayoutRadius5() {
        let pairs = AffinityPairs(height: 56, width: 56)
        var expected: [(Int, Int)] = [(0, 1), (0, 2), (0, 3), (0, 4)]
        expected += (-4...4).map { (1, $0) } + (-4...4).map { (2, $0) } + (-3...3).map { (3, $0) } + (-2...2).map { (4, $0) }
        XCTAssertEqual(pairs.directionCount, 34)
        XCTAssertEqual(pairs.directions.map { [$0.dy, $0.dx] }, expected.map { [$0.0, $0.1] })
        XCTAssertEqual(pairs.fromRows, 52)
        XCTAssertEqual(pairs.fromColumns, 48)
        XCTAssertEqual(pairs.fromCount, 2496)
        XCTAssertEqual(pairs.from(0), 4, "the first from-pixel is (0, 4)")
        XCTAssertEqual(pairs.from(47), 51, "(0, 51) ends the first row")
        XCTAssertEqual(pairs.from(48), 56 + 4)
        XCTAssertEqual(pairs.from(2495), 51 * 56 + 51)
        // Every to-pixel is inside the map, and each unordered pair within the radius appears exactly once.
        var seen = Set<[Int]>()
        for d in 0..<34 {
            for p in 0..<pairs.fromCount {
                let from = pairs.from(p), to = from + pairs.offset(d)
                let (fy, fx, ty, tx) = (from / 56, from % 56, to / 56, to % 56)
                XCTAssertEqual(ty - fy, pairs.directions[d].dy)
                XCTAssertEqual(tx - fx, pairs.directions[d].dx, "no wrap-around")
                XCTAssertTrue(seen.insert([min(from, to), max(from, to)]).inserted)
            }
        }
        XCTAssertEqual(pairs.toIndices.count, 34 * 2496)
        XCTAssertEqual(pairs.fromIndices.count, 2496)
    }

    func testFallbackRadius() {
        XCTAssertEqual(AffinityPairs.fallbackRadius(height: 56, width: 56), 5)
        XCTAssertEqual(AffinityPairs.fallbackRadius(height: 11, width: 40), 5)
        XCTAssertEqual(AffinityPairs.fallbackRadius(height: 40, width: 10), 4)
        XCTAssertEqual(AffinityPairs.fallbackRadius(height: 7, width: 9), 3)
        XCTAssertEqual(AffinityPairs.fallbackRadius(height: 5, width: 5), 2)
        XCTAssertEqual(AffinityPairs(height: 7, width: 9, radius: 3).directionCount, 12)
        XCTAssertEqual(AffinityPairs(height: 7, width: 9, radius: 2).directions.map { [$0.dy, $0.dx] }, [[0, 1], [1, -1], [1, 0], [1, 1]])
    }

    // MARK: pair affinity

    /// Features whose values within each channel plane are distinct multiples of `spacing` (a random permutation), so
    /// every |difference| is ≥ spacing and the finite differences never cross abs's kink.
    func latticeFeatures(_ shape: [Int], seed: UInt64, spacing: Float = 0.03) -> Tensor {
        var rng = SeededRandom(seed: seed)
        let plane = shape[2] * shape[3]
        var values: [Float] = []
        for _ in 0..<(shape[0] * shape[1]) {
            values += (0..<plane).map { Float($0) * spacing - Float(plane) * spacing / 2 }.shuffled(using: &rng)
        }
        return Tensor(values, shape: shape, requiresGrad: true)
    }

    func referenceAffinity(_ x: Tensor, _ pairs: AffinityPairs) -> [Double] {
        let v = x.plain().toArray()
        let (b, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let from = pairs.fromIndices, to = pairs.toIndices
        var out: [Double] = []
        for bi in 0..<b {
            for k in 0..<pairs.directionCount {
                for p in 0..<pairs.fromCount {
                    var s = 0.0
                    for ch in 0..<c {
                        let base = (bi * c + ch) * hw
                        s += abs(Double(v[base + from[p]]) - Double(v[base + to[k * pairs.fromCount + p]]))
                    }
                    out.append(exp(-s / Double(c)))
                }
            }
        }
        return out
    }

    func testPairAffinityForwardAndGradients() {
        for (shape, radius) in [([2, 3, 7, 9], 3), ([1, 4, 6, 10], 5), ([2, 20, 9, 11], 4)] {
            let x = latticeFeatures(shape, seed: UInt64(50 + radius), spacing: shape[1] == 20 ? 0.01 : 0.03)
            let pairs = AffinityPairs(height: shape[2], width: shape[3], radius: radius)
            let y = Autograd.noGrad { pairAffinity(x, pairs: pairs) }
            XCTAssertEqual(y.shape, [shape[0], pairs.directionCount, pairs.fromCount])
            for (a, r) in zip(y.toArray(), referenceAffinity(x, pairs)) { XCTAssertEqual(Double(a), r, accuracy: 1e-6) }
            let blocked = Autograd.noGrad { pairAffinity(nChw16c(x), pairs: pairs) }
            XCTAssertEqual(blocked.toArray(), y.toArray(), "blocked features give the same affinities")
            if shape[1] == 20 {
                GradientCheck.check([x], eps: 3e-3) { pairAffinity(nChw16c(x), pairs: pairs) }
            } else {
                GradientCheck.check([x], eps: 1e-2) { pairAffinity(x, pairs: pairs) }
            }
        }
    }

    func testPairAffinityTiesGetNoGradient() {
        // Two channels, every value equal: all differences are 0, a = 1, and abs's subgradient 0 gives dx = 0.
        let x = Tensor.filled(0.7, shape: [1, 2, 5, 7])
        x.requiresGrad = true
        let y = pairAffinity(x, pairs: AffinityPairs(height: 5, width: 7, radius: 3))
        XCTAssertTrue(y.toArray().allSatisfy { $0 == 1 })
        Autograd.backward(y, seed: Tensor(GradientCheck.random(y.shape, seed: 3), shape: y.shape))
        XCTAssertEqual(x.grad?.toArray().allSatisfy { $0 == 0 }, true)
    }

    // MARK: labels and losses

    func randomLabelMaps(_ count: Int, _ h: Int, _ w: Int, seed: UInt64) -> [[Int32]] {
        var rng = SeededRandom(seed: seed)
        let classes: [Int32] = [0, 0, 4, 9, 255]
        return (0..<count).map { _ in
            // 2×2 blobs, so equal neighbours are common.
            let coarse = (0..<((h + 1) / 2 * ((w + 1) / 2))).map { _ in classes[Int(rng.next() % 5)] }
            return (0..<(h * w)).map { i in coarse[(i / w) / 2 * ((w + 1) / 2) + (i % w) / 2] }
        }
    }

    func testLabelsFromMaps() {
        let pairs = AffinityPairs(height: 9, width: 11, radius: 4)
        let maps = randomLabelMaps(2, 9, 11, seed: 60)
        let labels = AffinityLabels(labelMaps: maps, pairs: pairs)
        let bg = labels.bgPos.toArray(), fg = labels.fgPos.toArray(), ng = labels.neg.toArray()
        XCTAssertEqual(labels.bgPos.shape, [2, pairs.directionCount, pairs.fromCount])
        var counts = [0, 0, 0, 0]
        for b in 0..<2 {
            for k in 0..<pairs.directionCount {
                for p in 0..<pairs.fromCount {
                    let (dy, dx) = pairs.directions[k]
                    let fy = p / pairs.fromColumns, fx = p % pairs.fromColumns + 3
                    let a = maps[b][fy * 11 + fx], c = maps[b][(fy + dy) * 11 + fx + dx]
                    let j = (b * pairs.directionCount + k) * pairs.fromCount + p
                    let which = a == 0 && c == 0 ? 0 : (a == c && a != 255 ? 1 : (a != c && a != 255 && c != 255 ? 2 : 3))
                    counts[which] += 1
                    XCTAssertEqual([bg[j], fg[j], ng[j]], (0..<3).map { $0 == which ? 1 : 0 }, "image \(b) direction \(k) pixel \(p): \(a) – \(c)")
                }
            }
        }
        XCTAssertTrue(counts.allSatisfy { $0 > 20 }, "every kind of pair occurs: \(counts)")
    }

    func testAffinityLossSumsAndGradients() {
        let pairs = AffinityPairs(height: 5, width: 9, radius: 3)   // D 12, P 3 · 5
        let labels = AffinityLabels(labelMaps: randomLabelMaps(2, 5, 9, seed: 61), pairs: pairs)
        let shape = labels.bgPos.shape
        let a = Tensor(GradientCheck.random(shape, seed: 62, scale: 0.3).map { $0 + 0.5 }, shape: shape, requiresGrad: true)
        let t = Autograd.noGrad { affinityLossSums(a, labels: labels) }
        let av = a.toArray().map(Double.init)
        let masks = [labels.bgPos, labels.fgPos, labels.neg].map { $0.toArray().map(Double.init) }
        let expectedSums = (0..<3).map { m in
            zip(av, masks[m]).reduce(0.0) { $0 - $1.1 * log(m == 2 ? 1 + 1e-5 - $1.0 : $1.0 + 1e-5) }
        }
        let counts = masks.map { $0.reduce(0, +) }
        XCTAssertTrue(counts.allSatisfy { $0 > 0 })
        XCTAssertEqual([t.bgCount, t.fgCount, t.negCount], counts)
        for (sum, e) in zip([t.bgSum, t.fgSum, t.negSum], expectedSums) {
            XCTAssertEqual(sum.shape, [1])
            XCTAssertEqual(Double(sum.toArray()[0]), e, accuracy: 1e-6 * max(1, abs(e)))
        }
        let loss = Autograd.noGrad { affinityLoss(a, labels: labels) }.toArray()[0]
        let expectedLoss = expectedSums[0] / (counts[0] + 1e-5) / 4 + expectedSums[1] / (counts[1] + 1e-5) / 4 + expectedSums[2] / (counts[2] + 1e-5) / 2
        XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-6)
        GradientCheck.check([a], eps: 1e-3) { affinityLossSums(a, labels: labels).bgSum }
        GradientCheck.check([a], eps: 1e-3) { affinityLossSums(a, labels: labels).fgSum }
        GradientCheck.check([a], eps: 1e-3) { affinityLossSums(a, labels: labels).negSum }
        GradientCheck.check([a], eps: 1e-3) { affinityLoss(a, labels: labels) }
        // End to end: features → affinity → loss.
        let x = latticeFeatures([2, 3, 5, 9], seed: 63, spacing: 0.05)
        GradientCheck.check([x], eps: 1e-2) { affinityLoss(pairAffinity(x, pairs: pairs), labels: labels) }
    }

    // MARK: initialisers

    func statistics(_ t: Tensor) -> (mean: Double, variance: Double, maxAbs: Double) {
        let v = t.toArray().map(Double.init)
        let mean = v.reduce(0, +) / Double(v.count)
        let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
        return (mean, variance, v.map(abs).max() ?? 0)
    }

    func testKaimingNormalFanIn() {
        var rng = SeededRandom(seed: 70)
        for shape in [[64, 512, 1, 1], [32, 48, 3, 3]] {
            let w = Initializers.kaimingNormalFanIn(shape, rng: &rng)
            XCTAssertEqual(w.shape, shape)
            XCTAssertTrue(w.requiresGrad)
            let n = Double(shape.reduce(1, *)), fanIn = Double(shape[1] * shape[2] * shape[3])
            let std = (2 / fanIn).squareRoot()
            let s = statistics(w)
            XCTAssertEqual(s.mean, 0, accuracy: 4 * std / n.squareRoot(), "\(shape) mean")
            // Var of a sample variance of a normal: 2σ⁴/n; 5 standard errors.
            XCTAssertEqual(s.variance / (std * std), 1, accuracy: 5 * (2 / n).squareRoot(), "\(shape) variance")
            XCTAssertGreaterThan(s.maxAbs, 3 * std, "normal tails")
            XCTAssertLessThan(s.maxAbs, 6.5 * std)
        }
        let halfGain = Initializers.kaimingNormalFanIn([256, 100], gain: 0.5, rng: &rng)
        XCTAssertEqual(statistics(halfGain).variance / (0.25 / 100), 1, accuracy: 5 * (2 / 25600.0).squareRoot())
    }

    func testXavierUniform() {
        var rng = SeededRandom(seed: 71)
        for (shape, gain) in [([448, 448, 1, 1], Float(4)), ([64, 32, 3, 3], 1), ([100, 300], 1)] {
            let w = Initializers.xavierUniform(shape, gain: gain, rng: &rng)
            XCTAssertEqual(w.shape, shape)
            XCTAssertTrue(w.requiresGrad)
            let receptive = shape.dropFirst(2).reduce(1, *)
            let bound = Double(gain) * (6 / Double((shape[0] + shape[1]) * receptive)).squareRoot()
            let n = Double(shape.reduce(1, *))
            let s = statistics(w)
            XCTAssertLessThanOrEqual(s.maxAbs, bound * (1 + 1e-6), "\(shape) within ±bound")
            XCTAssertGreaterThan(s.maxAbs, bound * (1 - 20 / n), "\(shape) reaches the bound")
            XCTAssertEqual(s.mean, 0, accuracy: 4 * bound / (3 * n).squareRoot(), "\(shape) mean")
            // U(−b, b): variance b²/3, the sample variance's relative standard error √(0.8/n).
            XCTAssertEqual(s.variance / (bound * bound / 3), 1, accuracy: 5 * (0.8 / n).squareRoot(), "\(shape) variance")
        }
        let defaultGain = Initializers.xavierUniform([10, 20], rng: &rng)
        XCTAssertLessThanOrEqual(statistics(defaultGain).maxAbs, (6.0 / 30).squareRoot())
    }
}
