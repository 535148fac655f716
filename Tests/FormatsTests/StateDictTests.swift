@testable import Formats
import Foundation
import TestSupport
import XCTest

/// StateDict: order-keeping edits, HDF5 save/load (ours and h5py's view of it), format dispatch, and matching
/// against the keys and shapes a model expects.
final class StateDictTests: XCTestCase {
    /// Keys deliberately out of alphabetical order, an int64 scalar, an int64 vector and an empty tensor.
    static func sample() -> StateDict {
        var sd = StateDict()
        sd.insert(StateTensor(shape: [2, 3], storage: .float32([1, -2, 3.5, 0, 1e-7, -0])), forKey: "z.conv.weight")
        sd.insert(StateTensor(shape: [3], storage: .float32([0.25, 0.5, 0.75])), forKey: "a.bias")
        sd.insert(StateTensor(shape: [], storage: .int64([Int64(1) << 40 | 5])), forKey: "bn.num_batches_tracked")
        sd.insert(StateTensor(shape: [2], storage: .int64([-9, Int64.max])), forKey: "m.index")
        sd.insert(StateTensor(shape: [0, 4], storage: .float32([])), forKey: "m.empty")
        return sd
    }

    func testInsertionOrderSubscriptAndParameterCount() {
        var sd = Self.sample()
        XCTAssertEqual(sd.keys, ["z.conv.weight", "a.bias", "bn.num_batches_tracked", "m.index", "m.empty"])
        XCTAssertEqual(sd.count, 5)
        XCTAssertEqual(sd.parameterCount, 9)  // float elements only
        sd["a.bias"] = StateTensor(shape: [1], storage: .float32([9]))  // replacing keeps the position
        sd["new.weight"] = StateTensor(shape: [2], storage: .float32([1, 2]))  // a new key is appended
        sd["m.index"] = nil
        XCTAssertEqual(sd.keys, ["z.conv.weight", "a.bias", "bn.num_batches_tracked", "m.empty", "new.weight"])
        XCTAssertEqual(sd["a.bias"]?.floats, [9])
        XCTAssertEqual(sd.parameterCount, 9)
        XCTAssertEqual(sd.entries.map(\.key), sd.keys)
    }

