@testable import DeepLab
import Formats
import Foundation
@testable import NN
import XCTest

/// DeepLab-v2 against deeplab-pytorch's own modules (scripts/fixtures/make_deeplab_fixtures.py): the ResNet-101
/// MSC state-dict names and shapes, and a small network of upstream's blocks with random BatchNorm statistics —
/// its four training outputs, the summed cross-entropy, every gradient (BatchNorm frozen) and the evaluation
/// output, against a float64 PyTorch run, on an odd-sized input (37 × 45: ceil-mode pooling, 0.5/0.75 sizes).
final class DeepLabNetworkTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let tinyConfig = DeepLabConfig(stem: 4, blocks: [1, 1, 1, 1], rates: [6, 12, 18, 24], classes: 5, scales: [0.5, 0.75])

    override func tearDown() { Autograd.reset() }

    func testResNet101KeysAndShapesAreDeepLabPyTorchs() throws {
        let lines = try String(contentsOf: Self.fixtures.appendingPathComponent("KEYS_deeplabv2_resnet101_msc.tsv"), encoding: .utf8)
            .split(separator: "\n")
        let upstream = lines.map { line -> (String, [Int]) in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            return (String(fields[0]), fields[1].isEmpty ? [] : fields[1].split(separator: "x").map { Int($0)! })
        }
        XCTAssertEqual(upstream.count, 632)
        let ours = DeepLabV2MSC(.resNet101).expectedKeys
        XCTAssertEqual(ours.map(\.key), upstream.map(\.0), "state-dict names and order")
        XCTAssertEqual(ours.map(\.shape), upstream.map(\.1), "shapes")
    }

    func testTinyNetworkMatchesDeepLabPyTorch() throws {
        let model = DeepLabV2MSC(Self.tinyConfig)
        // Saved by upstream's torch.save: it must load strictly.
        try DeepLabCheckpoint.loadTrained(model, path: Self.fixtures.appendingPathComponent("tiny_deeplab.pth").path)
        model.freezeBatchNorm()
        let file = try HDF5File.open(Self.fixtures.appendingPathComponent("tiny_deeplab.h5").path)
        let (input, shape) = try file.read("input", as: Float.self)
        let labels = try file.read("label", as: Int32.self).values.map { UInt8($0) }

        let outputs = model.logits(Tensor(input, shape: shape))
        for (name, tensor) in zip(["scale_1", "scale_0.5", "scale_0.75", "max"], outputs.all) {
            try assertClose(tensor, file, "train/\(name)", tolerance: 1e-4)
        }
        let terms = DeepLabTrainingStage.lossTerms(outputs, labels: labels, height: shape[2], width: shape[3])
        let loss = terms.map { Double($0.sum.toArray()[0]) / $0.count }.reduce(0, +)
        let expectedLoss = try file.read("loss", as: Double.self).values[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-3 * abs(expectedLoss), "Σ of the four cross-entropies")

        let seedTerms = terms.map { scale($0.sum, Float(1 / $0.count)) }
        Autograd.backward(seedTerms.dropFirst().reduce(seedTerms[0]) { add($0, $1) })
        // The trained parameters are upstream's: every convolution and the ASPP biases; BatchNorm frozen.
        let parameters = model.namedParameterList
        for (name, tensor) in parameters {
            XCTAssertEqual(tensor.requiresGrad, file.exists("grad/\(name)"), "\(name) is trained exactly when upstream trains it")
            if tensor.requiresGrad { try assertClose(tensor.grad, file, "grad/\(name)", tolerance: 1e-3) }
        }
        XCTAssertEqual(parameters.filter { $0.tensor.requiresGrad }.count, 25)
        Autograd.reset()

        model.setBatchNormMode(.frozen)
        let logits = Autograd.noGrad { model(Tensor(input, shape: shape)) }
        try assertClose(logits, file, "logits", tolerance: 1e-4)
        print("conformance tiny DeepLab (\(ConvAlgorithm.preferred) convolutions): worst relative error outputs \(worstSeen["outputs"] ?? .nan), gradients \(worstSeen["gradients"] ?? .nan)")
    }

    /// The largest relative error `assertClose` saw per kind (outputs, gradients), printed by the parity test so that
    /// a change of rounding (e.g. the convolution algorithm) states its effect.
    private var worstSeen: [String: Double] = [:]

    /// |a − b| ≤ tolerance · max(1, max|b|) over the dataset; a NaN fails.
    func assertClose(_ actual: Tensor?, _ file: HDF5File, _ name: String, tolerance: Double, line: UInt = #line) throws {
        let actual = try XCTUnwrap(actual, "\(name): not computed", line: line)
        let expected = try file.read(name, as: Float.self)
        XCTAssertEqual(actual.shape, expected.shape, name, line: line)
        let a = actual.toArray()
        XCTAssertFalse(a.contains { $0.isNaN }, "\(name): NaN", line: line)
        let scale = max(1, expected.values.map { abs(Double($0)) }.max() ?? 0)
        let worst = zip(a, expected.values).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
        let kind = name.hasPrefix("grad/") ? "gradients" : "outputs"
        worstSeen[kind] = max(worstSeen[kind] ?? 0, worst / scale)
        XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(name) differs from deeplab-pytorch", line: line)
    }
}
