import Formats
import Foundation
@testable import NN
import PCSformer
import TestSupport
import XCTest

/// `pcs-mpi forward --model tiny-aff`: outputs and shapes, and the --train gradients against central finite
/// differences of the loss the same command writes. (Fidelity to upstream's full `resnet38_aff.Net` is the manual
/// check `scripts/reference/check_aff_forward.sh`: the weights are ~400 MB.)
final class AffinityForwardCommandTests: XCTestCase {
    /// A 1×3×96×96 input (12×12 features: radius 5, D = 34, P = 8·4 = 32) and random disjoint pair masks.
    func makeInput(_ dir: URL) throws -> String {
        var rng = SeededRandom(seed: 7)
        let path = dir.appendingPathComponent("in.h5").path
        let file = try HDF5File.create(path)
        try file.write("/input", (0..<(3 * 96 * 96)).map { _ in Float.random(in: -1...1, using: &rng) }, shape: [1, 3, 96, 96])
        var masks = [[Float]](repeating: [Float](repeating: 0, count: 34 * 32), count: 3)
        for i in 0..<(34 * 32) {
            let k = Int.random(in: 0..<4, using: &rng)
            if k < 3 { masks[k][i] = 1 }
        }
        for (name, m) in zip(["/bg_pos", "/fg_pos", "/neg"], masks) { try file.write(name, m, shape: [1, 34, 32]) }
        file.close()
        return path
    }

    func parameter(_ network: AffinityNet, _ key: String) -> Tensor {
        for case let .parameter(name, p) in network.state("") where name == key { return p }
        fatalError("no parameter \(key)")
    }

    func forward(_ weights: String, _ input: String, _ out: String, train: Bool = true) throws -> HDF5File {
        let result = try TestSupport.pcsMPI(["forward", "--model", "tiny-aff", "--weights", weights, "--input", input, "--out", out]
                                            + (train ? ["--train"] : []))
        XCTAssertEqual(result.status, 0, result.stderr)
        return try HDF5File.open(out)
    }

    func testTinyAffGradientsMatchFiniteDifferences() throws {
        let dir = try TestSupport.scratchDirectory()
        let input = try makeInput(dir)
        let network = AffinityNet(.tiny, seed: 3)
        let weights = dir.appendingPathComponent("w.h5").path
        try network.stateDict().save(to: weights)

        let base = try forward(weights, input, dir.appendingPathComponent("train.h5").path)
        let plain = try forward(weights, input, dir.appendingPathComponent("eval.h5").path, train: false)
        let affinity = try plain.read("/affinity", as: Float.self)
        XCTAssertEqual(affinity.shape, [1, 34, 32])
        XCTAssertEqual(try plain.stringAttribute("radius", on: "/affinity"), "5")
        let trained = try base.read("/affinity", as: Float.self).values, scale = affinity.values.map(abs).max()!
        let change = zip(trained, affinity.values).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(change, 1e-4 * scale, "--train changes the forward pass only by rounding")
        XCTAssertEqual(try plain.read("/conv6", as: Float.self).shape, [1, 256, 12, 12])
        XCTAssertFalse(plain.exists("/loss"))
        for frozen in ["conv1a.weight", "b2.conv_branch2a.weight", "b2_2.conv_branch2b1.weight", "bn7.weight", "b4.bn_branch2a.bias"] {
            XCTAssertFalse(base.exists("/grad/\(frozen)"), frozen)
        }

        for key in ["f9.weight", "f8_5.weight", "b4.conv_branch2a.weight"] {
            let grad = try base.read("/grad/\(key)", as: Float.self).values
            let i = grad.indices.max { abs(grad[$0]) < abs(grad[$1]) }!
            let p = parameter(network, key)
            let w = p.storage.floats[i], h = max(abs(w), 0.05) * 0.02
            var losses: [Float] = []
            for delta in [h, -h] {
                p.storage.floats[i] = w + delta
                p.version += 1
                let path = dir.appendingPathComponent("w\(losses.count).h5").path
                try network.stateDict().save(to: path)
                losses.append(try forward(path, input, dir.appendingPathComponent("fd.h5").path).read("/loss", as: Float.self).values[0])
            }
            p.storage.floats[i] = w
            p.version += 1
            let fd = (losses[0] - losses[1]) / (2 * h)
            XCTAssertEqual(fd, grad[i], accuracy: 0.03 * abs(grad[i]) + 1e-4, "\(key)[\(i)]: finite difference \(fd), gradient \(grad[i])")
            print("tiny-aff \(key)[\(i)]: gradient \(grad[i]), finite difference \(fd)")
        }
    }

    func testMissingMasksIsAOneLineError() throws {
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("in.h5").path
        let file = try HDF5File.create(path)
        try file.write("/input", [Float](repeating: 0.1, count: 3 * 96 * 96), shape: [1, 3, 96, 96])
        file.close()
        let out = dir.appendingPathComponent("out.h5").path
        let result = try TestSupport.pcsMPI(["forward", "--model", "tiny-aff", "--input", path, "--out", out, "--train"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("bg_pos"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