    func testHDF5RoundTripKeepsOrderDtypesShapesAndAttributes() throws {
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("ckpt.h5").path
        let sd = Self.sample()
        try sd.save(to: path, attributes: ["epoch": "7", "config": "{\"lr\": 0.01}"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.h5"], "temporary file left behind")
        let loaded = try StateDict.load(from: path)
        XCTAssertEqual(loaded.keys, sd.keys)
        for key in sd.keys { XCTAssertEqual(loaded[key], sd[key], key) }
        XCTAssertEqual(loaded.source, path)
        let file = try HDF5File.open(path)
        XCTAssertEqual(try file.stringAttribute("epoch"), "7")
        XCTAssertEqual(try file.stringAttribute("config"), "{\"lr\": 0.01}")
        XCTAssertEqual(try file.readStrings("/model_keys"), sd.keys)
        // Another group name in the same layout.
        try sd.save(to: path, group: "ema")
        XCTAssertEqual(try StateDict.load(from: path, group: "/ema").keys, sd.keys)
        XCTAssertThrowsError(try StateDict.load(from: path)) { XCTAssertTrue("\($0)".contains("ckpt.h5"), "\($0)") }
    }

    func testKeysThatCannotBeDatasetNamesAreRefused() throws {
        let dir = try TestSupport.scratchDirectory()
        var sd = StateDict()
        sd["a/b"] = StateTensor(shape: [1], storage: .float32([1]))
        XCTAssertThrowsError(try sd.save(to: dir.appendingPathComponent("bad.h5").path)) { XCTAssertTrue("\($0)".contains("a/b"), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "a failed save left a file")
    }

    func testH5pyReadsTheSavedStateDict() throws {
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("sd.h5").path
        try Self.sample().save(to: path, attributes: ["epoch": "7"])
        let script = """
        import h5py, json, sys
        with h5py.File(sys.argv[1], "r") as f:
            keys = [k for k in f["model_keys"].asstr()[()]]
            scalars = list(f["model_scalars"].asstr()[()]) if "model_scalars" in f else []
            out = {"keys": keys, "scalars": scalars, "epoch": f.attrs["epoch"] if isinstance(f.attrs["epoch"], str) else f.attrs["epoch"].decode(),
                   "tensors": {k: {"dtype": str(f["model"][k].dtype), "shape": list(f["model"][k].shape),
                                   "values": f["model"][k][()].reshape(-1).tolist()} for k in keys}}
        print(json.dumps(out))
        """
        let result = try TestSupport.run(TestSupport.python, ["-c", script, path])
        XCTAssertEqual(result.status, 0, result.stderr)
        struct Seen: Decodable {
            struct Tensor: Decodable { var dtype: String; var shape: [Int]; var values: [Double] }
            var keys: [String]
            var scalars: [String]
            var epoch: String
            var tensors: [String: Tensor]
        }
        let seen = try JSONDecoder().decode(Seen.self, from: Data(result.stdout.utf8))
        XCTAssertEqual(seen.keys, Self.sample().keys)
        XCTAssertEqual(seen.epoch, "7")
        XCTAssertEqual(seen.tensors["z.conv.weight"]?.dtype, "float32")
        XCTAssertEqual(seen.tensors["z.conv.weight"]?.shape, [2, 3])
        XCTAssertEqual(seen.tensors["z.conv.weight"]?.values.map { Float($0) }, [1, -2, 3.5, 0, 1e-7, 0])
        XCTAssertEqual(seen.tensors["bn.num_batches_tracked"]?.dtype, "int64")
        // A scalar is a rank-0 dataset, or (while HDF5File cannot write those) shape [1] listed in /model_scalars.
        let scalarShape = seen.tensors["bn.num_batches_tracked"]?.shape
        XCTAssertTrue(scalarShape == [] || (scalarShape == [1] && seen.scalars == ["bn.num_batches_tracked"]),
                      "\(String(describing: scalarShape)) \(seen.scalars)")
        XCTAssertEqual(seen.tensors["bn.num_batches_tracked"]?.values, [Double(Int64(1) << 40 | 5)])
        XCTAssertEqual(seen.tensors["m.empty"]?.shape, [0, 4])
    }

    func testLoadDispatchesOnContent() throws {
        let dir = try TestSupport.scratchDirectory()
        for name in ["sd_zip.pth", "sd_legacy.pth"] {
            let fromPth = try StateDict.load(path: PthReaderTests.fixture(name))
            try PthReaderTests.assertMatchesExpectations(fromPth, name)
            // A converted copy (HDF5 under a misleading extension) loads back identically, by signature.
            let converted = dir.appendingPathComponent("\(name).converted.pth").path
            try fromPth.save(to: converted)
            let fromHDF5 = try StateDict.load(path: converted)
            XCTAssertEqual(fromHDF5.keys, fromPth.keys)
            for key in fromPth.keys { XCTAssertEqual(fromHDF5[key], fromPth[key], key) }
        }
        let text = dir.appendingPathComponent("notes.bin")
        try "not a checkpoint".write(to: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try StateDict.load(path: text.path)) { XCTAssertTrue("\($0)".hasPrefix(text.path + ": not a checkpoint"), "\($0)") }
        XCTAssertThrowsError(try StateDict.load(path: dir.appendingPathComponent("none.h5").path)) {
            XCTAssertTrue("\($0)".contains("none.h5: no such file"), "\($0)")
        }
    }

    // MARK: matching

    static let expectedByModel: [(key: String, shape: [Int])] = [
        ("z.conv.weight", [2, 3]), ("a.bias", [4]), ("bn.num_batches_tracked", []), ("head.weight", [10, 3]), ("m.empty", [0, 4]),
    ]

    func testStrictCheckThrowsNamingFileAndOffendingKeys() throws {
        var sd = Self.sample()
        sd.source = "/ckpt/conformer.pth"
        XCTAssertThrowsError(try sd.check(against: Self.expectedByModel, strict: true)) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), text)
            XCTAssertEqual(text, "/ckpt/conformer.pth: state dict does not match the model: missing 1: head.weight [10, 3]; "
                + "unexpected 1: m.index [2]; mis-shaped 1: a.bias is [3], expected [4]")
        }
        XCTAssertThrowsError(try sd.check(against: Self.expectedByModel, strict: true, source: "other.h5")) {
            XCTAssertTrue("\($0)".hasPrefix("other.h5: "), "\($0)")
        }
        // An exact match passes a strict check.
        let exact = sd.entries.map { (key: $0.key, shape: $0.tensor.shape) }
        XCTAssertTrue(try sd.check(against: exact, strict: true).isExactMatch)
    }

    func testNonStrictCheckReportsByName() throws {
        let report = try Self.sample().check(against: Self.expectedByModel, strict: false)
        XCTAssertFalse(report.isExactMatch)
        XCTAssertEqual(report.missingKeys, ["head.weight"])
        XCTAssertEqual(report.unexpectedKeys, ["m.index"])
        XCTAssertEqual(report.misShaped, [.init(key: "a.bias", expected: [4], found: [3])])
        XCTAssertEqual(report.missing.first?.shape, [10, 3])
    }

    func testLongReportsListTheFirstKeysOnly() throws {
        let expected = (0..<10).map { (key: "layer\($0).weight", shape: [$0 + 1]) }
        let report = try StateDict().check(against: expected, strict: false)
        XCTAssertEqual(report.description, "missing 10: layer0.weight [1], layer1.weight [2], layer2.weight [3], … (7 more)")
    }
}
