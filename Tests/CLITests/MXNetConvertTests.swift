import Formats
import Foundation
import TestSupport
import XCTest

/// `pcs-mpi convert FILE.params OUT.h5|OUT.pth` on the MXNet fixtures of Tests/FormatsTests/Fixtures/mxnet
/// (scripts/fixtures/make_mxnet_params.py), read back with `StateDict.load`.
final class MXNetConvertTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../FormatsTests/Fixtures/mxnet").standardized

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// The MXNet names in file order (the fixture script's list), so the expected values need no Swift renaming.
    static func fileOrderNames() throws -> [String] {
        struct Named: Decodable { var name: String }
        return try JSONDecoder().decode([Named].self, from: Data(contentsOf: fixtures.appendingPathComponent("resnet38_names.json"))).map(\.name)
    }

    func testResNet38ParamsToHDF5AndPth() throws {
        let dir = try TestSupport.scratchDirectory()
        let names = try Self.fileOrderNames()
        let backbone = ResNet38Weights.backbone.map(\.key)
        for out in ["resnet38.h5", "resnet38.pth"] {
            let path = dir.appendingPathComponent(out).path
            // The tiny fixture's shapes are not the real ones, so the names are converted without the shape check.
            let result = try TestSupport.pcsMPI(["convert", Self.fixture("resnet38_names.params"), path, "--no-check"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let back = try StateDict.load(path: path)
            XCTAssertEqual(back.keys, backbone, out)
            XCTAssertNil(back["linear1000.weight"])
            // Array i of the file holds the value i: follow a few names through the renaming by hand (spec §8.7).
            let samples = ["arg:conv1a_weight": "conv1a.weight", "arg:res4b3_branch2b1_weight": "b4_3.conv_branch2b1.weight",
                           "aux:bn5a_branch2a_moving_var": "b5.bn_branch2a.running_var", "arg:bn7_beta": "bn7.bias"]
            for (mxnet, key) in samples {
                let index = try XCTUnwrap(names.firstIndex(of: mxnet), mxnet)
                XCTAssertEqual(back[key]?.floats, [Float(index)], "\(out): \(mxnet) → \(key)")
            }
        }
    }

    func testDefaultCheckIsTheBackboneAndFailsCleanly() throws {
        let dir = try TestSupport.scratchDirectory()
        let out = dir.appendingPathComponent("out.h5").path
        for extra in [[], ["--model", "aff"]] {
            let result = try TestSupport.pcsMPI(["convert", Self.fixture("resnet38_names.params"), out] + extra)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("resnet38_names.params") && result.stderr.contains("mis-shaped 191"), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output after a failure")
        }
        let sparse = try TestSupport.pcsMPI(["convert", Self.fixture("sparse.params"), out, "--no-check", "--mxnet-names"])
        XCTAssertEqual(sparse.status, 1)
        XCTAssertTrue(sparse.stderr.contains("sparse.params") && sparse.stderr.contains("sparse_embed_weight"), sparse.stderr)
        let truncated = try TestSupport.pcsMPI(["convert", Self.fixture("truncated.params"), out, "--no-check"])
        XCTAssertEqual(truncated.status, 1)
        XCTAssertTrue(truncated.stderr.contains("truncated"), truncated.stderr)
        // Names that are no ResNet-38 weight, renamed: the error names the array.
        let other = try TestSupport.pcsMPI(["convert", Self.fixture("v2.params"), out, "--no-check"])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("arg:conv0_weight"), other.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testMXNetNamesKeepsTheFilesOwnNames() throws {
        let dir = try TestSupport.scratchDirectory()
        let out = dir.appendingPathComponent("v3.pth").path
        let result = try TestSupport.pcsMPI(["convert", Self.fixture("v3.params"), out, "--no-check", "--mxnet-names"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let back = try StateDict.load(path: out), direct = try MXNetParams.stateDict(Self.fixture("v3.params"))
        XCTAssertEqual(back.keys, direct.keys)
        XCTAssertTrue(back.keys.contains("bn0_moving_mean"))
        for key in direct.keys { XCTAssertEqual(back[key], direct[key], key) }
    }
}
