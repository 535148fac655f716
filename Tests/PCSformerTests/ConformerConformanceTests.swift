import Formats
import Foundation
@testable import NN
@testable import PCSformer
import TestSupport
import XCTest

/// The Swift Conformer against the repo's PyTorch reference (scripts/reference/conformer.py), on the tiny
/// configuration: the fixture (scripts/fixtures/make_conformer_fixture.py) holds a randomly initialised model as
/// `.pth`, an input, the logits, the CAM of every method, the loss and every parameter's gradient, computed in train
/// mode with drop path off and BatchNorm on running statistics, so both sides are deterministic.
final class ConformerConformanceTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// max |a − b| relative to max(1, max |b|), the measure of the parity tests; a NaN counts as infinite, and
    /// arrays of different lengths fail.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        let scale = max(1, b.map { Double(abs($0)) }.max() ?? 1)
        let error = zip(a, b).map { x, y -> Double in let d = Double(abs(x - y)); return d.isNaN ? .infinity : d }.max().map { $0 / scale } ?? 0
        worstSeen = max(worstSeen, error)
        return error
    }

    /// The largest `relativeError` since it was last reset: printed, so that a change of rounding (e.g. the
    /// convolution algorithm) states its effect.
    private var worstSeen = 0.0

    /// - Parameters:
    ///   - extraWeights: a second `.pth` merged into the first (the SP fixture stores only its extra heads, the
    ///     backbone is the PC fixture's, to keep the committed files small).
    ///   - onlyGradients: when the fixture lists the gradients it kept (`grad_keys`), only those are compared.
    func conformance(name: String, weights: String, extraWeights: String? = nil, config: ConformerConfig) throws {
        let reference = try HDF5File.open(Self.fixtures.appendingPathComponent("\(name).h5").path)
        worstSeen = 0
        let model = Conformer(config, seed: 99)
        var dict = try StateDict.load(path: Self.fixtures.appendingPathComponent(weights).path)
        if let extraWeights {
            for (key, tensor) in try StateDict.load(path: Self.fixtures.appendingPathComponent(extraWeights).path).entries { dict[key] = tensor }
        }
        try model.load(dict, strict: true, source: weights)
        let gradientKeys = try reference.stringAttribute("grad_keys").map { try JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        model.setBatchNormMode(.inference)
        let (input, shape) = try reference.read("/input", as: Float.self)
        let x = Tensor(input, shape: shape)
        let label = try reference.read("/label", as: Float.self)

        for method in CAMMethod.allCases {
            let out = Autograd.noGrad { model(x, cam: method) }
            let cam = try reference.read("/cam_\(method.rawValue)", as: Float.self)
            XCTAssertEqual(out.cam?.shape, cam.shape)
            XCTAssertLessThan(relativeError(try XCTUnwrap(out.cam).toArray(), cam.values), 1e-4, "CAM \(method)")
        }

        let out = model(x, training: false)
        XCTAssertLessThan(relativeError(out.convLogits.toArray(), try reference.read("/conv_logits", as: Float.self).values), 1e-4)
        XCTAssertLessThan(relativeError(out.transLogits.toArray(), try reference.read("/trans_logits", as: Float.self).values), 1e-4)
        var loss = PCSformerLoss.classification(convLogits: out.convLogits, transLogits: out.transLogits, labels: Tensor(label.values, shape: label.shape))
        if config.subClasses > 0 {
            let sub = try reference.read("/sub_label", as: Float.self)
            let subLogits = add(try XCTUnwrap(out.subConvLogits), try XCTUnwrap(out.subTransLogits))
            loss = add(loss, multilabelSoftMarginLoss(subLogits, Tensor(sub.values, shape: sub.shape)))
            XCTAssertLessThan(relativeError(out.pooledFeature.toArray(), try reference.read("/pooled_feature", as: Float.self).values), 1e-4)
            XCTAssertLessThan(relativeError(try XCTUnwrap(out.subConvLogits).toArray(), try reference.read("/conv_logits_sub", as: Float.self).values), 1e-4)
            XCTAssertLessThan(relativeError(try XCTUnwrap(out.subTransLogits).toArray(), try reference.read("/trans_logits_sub", as: Float.self).values), 1e-4)
        }
        XCTAssertLessThan(relativeError(loss.toArray(), try reference.read("/loss", as: Float.self).values), 1e-4)
        loss.backward()
        let worstOutput = worstSeen
        worstSeen = 0

        var checked = 0
        for case let .parameter(key, p) in model.state("") {
            if let gradientKeys, !gradientKeys.contains(key) { continue }
            guard reference.exists("/grad/\(key)") else {
                let nonzero = p.grad?.toArray().contains { $0 != 0 } ?? false
                XCTAssertFalse(nonzero, "\(key) has a gradient PyTorch did not")
                continue
            }
            let g = try reference.read("/grad/\(key)", as: Float.self)
            let mine = try XCTUnwrap(p.grad, "no gradient for \(key)").toArray()
            XCTAssertLessThan(relativeError(mine, g.values), 1e-3, "gradient of \(key)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, gradientKeys == nil ? 400 : gradientKeys!.count - 1, "the gradients are compared")
        print("conformance \(name) (\(ConvAlgorithm.preferred) convolutions): worst relative error outputs \(worstOutput), gradients \(worstSeen)")
    }

    func testTinyPCMatchesPyTorch() throws {
        try conformance(name: "conformer_tiny", weights: "conformer_tiny.pth", config: .tiny)
    }

    func testTinySPMatchesPyTorch() throws {
        var config = ConformerConfig.tiny
        config.subClasses = 40
        try conformance(name: "conformer_tiny_sp", weights: "conformer_tiny.pth", extraWeights: "conformer_tiny_sp.pth", config: config)
    }

    /// The SP training loss (SPTrainingStage.loss, what train-sp minimises): ℓ20 + w·ℓsub against the fixture's two
    /// PyTorch losses, for w = 0, 1 and 2.5. (The gradients of w = 1 are checked above through the forward tool,
    /// which computes the same function.)
    func testSPTrainingLossAndWeight() throws {
        let reference = try HDF5File.open(Self.fixtures.appendingPathComponent("conformer_tiny_sp.h5").path)
        var config = ConformerConfig.tiny
        config.subClasses = 40
        let model = Conformer(config, seed: 99)
        var dict = try StateDict.load(path: Self.fixtures.appendingPathComponent("conformer_tiny.pth").path)
        for (key, tensor) in try StateDict.load(path: Self.fixtures.appendingPathComponent("conformer_tiny_sp.pth").path).entries { dict[key] = tensor }
        try model.load(dict, strict: true, source: "conformer_tiny_sp")
        model.setBatchNormMode(.inference)
        let (input, shape) = try reference.read("/input", as: Float.self)
        let label = try reference.read("/label", as: Float.self), sub = try reference.read("/sub_label", as: Float.self)
        let main: Float = try reference.read("/loss_20").values[0], subLoss: Float = try reference.read("/loss_sub").values[0]
        let out = Autograd.noGrad { model(Tensor(input, shape: shape), cam: nil) }
        for w: Float in [0, 1, 2.5] {
            let loss = SPTrainingStage.loss(out, labels: Tensor(label.values, shape: label.shape), subLabels: Tensor(sub.values, shape: sub.shape), subLossWeight: w)
            // Relative, as every parity check here: Winograd's convolutions round ~2e-6 relative away from PyTorch's.
            let expected = main + w * subLoss
            XCTAssertEqual(loss.toArray()[0], expected, accuracy: 1e-5 * max(1, abs(expected)), "w = \(w)")
        }
    }
}
