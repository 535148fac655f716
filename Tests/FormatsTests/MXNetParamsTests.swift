import Foundation
import TestSupport
import XCTest
@testable import Formats

/// The MXNet `.params` reader and the ResNet-38 renaming, against the files scripts/fixtures/make_mxnet_params.py
/// writes byte by byte (Fixtures/mxnet, with expected.json) and against damaged or hand-made inputs.
final class MXNetParamsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mxnet")

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    struct ExpectedArray: Decodable {
        var name: String
        var dtype: String
        var shape: [Int]
        var floats: [Double] = []
        var integers: [Int64] = []

        enum CodingKeys: String, CodingKey { case name, dtype, shape, values }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            dtype = try c.decode(String.self, forKey: .dtype)
            shape = try c.decode([Int].self, forKey: .shape)
            if dtype.hasPrefix("float") { floats = try c.decode([Double].self, forKey: .values) } else { integers = try c.decode([Int64].self, forKey: .values) }
        }
    }

    static func expected() throws -> [String: [ExpectedArray]] {
        try JSONDecoder().decode([String: [ExpectedArray]].self, from: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))
    }

    /// The rows of the spec's key list (copied into Fixtures/mxnet by the fixture script).
    static func tsvRows() throws -> [ResNet38Weights.Row] {
        let text = try String(contentsOf: fixtures.appendingPathComponent("KEYS_resnet38_aff.tsv"), encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let fields = line.split(separator: "\t").map(String.init)
            let shape = fields[1] == "scalar" ? [] : fields[1].split(separator: "x").map { Int($0)! }
            return ResNet38Weights.Row(key: fields[0], shape: shape, isParameter: fields[2] == "param")
        }
    }

    /// The ResNet-38 MXNet names in file order with their real shapes.
    static func resnetNames() throws -> [(name: String, shape: [Int])] {
        struct Named: Decodable { var name: String; var shape: [Int] }
        let list = try JSONDecoder().decode([Named].self, from: Data(contentsOf: fixtures.appendingPathComponent("resnet38_names.json")))
        return list.map { ($0.name, $0.shape) }
    }

    /// Asserts `body` throws a one-line `CheckpointError` naming `path` and containing every one of `words`.
    func assertOneLineError(_ path: String, _ words: [String], line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error for \(path)", line: line)
        } catch let error as CheckpointError {
            let text = error.description
            XCTAssertEqual(error.file, path, line: line)
            XCTAssertFalse(text.contains("\n"), text, line: line)
            for word in words { XCTAssertTrue(text.contains(word), "\"\(word)\" not in: \(text)", line: line) }
        } catch {
            XCTFail("unexpected error type: \(error)", line: line)
        }
    }

    // MARK: reading

    func testEveryHeaderVersionAndDtype() throws {
        let expected = try Self.expected()
        let versions: [String: MXNetParams.HeaderVersion] = ["legacy": .legacy, "v1": .v1, "v2": .v2, "v3": .v3]
        for (stem, version) in versions {
            let file = "\(stem).params"
            guard let arrays = expected[file] else { XCTFail("expected.json has no \(file)"); continue }
            let entries = try MXNetParams.read(Self.fixture(file))
            XCTAssertEqual(entries.map(\.name), arrays.map(\.name), file)
            XCTAssertEqual(Set(arrays.map(\.dtype)).isSuperset(of: ["float32", "float64", "float16"]), true, file)
            for (entry, array) in zip(entries, arrays) {
                let label = "\(file) \(array.name)"
                XCTAssertEqual(entry.version, version, label)
                XCTAssertEqual(entry.dtype, array.dtype, label)
                XCTAssertEqual(entry.tensor.shape, array.shape, label)
                switch entry.tensor.storage {
                case .float32(let values):
                    XCTAssertTrue(array.dtype.hasPrefix("float"), label)
                    // float32 and float16 values are exact; float64 ones are rounded to float32 once.
                    XCTAssertEqual(values.map { $0.bitPattern }, array.floats.map { Float($0).bitPattern }, label)
                case .int64(let values):
                    XCTAssertFalse(array.dtype.hasPrefix("float"), label)
                    XCTAssertEqual(values, array.integers, label)
                }
            }
        }
        XCTAssertEqual(try MXNetParams.read(Self.fixture("v3.params")).last?.tensor.shape, [], "V3's ndim 0 is a scalar")
    }

    func testStateDictStripsPrefixesAndLoadDispatchesOnContent() throws {
        let arrays = try XCTUnwrap(try Self.expected()["v1.params"])
        let dict = try MXNetParams.stateDict(Self.fixture("v1.params"))
        XCTAssertEqual(dict.keys, arrays.map { String($0.name.dropFirst(4)) })
        XCTAssertTrue(arrays.allSatisfy { $0.name.hasPrefix("arg:") || $0.name.hasPrefix("aux:") })
        XCTAssertEqual(dict.source, Self.fixture("v1.params"))
        // By content, not by extension.
        let dir = try TestSupport.scratchDirectory()
        let disguised = dir.appendingPathComponent("weights.h5")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("v1.params"), to: disguised)
        XCTAssertTrue(MXNetParams.isParamsFile(disguised.path))
        XCTAssertFalse(MXNetParams.isParamsFile(Self.fixture("expected.json")))
        let loaded = try StateDict.load(path: disguised.path)
        XCTAssertEqual(loaded.keys, dict.keys)
        for key in dict.keys { XCTAssertEqual(loaded[key], dict[key], key) }
    }

    // MARK: bad input

    func testTruncatedAndSparseFixtures() throws {
        assertOneLineError(Self.fixture("truncated.params"), ["truncated", "array 3 of"]) { _ = try MXNetParams.read(Self.fixture("truncated.params")) }
        assertOneLineError(Self.fixture("sparse.params"), ["arg:sparse_embed_weight", "row_sparse"]) {
            _ = try MXNetParams.stateDict(Self.fixture("sparse.params"))
        }
        let missing = Self.fixture("no-such.params")
        assertOneLineError(missing, ["no such file"]) { _ = try MXNetParams.read(missing) }
    }

    func testEveryPrefixOfAFileIsAnError() throws {
        let dir = try TestSupport.scratchDirectory()
        for (stem, step) in [("legacy", 5), ("v3", 1)] {
            let bytes = try Data(contentsOf: Self.fixtures.appendingPathComponent("\(stem).params"))
            let path = dir.appendingPathComponent("cut.params").path
            for length in stride(from: 0, to: bytes.count, by: step) {
                try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
                assertOneLineError(path, []) { _ = try MXNetParams.read(path) }
            }
        }
    }

    /// Edits of v2.params at the offsets of its first record (header at 24: magic, storage type at 28, ndim at 32, the
    /// four int64 dims at 36, context at 68, dtype flag at 76) and of its name list.
    func testGarbledHeadersAreOneLineErrors() throws {
        let original = try Data(contentsOf: Self.fixtures.appendingPathComponent("v2.params"))
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("bad.params").path
        func patched(_ edits: [(Int, [UInt8])]) throws -> String {
            var bytes = original
            for (offset, new) in edits { bytes.replaceSubrange(offset..<(offset + new.count), with: new) }
            try bytes.write(to: URL(fileURLWithPath: path))
            return path
        }
        func le32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        XCTAssertEqual(Array(original[24..<28]), le32(Int32(bitPattern: 0xF993_FAC9)), "the fixture's layout changed")

        assertOneLineError(try patched([(0, le64(0x113))]), ["not an MXNet .params file"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(16, le64(1 << 40))]), ["claims"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(28, le32(7))]), ["array 1 of 7", "storage type 7"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(76, le32(11))]), ["array 1 of 7", "dtype flag 11"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(76, le32(99))]), ["dtype flag 99"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(32, le32(1000))]), ["ndim 1000"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(36, le64(UInt64(bitPattern: -5)))]), ["dim -5"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(36, le64(1 << 40))]), ["truncated", "array 1 of 7"]) { _ = try MXNetParams.read(path) }
        // The header word is neither a magic nor a plausible legacy ndim.
        assertOneLineError(try patched([(24, le32(0x1234_5678))]), ["neither an NDArray magic"]) { _ = try MXNetParams.read(path) }
        // V2 with ndim 0 is a shapeless ("none") array: nothing follows its shape, and the error names it.
        let dense = le32(Int32(bitPattern: 0xF993_FAC8)) + le32(1) + le64(2) + le32(1) + le32(0) + le32(0) + [0, 0, 128, 63, 0, 0, 0, 64]
        try Self.listFile([le32(Int32(bitPattern: 0xF993_FAC9)) + le32(0) + le32(0), dense], ["arg:x", "arg:y"]).write(to: URL(fileURLWithPath: path))
        assertOneLineError(path, ["arg:x", "without a shape"]) { _ = try MXNetParams.read(path) }
        // Two names that collide once arg:/aux: are stripped.
        try Self.listFile([dense, dense], ["arg:w", "aux:w"]).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try MXNetParams.read(path).map(\.tensor.floats), [[1, 2], [1, 2]])
        assertOneLineError(path, ["arg:w", "aux:w"]) { _ = try MXNetParams.stateDict(path) }

        // Names: none at all, or fewer than the arrays.
        let names = try XCTUnwrap(try Self.expected()["v2.params"]).map(\.name)
        let namesAt = original.count - 8 - names.reduce(0) { $0 + 8 + $1.utf8.count }
        XCTAssertEqual(String(decoding: original[(namesAt + 16)...].prefix(names[0].utf8.count), as: UTF8.self), names[0])
        try (original.prefix(namesAt) + le64(0)).write(to: URL(fileURLWithPath: path))
        assertOneLineError(path, ["unnamed"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(namesAt, le64(6))]), ["7 arrays but 6 names"]) { _ = try MXNetParams.read(path) }
        assertOneLineError(try patched([(namesAt + 8, le64(1 << 20))]), ["truncated", "name 1 of 7"]) { _ = try MXNetParams.read(path) }
    }

    /// An NDArray list as NDArray::Save writes it, from ready-made array records.
    static func listFile(_ records: [[UInt8]], _ names: [String]) -> Data {
        func le64(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt64(v).littleEndian, Array.init) }
        var bytes = le64(0x112) + le64(0) + le64(records.count) + records.flatMap { $0 } + le64(names.count)
        for name in names { bytes += le64(name.utf8.count) + Array(name.utf8) }
        return Data(bytes)
    }

    func testRandomCorruptionNeverCrashes() throws {
        let original = try Data(contentsOf: Self.fixtures.appendingPathComponent("v3.params"))
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("flipped.params").path
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var failures = 0
        for _ in 0..<800 {
            var bytes = original
            for _ in 0..<(1 + next() % 3) { bytes[next() % bytes.count] = UInt8(next() % 256) }
            try bytes.write(to: URL(fileURLWithPath: path))
            do { _ = try MXNetParams.read(path) } catch let error as CheckpointError {
                failures += 1
                XCTAssertFalse(error.description.contains("\n"))
            }
        }
        XCTAssertGreaterThan(failures, 50, "most corruptions of the header bytes must be detected")
    }

    // MARK: ResNet-38

    func testTableEqualsTheSpecTSV() throws {
        let rows = try Self.tsvRows()
        XCTAssertEqual(rows.count, 232)
        XCTAssertEqual(ResNet38Weights.affinityNet, rows)
        let backbone = rows.filter { !$0.key.hasSuffix("num_batches_tracked") && !$0.key.hasPrefix("f8_") && !$0.key.hasPrefix("f9.") }
        XCTAssertEqual(ResNet38Weights.backbone.map(\.key), backbone.map(\.key))
        XCTAssertEqual(ResNet38Weights.backbone.map(\.shape), backbone.map(\.shape))
        XCTAssertEqual(backbone.count, 191)
    }

    func testRenamingRulesOfSection87() throws {
        let cases: [(String, String?)] = [
            ("arg:conv1a_weight", "conv1a.weight"),
            ("arg:res4b3_branch2b1_weight", "b4_3.conv_branch2b1.weight"),
            ("arg:bn5a_branch2a_gamma", "b5.bn_branch2a.weight"),
            ("arg:bn2b1_branch2b1_beta", "b2_1.bn_branch2b1.bias"),
            ("aux:bn6a_branch2b2_moving_mean", "b6.bn_branch2b2.running_mean"),
            ("res7a_branch1_weight", "b7.conv_branch1.weight"),
            ("aux:bn7_moving_var", "bn7.running_var"),
            ("arg:bn7_gamma", "bn7.weight"),
            ("arg:linear1000_weight", nil),
            ("arg:linear1000_bias", nil),
        ]
        for (mxnet, pytorch) in cases { XCTAssertEqual(try ResNet38Weights.pytorchName(mxnet: mxnet), pytorch, mxnet) }
        for bad in ["arg:bn7_alpha", "arg:res4b3_branch2b1_bias", "arg:conv1a_bias", "weight"] {
            assertOneLineError("w.params", [bad]) { _ = try ResNet38Weights.pytorchName(mxnet: bad, source: "w.params") }
        }
    }

    /// The file with every array name of the ImageNet checkpoint (shuffled, arg: before aux:): renamed, reordered to
    /// PyTorch's order, linear1000 dropped, each tensor still the one stored under its MXNet name.
    func testResNet38NamesFileConverts() throws {
        let names = try Self.resnetNames()
        XCTAssertEqual(names.count, 193)
        let dict = try ResNet38Weights.loadMXNet(Self.fixture("resnet38_names.params"))
        XCTAssertEqual(dict.keys, ResNet38Weights.backbone.map(\.key))
        XCTAssertNotEqual(names.compactMap { try? ResNet38Weights.pytorchName(mxnet: $0.name) }, dict.keys, "the fixture is shuffled")
        for (index, entry) in names.enumerated() {
            guard let key = try ResNet38Weights.pytorchName(mxnet: entry.name) else {
                XCTAssertTrue(entry.name.contains("linear1000"), entry.name)
                continue
            }
            XCTAssertEqual(dict[key]?.floats, [Float(index)], "\(entry.name) → \(key)")
            XCTAssertEqual(dict[key]?.shape.count, entry.shape.count, key)
        }
        // Tiny shapes: the names are right, the shapes are not, and the check says so.
        assertOneLineError(Self.fixture("resnet38_names.params"), ["backbone", "mis-shaped 191"]) { _ = try ResNet38Weights.checkAffinityNet(dict) }
    }

    /// The real shapes of the ImageNet checkpoint (from the fixture script, without its 500 MB of values) renamed
    /// by the Swift rules give exactly the backbone rows of the TSV.
    func testRenamedNamesAndShapesMatchTheBackbone() throws {
        let rows = try Self.tsvRows()
        let backbone = rows.filter { !$0.key.hasSuffix("num_batches_tracked") && !$0.key.hasPrefix("f8_") && !$0.key.hasPrefix("f9.") }
        var renamed: [(key: String, shape: [Int])] = []
        for entry in try Self.resnetNames() {
            if let key = try ResNet38Weights.pytorchName(mxnet: entry.name) { renamed.append((key, entry.shape)) }
        }
        let report = ResNet38Weights.report(renamed, against: backbone.map { ($0.key, $0.shape) })
        XCTAssertTrue(report.isExactMatch, report.description)
        XCTAssertNoThrow(try ResNet38Weights.checkAffinityNet(renamed, source: "x"))

        var wrong = renamed
        wrong[0].shape = wrong[0].shape.map { $0 + 1 }
        assertOneLineError("x", ["mis-shaped 1", wrong[0].key]) { _ = try ResNet38Weights.checkAffinityNet(wrong, source: "x") }
        let short = Array(renamed.dropLast())
        assertOneLineError("x", ["missing 1", renamed.last!.key]) { _ = try ResNet38Weights.checkAffinityNet(short, source: "x") }
        // The whole AffinityNet passes as well; heads without num_batches_tracked do not.
        let whole: [(key: String, shape: [Int])] = rows.map { ($0.key, $0.shape) }
        XCTAssertNoThrow(try ResNet38Weights.checkAffinityNet(whole, source: "x"))
        let heads: [(key: String, shape: [Int])] = rows.filter { $0.key.hasPrefix("f8_") || $0.key.hasPrefix("f9.") }.map { ($0.key, $0.shape) }
        assertOneLineError("x", ["AffinityNet", "missing"]) { _ = try ResNet38Weights.checkAffinityNet(renamed + heads, source: "x") }
    }
}
