import Foundation
import XCTest
@testable import NN

/// AffinityNet's numeric pieces against PyTorch running upstream's own code (the pair indices of
/// `get_indices_of_pairs`, the affinity of `resnet38_aff.Net.forward`, the labels of `ExtractAffinityLabelInRadius`,
/// the loss of `train_aff.py`), from the fixtures scripts/fixtures/make_affinity_fixtures.py writes to Fixtures/aff.
///
/// Every op runs on PyTorch's inputs, backward seeded with the case's `dy`. Per tensor |a − b| ≤ tol · max(1, max |b|),
/// tol = 1e-5 forward and 1e-4 backward; the loss gradients (far below 1) are also held to 1e-4 of their own scale.
/// The pair indices and label masks must match exactly. A missing file, case, dataset or attribute throws (fails).
final class AffinityParityTests: ParityTestCase {
    override class var fixtureFolder: String { "aff" }

    func testELUMatchesPyTorch() throws {
        let file = try open("elu.h5")
        for (group, blocked) in [("unit", false), ("unit", true), ("half", false), ("large", false)] {
            let c = Case(file: file, group: group)
            let x = try c.tensor("x"), alpha = Float(try c.attribute("alpha"))
            let y = elu(blocked ? nChw16c(x) : x, alpha: alpha)
            XCTAssertEqual(y.isPlain, !blocked, "\(group): ELU keeps the input's layout")
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(x.grad, "dx", tolerance: Self.backwardTolerance)
            if group == "unit" {
                // At x = ±0 PyTorch's gradient is α·dy; so must ours be.
                let xs = x.toArray(), dx = try XCTUnwrap(x.grad).toArray(), dy = try c.tensor("dy", grad: false).toArray()
                let zeros = xs.indices.filter { xs[$0] == 0 }
                XCTAssertFalse(zeros.isEmpty, "the fixture plants exact zeros")
                for i in zeros { XCTAssertEqual(dx[i], alpha * dy[i], accuracy: 1e-6, "dx at x = 0 (element \(i))") }
            }
            note(blocked ? "elu (nChw16c)" : "elu", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    func testDropout2dMatchesPyTorch() throws {
        let file = try open("dropout2d.h5")
        for (group, blocked) in [("p03", false), ("p05", false), ("p05", true)] {
            let c = Case(file: file, group: group)
            let x = try c.tensor("x"), p = Float(try c.attribute("p"))
            let keep = try c.tensor("keep", grad: false).toArray().map { $0 != 0 }
            XCTAssertTrue(keep.contains(true) && keep.contains(false), "\(group): some channels kept, some dropped")
            let y = dropout2d(blocked ? nChw16c(x) : x, p: p, keep: keep)
            let forward = try c.compare(y, "y", tolerance: Self.forwardTolerance)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(x.grad, "dx", tolerance: Self.backwardTolerance)
            note(blocked ? "dropout2d (nChw16c)" : "dropout2d", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    func testPairLayoutAndAffinityMatchUpstream() throws {
        let file = try open("pair_affinity.h5")
        for (group, blocked) in [("r5", false), ("r5", true), ("r3", false)] {
            let c = Case(file: file, group: group)
            let x = try c.tensor("features"), radius = try c.intAttribute("radius")[0]
            let pairs = AffinityPairs(height: x.shape[2], width: x.shape[3], radius: radius)
            // The layout: upstream's ind_from / ind_to, index for index.
            XCTAssertEqual(pairs.fromIndices, try c.ints("ind_from").map { Int($0) }, "\(group): from-pixels")
            XCTAssertEqual(pairs.toIndices, try c.ints("ind_to").map { Int($0) }, "\(group): to-pixels, direction-major")
            let y = pairAffinity(blocked ? nChw16c(x) : x, pairs: pairs)
            XCTAssertEqual(y.shape, try c.expected("aff").shape)
            let forward = try c.compare(y, "aff", tolerance: Self.forwardTolerance)
            Autograd.backward(y, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(x.grad, "dfeatures", tolerance: Self.backwardTolerance)
            note(blocked ? "pair affinity \(group) (nChw16c)" : "pair affinity \(group)", forward: forward, backward: backward)
            Autograd.reset()
        }
    }

    func testAffinityLabelsAndLossesMatchUpstream() throws {
        let file = try open("affinity_loss.h5")
        let random = Case(file: file, group: "random")
        // Masks: upstream's, and ours from the same label maps, identical.
        let masks = AffinityLabels(bgPos: try random.tensor("bg_pos", grad: false), fgPos: try random.tensor("fg_pos", grad: false),
                                   neg: try random.tensor("neg", grad: false))
        let (maps, mapShape) = try file.read("random/labels", as: Int32.self)
        let plane = mapShape[1] * mapShape[2]
        let pairs = AffinityPairs(height: mapShape[1], width: mapShape[2], radius: try random.intAttribute("radius")[0])
        let ours = AffinityLabels(labelMaps: (0..<mapShape[0]).map { Array(maps[($0 * plane)..<(($0 + 1) * plane)]) }, pairs: pairs)
        XCTAssertEqual(ours.bgPos.toArray(), masks.bgPos.toArray(), "bg_pos from the label maps")
        XCTAssertEqual(ours.fgPos.toArray(), masks.fgPos.toArray(), "fg_pos from the label maps")
        XCTAssertEqual(ours.neg.toArray(), masks.neg.toArray(), "neg from the label maps")
        XCTAssertEqual(ours.bgPos.shape, masks.bgPos.shape)

        for group in ["random", "end_to_end"] {
            let c = Case(file: file, group: group)
            let input = try c.tensor(group == "random" ? "aff" : "features")
            let affinity = group == "random" ? input : pairAffinity(input, pairs: pairs)
            let sums = Autograd.noGrad { affinityLossSums(affinity, labels: masks) }
            var forward = 0.0
            for (sum, count, name) in [(sums.bgSum, sums.bgCount, "bg"), (sums.fgSum, sums.fgCount, "fg"), (sums.negSum, sums.negCount, "neg")] {
                XCTAssertEqual(count, try c.attribute("\(name)_count"), "\(group): \(name) count")
                forward = max(forward, try c.compare(sum, "\(name)_sum", tolerance: Self.forwardTolerance, ownScale: true))
            }
            let loss = affinityLoss(affinity, labels: masks)
            forward = max(forward, try c.compare(loss, "loss", tolerance: Self.forwardTolerance, ownScale: true))
            Autograd.backward(loss, seed: try c.tensor("dy", grad: false))
            let backward = try c.compare(input.grad, group == "random" ? "daff" : "dfeatures", tolerance: Self.backwardTolerance, ownScale: true)
            note("affinity loss \(group)", forward: forward, backward: backward)
            Autograd.reset()
        }
    }
}
