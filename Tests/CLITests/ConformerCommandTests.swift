import Formats
import Foundation
@testable import NN
import TestSupport
import XCTest

/// `pcs-mpi forward` and `pcs-mpi convert` on the tiny conformance fixture (Tests/PCSformerTests/Fixtures).
final class ConformerCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../PCSformerTests/Fixtures").standardized
    static var weights: String { fixtures.appendingPathComponent("conformer_tiny.pth").path }

    /// An input file for `forward` holding the fixture's input and labels (or an input of another shape).
    func makeInput(_ dir: URL, shape: [Int]? = nil) throws -> String {
        let reference = try HDF5File.open(Self.fixtures.appendingPathComponent("conformer_tiny.h5").path)
        let path = dir.appendingPathComponent("in.h5").path
        let file = try HDF5File.create(path)
        if let shape {
            try file.write("/input", [Float](repeating: 0.1, count: shape.reduce(1, *)), shape: shape)
        } else {
            let input = try reference.read("/input", as: Float.self)
            try file.write("/input", input.values, shape: input.shape)
        }
        let label = try reference.read("/label", as: Float.self)
        try file.write("/targets", label.values, shape: label.shape)
        file.close()
        return path
    }

    func testForwardWritesLogitsCAMLossAndGradients() throws {
        let dir = try TestSupport.scratchDirectory()
        let out = dir.appendingPathComponent("out.h5").path
        let result = try TestSupport.pcsMPI(["forward", "--model", "tiny-pc", "--weights", Self.weights, "--input", try makeInput(dir),
                                             "--out", out, "--method", "clsattn", "--train", "--label", "targets"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reference = try HDF5File.open(Self.fixtures.appendingPathComponent("conformer_tiny.h5").path)
        let written = try HDF5File.open(out)
        for (mine, theirs) in [("/conv_logits", "/conv_logits"), ("/cam", "/cam_clsattn"), ("/loss", "/loss"),
                               ("/grad/conv_trans_7.trans_block.attn.qkv.weight", "/grad/conv_trans_7.trans_block.attn.qkv.weight")] {
            let a = try written.read(mine, as: Float.self), b = try reference.read(theirs, as: Float.self)
            XCTAssertEqual(a.shape, b.shape, mine)
            let scale = max(1, b.values.map { abs($0) }.max() ?? 1)
            XCTAssertLessThan(zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 1, 1e-3 * scale, mine)
        }
        XCTAssertEqual(try written.stringAttribute("method", on: "/cam"), "clsattn")
    }

    func testBadInputsAreOneLineErrors() throws {
        let dir = try TestSupport.scratchDirectory()
        let out = dir.appendingPathComponent("out.h5").path
        let odd = try makeInput(dir, shape: [1, 3, 60, 96])
        let notMultiple = try TestSupport.pcsMPI(["forward", "--model", "tiny-pc", "--input", odd, "--out", out])
        XCTAssertEqual(notMultiple.status, 1)
        XCTAssertEqual(notMultiple.stderr.split(separator: "\n").count, 1, notMultiple.stderr)
        XCTAssertTrue(notMultiple.stderr.contains("in.h5") && notMultiple.stderr.contains("multiples of 16"), notMultiple.stderr)

        let wrongVariant = try TestSupport.pcsMPI(["forward", "--model", "tiny-sp", "--k", "2", "--weights", Self.weights,
                                                   "--input", try makeInput(dir), "--out", out])
        XCTAssertEqual(wrongVariant.status, 1)
        XCTAssertTrue(wrongVariant.stderr.contains("conformer_tiny.pth") && wrongVariant.stderr.contains("trans_cls_head_200.weight"),
                      wrongVariant.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output after a failure")
    }

    func testConvertRoundTripAndCheck() throws {
        let dir = try TestSupport.scratchDirectory()
        let h5 = dir.appendingPathComponent("tiny.h5").path, pth = dir.appendingPathComponent("tiny.pth").path
        XCTAssertEqual(try TestSupport.pcsMPI(["convert", Self.weights, h5, "--model", "tiny-pc"]).status, 0)
        let back = try TestSupport.pcsMPI(["convert", h5, pth, "--model", "tiny-pc"])
        XCTAssertEqual(back.status, 0, back.stderr)
        let original = try StateDict.load(path: Self.weights), roundTrip = try StateDict.load(path: pth)
        XCTAssertEqual(original.keys, roundTrip.keys)
        XCTAssertEqual(original.count, 718)
        for key in original.keys { XCTAssertEqual(original[key], roundTrip[key], key) }

        let wrongModel = try TestSupport.pcsMPI(["convert", Self.weights, h5, "--model", "pc"])
        XCTAssertEqual(wrongModel.status, 1)
        XCTAssertTrue(wrongModel.stderr.contains("mis-shaped") || wrongModel.stderr.contains("expected"), wrongModel.stderr)
        let badExtension = try TestSupport.pcsMPI(["convert", Self.weights, dir.appendingPathComponent("x.bin").path])
        XCTAssertEqual(badExtension.status, 2)
    }
}
