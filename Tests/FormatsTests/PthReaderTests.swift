import Foundation
import TestSupport
import XCTest
@testable import Formats
import NN

/// The `.pth` reader against files written by torch itself (scripts/fixtures/make_pth_fixtures.py) and against
/// damaged or hand-made inputs that must fail with one-line errors naming the file.
final class PthReaderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/pth")

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// One tensor as torch reported it: dtype, shape and row-major values.
    struct ExpectedTensor: Decodable {
        var key: String
        var dtype: String
        var shape: [Int]
        var stride: [Int]
        var storageOffset: Int
        var floats: [Double] = []
        var integers: [Int64] = []

        enum CodingKeys: String, CodingKey { case key, dtype, shape, stride, storage_offset, values }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            key = try c.decode(String.self, forKey: .key)
            dtype = try c.decode(String.self, forKey: .dtype)
            shape = try c.decode([Int].self, forKey: .shape)
            stride = try c.decode([Int].self, forKey: .stride)
            storageOffset = try c.decode(Int.self, forKey: .storage_offset)
            // Integers are decoded as Int64 so that values beyond 2^53 stay exact.
            if dtype == "int64" { integers = try c.decode([Int64].self, forKey: .values) } else { floats = try c.decode([Double].self, forKey: .values) }
        }
    }

    struct Expectations: Decodable {
        var torch_version: String
        var state_dict: [ExpectedTensor]
    }

    static func expectations() throws -> Expectations {
        try JSONDecoder().decode(Expectations.self, from: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))
    }

    /// Every key in order, every shape, the dtype after conversion and every value, exactly.
    static func assertMatchesExpectations(_ stateDict: StateDict, _ label: String, line: UInt = #line) throws {
        let expected = try expectations().state_dict
        XCTAssertEqual(stateDict.keys, expected.map(\.key), label, line: line)
        for tensor in expected {
            guard let found = stateDict[tensor.key] else {
                XCTFail("\(label): \(tensor.key) missing", line: line)
                continue
            }
            XCTAssertEqual(found.shape, tensor.shape, "\(label): \(tensor.key)", line: line)
            switch (tensor.dtype, found.storage) {
            case ("int64", .int64(let values)):
                XCTAssertEqual(values, tensor.integers, "\(label): \(tensor.key)", line: line)
            case ("float32", .float32(let values)), ("float16", .float32(let values)), ("float64", .float32(let values)):
                // Float16 and float32 sources are exact in Float; float64 ones are rounded to nearest, like torch's .float().
                XCTAssertEqual(values, tensor.floats.map { Float($0) }, "\(label): \(tensor.key)", line: line)
            default:
                XCTFail("\(label): \(tensor.key) has dtype \(found.storage.dtypeName), torch wrote \(tensor.dtype)", line: line)
            }
        }
    }

    func testZipStateDictMatchesTorch() throws {
        try Self.assertMatchesExpectations(try PthReader.stateDict(Self.fixture("sd_zip.pth")), "zip")
    }

    func testLegacyStateDictMatchesTorch() throws {
        try Self.assertMatchesExpectations(try PthReader.stateDict(Self.fixture("sd_legacy.pth")), "legacy")
    }

    func testWrappedCheckpointYieldsTheModelEntry() throws {
        let stateDict = try PthReader.stateDict(Self.fixture("wrapped_zip.pth"))
        try Self.assertMatchesExpectations(stateDict, "wrapped")
        XCTAssertEqual(stateDict.source, Self.fixture("wrapped_zip.pth"))
        // With no preferred key found, the top level is taken, whose only tensors are... none: an error, not silence.
        XCTAssertThrowsError(try PthReader.stateDict(Self.fixture("wrapped_zip.pth"), preferKeys: ["absent"])) {
            XCTAssertTrue("\($0)".contains("wrapped_zip.pth"), "\($0)")
        }
    }

    func testProtocol4AndZip64FilesMatchTorch() throws {
        try Self.assertMatchesExpectations(try PthReader.stateDict(Self.fixture("sd_zip_protocol4.pth")), "protocol 4")
        try Self.assertMatchesExpectations(try PthReader.stateDict(Self.fixture("sd_zip64.pth")), "zip64")
    }

    func testZip64RecordsAreWhatTheReaderUsed() throws {
        // The fixture is only a ZIP64 test if its classic records are saturated; then the reader must have used ZIP64.
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("sd_zip64.pth"))
        try data.withUnsafeBytes { bytes in
            let tail = Array(bytes.suffix(22))
            XCTAssertEqual(Array(tail[10..<20]), [0xFF, 0xFF] + [UInt8](repeating: 0xFF, count: 8))
            let zip = try ZipDirectory(bytes: bytes, source: "sd_zip64.pth")
            XCTAssertTrue(zip.entries.contains { $0.name == "sd_zip/data.pkl" }, "\(zip.entries.map(\.name))")
            XCTAssertTrue(zip.entries.allSatisfy { $0.uncompressedSize < 0xFFFF_FFFF && $0.localHeaderOffset < bytes.count })
        }
    }

    func testNonContiguousViewsAndSharedStorageOffsets() throws {
        let expected = Dictionary(uniqueKeysWithValues: try Self.expectations().state_dict.map { ($0.key, $0) })
        // The fixture really holds views (torch reported these strides and offsets when it wrote them).
        XCTAssertEqual(expected["view.transposed"]?.stride, [1, 6])
        XCTAssertEqual(expected["view.strided_slice"]?.storageOffset, 6)
        XCTAssertEqual(expected["shared.tail"]?.storageOffset, 8)
        for name in ["sd_zip.pth", "sd_legacy.pth"] {
            let stateDict = try PthReader.stateDict(Self.fixture(name))
            // grid = arange(24).reshape(4, 6) - 7.5; transposed[i][j] = grid[j][i]; strided_slice = grid[1:3, ::2].
            let transposed = (0..<6).flatMap { i in (0..<4).map { j in Float(j * 6 + i) - 7.5 } }
            XCTAssertEqual(stateDict["view.transposed"], StateTensor(shape: [6, 4], storage: .float32(transposed)), name)
            let slice = (1..<3).flatMap { r in stride(from: 0, to: 6, by: 2).map { c in Float(r * 6 + c) - 7.5 } }
            XCTAssertEqual(stateDict["view.strided_slice"], StateTensor(shape: [2, 3], storage: .float32(slice)), name)
            // head = shared[:8], tail = shared[8:]: together they are the 20 values in order, nothing repeated.
            let head = stateDict["shared.head"]?.floats ?? [], tail = stateDict["shared.tail"]?.floats ?? []
            XCTAssertEqual(head + tail, (expected["shared.head"]?.floats ?? []).map { Float($0) } + (expected["shared.tail"]?.floats ?? []).map { Float($0) }, name)
            XCTAssertNotEqual(head.first, tail.first, name)
        }
    }

    func testReadGivesTheWholeTree() throws {
        let root = try PthReader.read(Self.fixture("wrapped_zip.pth"))
        guard case .dict(let entries) = root else { return XCTFail("top level is \(root)") }
        XCTAssertEqual(entries.map(\.key), ["model", "epoch", "best_acc1", "arch", "flags", "sizes", "args"].map { PthValue.string($0) })
        XCTAssertEqual(root["epoch"], .int(3))
        XCTAssertEqual(root["best_acc1"], .float(0.75))
        XCTAssertEqual(root["arch"], .string("Conformer_small_patch16"))
        XCTAssertEqual(root["flags"], .list([.bool(true), .bool(false), .none]))
        XCTAssertEqual(root["sizes"], .tuple([.int(224), .int(-1), .int(70000)]))
        guard case .object(let type, _, let state)? = root["args"] else { return XCTFail("args is \(String(describing: root["args"]))") }
        XCTAssertEqual(type, "argparse.Namespace")
        XCTAssertEqual(state?["lr"], .float(0.0005))
        XCTAssertEqual(state?["name"], .string("x"))
        guard case .tensor(let scalar)? = root["model"]?["bn1.num_batches_tracked"] else { return XCTFail("no scalar tensor") }
        XCTAssertEqual(scalar, StateTensor(shape: [], storage: .int64([123_456_789_012])))
    }

    // MARK: damaged and unsupported input

    func testTruncatedFilesFailNamingTheFile() throws {
        let dir = try TestSupport.scratchDirectory()
        for name in ["sd_zip.pth", "sd_legacy.pth"] {
            let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
            var lengths = Array(stride(from: 0, to: data.count, by: 37)) + [1, data.count / 2, data.count - 1]
            lengths.sort()
            for length in lengths {
                let url = dir.appendingPathComponent("truncated-\(length)-\(name)")
                try data.prefix(length).write(to: url)
                XCTAssertThrowsError(try PthReader.read(url.path), "\(name) cut to \(length) bytes") { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.hasPrefix(url.path + ": "), text)
                    XCTAssertFalse(text.contains("\n"), text)
                }
            }
            let half = dir.appendingPathComponent("half-\(name)")
            try data.prefix(data.count / 2).write(to: half)
            XCTAssertThrowsError(try PthReader.read(half.path)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        }
    }

    func testUnsupportedOpcodesAreNamed() throws {
        let dir = try TestSupport.scratchDirectory()
        let cases: [(bytes: [UInt8], mention: String)] = [
            ([0x80, 0x02, 0x69] + Array("__main__\nC\n".utf8) + [0x2E], "0x69 (INST)"),  // protocol-0 INST
            ([0x80, 0x02, 0x82, 0x01, 0x2E], "0x82 (EXT1)"),
            ([0x80, 0x02, 0xFF, 0x2E], "0xff (not a pickle opcode)"),
        ]
        for (i, example) in cases.enumerated() {
            let url = dir.appendingPathComponent("opcode-\(i).pth")
            try Data(example.bytes).write(to: url)
            XCTAssertThrowsError(try PthReader.read(url.path)) { error in
                XCTAssertEqual("\(error)", "\(url.path): unsupported pickle opcode \(example.mention) at offset 2")
                XCTAssertEqual((error as? LocalizedError)?.errorDescription, "\(error)")
            }
        }
    }

    func testCompressedMembersAndForeignFilesAreRefused() throws {
        XCTAssertThrowsError(try PthReader.read(Self.fixture("compressed.pth"))) { error in
            XCTAssertTrue("\(error)".contains("compressed.pth: zip member sd_zip/data.pkl is compressed"), "\(error)")
        }
        let dir = try TestSupport.scratchDirectory()
        let text = dir.appendingPathComponent("notes.pth")
        try "hello".write(to: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PthReader.read(text.path)) { XCTAssertTrue("\($0)".hasPrefix(text.path + ": not a PyTorch"), "\($0)") }
        XCTAssertThrowsError(try PthReader.read(dir.appendingPathComponent("absent.pth").path)) {
            XCTAssertTrue("\($0)".hasSuffix("absent.pth: no such file"), "\($0)")
        }
    }

    func testCorruptBytesThrowInsteadOfCrashing() throws {
        let dir = try TestSupport.scratchDirectory()
        var random = SeededRandom(seed: 20240611)  // reproducible: a failing mutation can be replayed
        var failures = 0, trials = 0
        for name in ["sd_zip.pth", "sd_legacy.pth", "wrapped_zip.pth"] {
            let original = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
            for trial in 0..<150 {
                var bytes = [UInt8](original)
                for _ in 0..<3 { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
                let url = dir.appendingPathComponent("corrupt-\(trial)-\(name)")
                try Data(bytes).write(to: url)
                trials += 1
                do { _ = try PthReader.read(url.path) } catch let error as CheckpointError {
                    failures += 1
                    XCTAssertEqual(error.file, url.path)
                }
            }
        }
        XCTAssertGreaterThan(failures, 0, "no corruption among \(trials) was detected")
    }

    func testSelfReferencingPickleIsAnErrorNotARecursionCrash() throws {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP: a list that contains itself.
        let pickle: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E]
        try pickle.withUnsafeBytes { bytes in
            var unpickler = Unpickler(bytes: bytes, source: "cycle.pkl", persistentLoad: { _ in .none }, reduce: { _, _ in nil })
            let value = try unpickler.load()
            let materializer = TensorMaterializer(source: "cycle.pkl") { _ in UnsafeRawBufferPointer(start: nil, count: 0) }
            XCTAssertThrowsError(try materializer.value(value)) { XCTAssertTrue("\($0)".hasPrefix("cycle.pkl: "), "\($0)") }
        }
    }

    func testHalfPrecisionConversionIsExact() {
        XCTAssertEqual(TensorMaterializer.float(half: 0x3C00), 1)
        XCTAssertEqual(TensorMaterializer.float(half: 0xC000), -2)
        XCTAssertEqual(TensorMaterializer.float(half: 0x7BFF), 65504)
        XCTAssertEqual(TensorMaterializer.float(half: 0x0001), 0x1p-24)  // smallest subnormal
        XCTAssertEqual(TensorMaterializer.float(half: 0x8000).sign, .minus)
        XCTAssertEqual(TensorMaterializer.float(half: 0x7C00), .infinity)
        XCTAssertTrue(TensorMaterializer.float(half: 0x7E00).isNaN)
    }
}
