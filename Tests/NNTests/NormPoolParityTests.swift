import Formats
import Foundation
@testable import NN
import XCTest

/// LayerNorm, softmax, BatchNorm2d and the poolings against PyTorch 2.13 (CPU), from the fixtures that
/// scripts/fixtures/make_norm_pool_fixtures.py writes to Fixtures/ops: forward outputs (and BatchNorm's running
/// statistics) to 1e-5 and gradients to 1e-4, relative to max(1, max|expected|) per tensor. A missing fixture file
/// or case is an error, never a skip.
final class NormPoolParityTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/ops")
    static let forwardTolerance = 1e-5
    static let backwardTolerance = 1e-4

    /// One case of a fixture file: a group of float32 datasets with its settings as attributes.
    struct Case {
        let file: HDF5File
        let name: String

        func array(_ key: String) throws -> (values: [Float], shape: [Int]) { try file.read("\(name)/\(key)", as: Float.self) }

        func tensor(_ key: String, requiresGrad: Bool = true) throws -> Tensor {
            let (values, shape) = try array(key)
            return Tensor(values, shape: shape, requiresGrad: requiresGrad)
        }

        func int(_ key: String) throws -> Int {
            guard let value = try file.numericAttribute(key, on: name, as: Int64.self)?.first else { throw missing(key) }
            return Int(value)
        }

        func float(_ key: String) throws -> Float {
            guard let value = try file.numericAttribute(key, on: name, as: Float.self)?.first else { throw missing(key) }
            return value
        }

        func string(_ key: String) throws -> String {
            guard let value = try file.stringAttribute(key, on: name) else { throw missing(key) }
            return value
        }

        private func missing(_ key: String) -> HDF5Error { HDF5Error(file: file.path, what: "case \(name) has no attribute \(key)") }
    }

    /// The cases of a fixture file; a missing file throws, which fails the test.
    func cases(_ file: String, _ names: [String]) throws -> [Case] {
        let h5 = try HDF5File.open(Self.directory.appendingPathComponent(file).path)
        return names.map { Case(file: h5, name: $0) }
    }

    /// Worst |a − b| / max(1, max|b|) over a tensor; fails above `tolerance`.
    @discardableResult
    func compare(_ actual: Tensor?, _ expected: (values: [Float], shape: [Int]), _ tolerance: Double, _ what: String,
                 line: UInt = #line) -> Double {
        guard let actual else {
            XCTFail("\(what): nothing computed", line: line)
            return .infinity
        }
        XCTAssertEqual(actual.shape, expected.shape, what, line: line)
        let values = actual.toArray()
        guard values.count == expected.values.count else {
            XCTFail("\(what): \(values.count) values, expected \(expected.values.count)", line: line)
            return .infinity
        }
        let scale = max(1, expected.values.map { abs(Double($0)) }.max() ?? 0)
        // A NaN difference counts as infinite (Array.max() would skip it).
        let worst = zip(values, expected.values).map { a, b -> Double in let d = abs(Double(a) - Double(b)); return d.isNaN ? .infinity : d }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(what): worst error \(worst), scale \(scale)", line: line)
        return worst / scale
    }

    /// Runs backward from y seeded with the case's dy and compares each (tensor, dataset) gradient; returns the worst.
    func checkGradients(_ y: Tensor, _ c: Case, _ pairs: [(Tensor, String)]) throws -> Double {
        Autograd.backward(y, seed: try c.tensor("dy", requiresGrad: false))
        return try pairs.map { compare($0.0.grad, try c.array($0.1), Self.backwardTolerance, "\(c.name) \($0.1)") }.max() ?? 0
    }

    func report(_ op: String, _ forward: Double, _ backward: Double) {
        print("parity \(op): worst relative error forward \(forward), backward \(backward)")
    }

    func testLayerNormMatchesPyTorch() throws {
        var worst = (forward: 0.0, backward: 0.0)
        for c in try cases("layer_norm.h5", ["blocks", "final"]) {
            let x = try c.tensor("x"), weight = try c.tensor("weight"), bias = try c.tensor("bias")
            let y = layerNorm(x, weight: weight, bias: bias, eps: try c.float("eps"))
            worst.forward = max(worst.forward, compare(y, try c.array("y"), Self.forwardTolerance, "\(c.name) y"))
            worst.backward = max(worst.backward, try checkGradients(y, c, [(x, "dx"), (weight, "dweight"), (bias, "dbias")]))
        }
        report("layerNorm", worst.forward, worst.backward)
    }

    func testSoftmaxMatchesPyTorch() throws {
        var worst = (forward: 0.0, backward: 0.0)
        for c in try cases("softmax.h5", ["last", "channels", "blocked_channels"]) {
            let x = try c.tensor("x")
            let y = softmax(try c.int("blocked") == 1 ? nChw16c(x) : x, axis: try c.int("axis"))
            worst.forward = max(worst.forward, compare(y, try c.array("y"), Self.forwardTolerance, "\(c.name) y"))
            worst.backward = max(worst.backward, try checkGradients(y, c, [(x, "dx")]))
        }
        report("softmax", worst.forward, worst.backward)
    }

    func testBatchNormMatchesPyTorch() throws {
        var worst = (forward: 0.0, backward: 0.0)
        for c in try cases("batch_norm.h5", ["train_c5", "train_c32", "eval_c5", "eval_c32", "frozen_c5"]) {
            let x = try c.tensor("x")
            let bn = BatchNorm2d(x.shape[1], eps: try c.float("eps"), momentum: try c.float("momentum"))
            for (buffer, key) in [(bn.weight, "weight"), (bn.bias, "bias"), (bn.runningMean, "running_mean"), (bn.runningVar, "running_var")] {
                let values = try c.array(key).values
                XCTAssertEqual(values.count, buffer.elementCount, "\(c.name) \(key)")
                for (i, v) in values.prefix(buffer.elementCount).enumerated() { buffer.storage.floats[i] = v }
            }
            guard let mode = BatchNormMode(rawValue: try c.string("mode")) else { return XCTFail("\(c.name): unknown mode") }
            bn.mode = mode
            let y = bn(try c.int("blocked") == 1 ? nChw16c(x) : x)
            XCTAssertEqual(y.isPlain, try c.int("blocked") == 0, "\(c.name): batch norm keeps the input's layout")
            worst.forward = max(worst.forward, compare(y, try c.array("y"), Self.forwardTolerance, "\(c.name) y"))
            for (buffer, key) in [(bn.runningMean, "running_mean_out"), (bn.runningVar, "running_var_out")] {
                worst.forward = max(worst.forward, compare(buffer, try c.array(key), Self.forwardTolerance, "\(c.name) \(key)"))
            }
            XCTAssertEqual(bn.numBatchesTracked, try c.int("num_batches_tracked"), "\(c.name) num_batches_tracked")
            let pairs = mode == .frozen ? [(x, "dx")] : [(x, "dx"), (bn.weight, "dweight"), (bn.bias, "dbias")]
            worst.backward = max(worst.backward, try checkGradients(y, c, pairs))
            if mode == .frozen {
                XCTAssertNil(bn.weight.grad, "\(c.name): a frozen weight gets no gradient")
                XCTAssertNil(bn.bias.grad, "\(c.name): a frozen bias gets no gradient")
            }
        }
        report("BatchNorm2d", worst.forward, worst.backward)
    }

    func testPoolingMatchesPyTorch() throws {
        let names = ["max_k3s2p1", "max_k3s2p1_blocked", "max_k2s2", "avg_k3s2p1", "avgx_k3s2p1", "avg_k2s2_odd",
                     "avg_k4s4_blocked", "global", "global_blocked"]
        var worst: [String: (forward: Double, backward: Double)] = [:]
        for c in try cases("pooling.h5", names) {
            let x = try c.tensor("x")
            let input = try c.int("blocked") == 1 ? nChw16c(x) : x
            let (k, s, p) = (try c.int("kernel"), try c.int("stride"), try c.int("padding"))
            let kind = try c.string("kind")
            let y: Tensor
            switch kind {
            case "max": y = maxPool2d(input, kernel: k, stride: s, padding: p)
            case "avg", "avgx": y = avgPool2d(input, kernel: k, stride: s, padding: p, countIncludePad: kind == "avg")
            case "global": y = globalAveragePool(input)
            default: return XCTFail("\(c.name): unknown pooling kind \(kind)")
            }
            let forward = compare(y, try c.array("y"), Self.forwardTolerance, "\(c.name) y")
            let backward = try checkGradients(y, c, [(x, "dx")])
            let old = worst[kind] ?? (0, 0)
            worst[kind] = (max(old.forward, forward), max(old.backward, backward))
        }
        XCTAssertEqual(Set(worst.keys), ["max", "avg", "avgx", "global"], "every pooling kind was checked")
        for (kind, w) in worst.sorted(by: { $0.key < $1.key }) { report("pool \(kind)", w.forward, w.backward) }
    }
}
