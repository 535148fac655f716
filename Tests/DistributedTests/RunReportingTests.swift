import Foundation
import TestSupport
import XCTest
@testable import Distributed

/// Rank-0 run reporting: TensorBoard event files (decoded here independently of the writer), metrics.jsonl, and the
/// YAML run configuration.
final class RunReportingTests: XCTestCase {
    // MARK: - An independent reader of TFRecord event files

    /// CRC-32C bit by bit (no table), to check the writer's table-driven one.
    static func crc32cBitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0x82F6_3B78 & (0 &- (crc & 1))) }
        }
        return ~crc
    }

    static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    struct FrameError: Error, CustomStringConvertible { let description: String }

    static func le<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>) -> T {
        bytes.reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    /// The records of a TFRecord file, both CRCs checked.
    static func records(_ data: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        while i < data.count {
            guard i + 12 <= data.count else { throw FrameError(description: "truncated header at \(i)") }
            let lengthBytes = Array(data[i..<i + 8])
            let length = Int(le(data[i..<i + 8]) as UInt64)
            guard le(data[i + 8..<i + 12]) as UInt32 == masked(crc32cBitwise(lengthBytes)) else { throw FrameError(description: "length CRC at \(i)") }
            guard i + 16 + length <= data.count else { throw FrameError(description: "truncated record at \(i)") }
            let payload = Array(data[i + 12..<i + 12 + length])
            guard le(data[i + 12 + length..<i + 16 + length]) as UInt32 == masked(crc32cBitwise(payload)) else { throw FrameError(description: "data CRC at \(i)") }
            out.append(payload)
            i += 16 + length
        }
        return out
    }

    enum Field: Equatable { case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32) }

    /// The fields of one protobuf message, in order.
    static func fields(_ m: [UInt8]) throws -> [(Int, Field)] {
        var out: [(Int, Field)] = []
        var i = 0
        func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < m.count, shift < 64 else { throw FrameError(description: "bad varint") }
                let b = m[i]; i += 1
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return v }
                shift += 7
            }
        }
        while i < m.count {
            let key = try varint()
            let field = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((field, .varint(try varint())))
            case 1: guard i + 8 <= m.count else { throw FrameError(description: "short fixed64") }
                out.append((field, .fixed64(le(m[i..<i + 8])))); i += 8
            case 2: let n = Int(try varint())
                guard i + n <= m.count else { throw FrameError(description: "short bytes") }
                out.append((field, .bytes(Array(m[i..<i + n])))); i += n
            case 5: guard i + 4 <= m.count else { throw FrameError(description: "short fixed32") }
                out.append((field, .fixed32(le(m[i..<i + 4])))); i += 4
            default: throw FrameError(description: "wire type \(key & 7)")
            }
        }
        return out
    }

    struct Event { var wallTime: Double?; var step: Int64 = 0; var fileVersion: String?; var scalars: [(tag: String, value: Float)] = [] }

    static func event(_ bytes: [UInt8]) throws -> Event {
        var e = Event()
        for (field, value) in try fields(bytes) {
            switch (field, value) {
            case let (1, .fixed64(bits)): e.wallTime = Double(bitPattern: bits)
            case let (2, .varint(v)): e.step = Int64(bitPattern: v)
            case let (3, .bytes(b)): e.fileVersion = String(decoding: b, as: UTF8.self)
            case let (5, .bytes(summary)):
                for case let (1, .bytes(valueBytes)) in try fields(summary) {
                    var tag: String?, simple: Float?
                    for (f, v) in try fields(valueBytes) {
                        if f == 1, case let .bytes(b) = v { tag = String(decoding: b, as: UTF8.self) }
                        if f == 2, case let .fixed32(bits) = v { simple = Float(bitPattern: bits) }
                    }
                    guard let tag, let simple else { throw FrameError(description: "summary value without tag or simple_value") }
                    e.scalars.append((tag, simple))
                }
            default: throw FrameError(description: "unexpected field \(field) \(value)")
            }
        }
        return e
    }

    static func events(_ url: URL) throws -> [Event] {
        try records([UInt8](try Data(contentsOf: url))).map(event)
    }

    // MARK: - TensorBoard

    func testCRC32CMatchesKnownValueAndBitwiseReference() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(Self.crc32cBitwise(Array("123456789".utf8)), 0xE306_9283)
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 7, 64, 1000] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(CRC32C.checksum(bytes), Self.crc32cBitwise(bytes), "length \(n)")
        }
    }

    func testEventFileDecodesToTheScalarsWritten() throws {
        let dir = try TestSupport.scratchDirectory().appendingPathComponent("run")
        let before = Date().timeIntervalSince1970
        let writer = try TensorBoardWriter(directory: dir)
        let written: [(String, Double, Int)] = [("train/loss", 0.75, 0), ("train/lr", 0.01, 0), ("train/loss", 0.5, 1),
                                               ("train/lr", 0.009, 1), ("val/mIoU ∂", -3.25, 1 << 40)]
        for (tag, value, step) in written { writer.addScalar(tag, value, step: step) }
        writer.close()

        let name = writer.fileURL.lastPathComponent
        XCTAssertEqual(writer.fileURL.deletingLastPathComponent().standardizedFileURL.path, dir.standardizedFileURL.path)
        XCTAssertTrue(name.hasPrefix("events.out.tfevents."), name)
        let seconds = Double(name.split(separator: ".")[3]) ?? 0
        XCTAssertEqual(seconds, before, accuracy: 5)

        let events = try Self.events(writer.fileURL)
        XCTAssertEqual(events.count, 1 + written.count)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertTrue(events[0].scalars.isEmpty)
        for e in events { XCTAssertEqual(e.wallTime ?? 0, before, accuracy: 5) }
        for (e, w) in zip(events.dropFirst(), written) {
            XCTAssertNil(e.fileVersion)
            XCTAssertEqual(e.step, Int64(w.2))
            XCTAssertEqual(e.scalars.count, 1)
            XCTAssertEqual(e.scalars.first?.tag, w.0)
            XCTAssertEqual(e.scalars.first?.value, Float(w.1))
        }
    }

    func testStepsReachTheFileBeforeCloseAndTheReaderCatchesCorruption() throws {
        let dir = try TestSupport.scratchDirectory()
        let writer = try TensorBoardWriter(directory: dir)
        writer.addScalar("loss", 2, step: 10)
        writer.addScalar("loss", 1, step: 11)   // a new step writes step 10's records out
        XCTAssertEqual(try Self.events(writer.fileURL).map(\.step), [0, 10])
        writer.flush()
        XCTAssertEqual(try Self.events(writer.fileURL).map(\.step), [0, 10, 11])
        writer.close()
        writer.addScalar("loss", 0, step: 12)   // after close: ignored, no crash
        XCTAssertEqual(try Self.events(writer.fileURL).count, 3)

        // A second writer in the same folder (same second) gets its own file.
        let second = try TensorBoardWriter(directory: dir)
        XCTAssertNotEqual(second.fileURL, writer.fileURL)
        second.close()

        // The reader above really checks the CRCs: one flipped byte in the data is caught.
        var bytes = [UInt8](try Data(contentsOf: writer.fileURL))
        bytes[bytes.count - 6] ^= 0x01
        XCTAssertThrowsError(try Self.records(bytes))
    }

    // MARK: - metrics.jsonl

    func testMetricsLinesAreSortedJSONAndAppendAcrossRuns() throws {
        let dir = try TestSupport.scratchDirectory()
        let log = try MetricsLog(directory: dir)
        let t = Date(timeIntervalSince1970: 1_716_000_000.25)
        log.append(step: 1, ["train/loss": 0.6931, "lr": 0.01, "a\"quote": 1e-5], wallTime: t)
        log.append(step: 2, ["train/loss": .nan, "lr": 0.0095], wallTime: t.addingTimeInterval(1))
        // Each line is on disk before close.
        XCTAssertEqual(try String(contentsOf: log.url, encoding: .utf8).split(separator: "\n").count, 2)
        log.close()
        let resumed = try MetricsLog(directory: dir)
        resumed.append(step: 3, ["lr": 0.009], wallTime: t.addingTimeInterval(2))
        resumed.close()

        XCTAssertEqual(log.url.lastPathComponent, "metrics.jsonl")
        let text = try String(contentsOf: log.url, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[0], #"{"a\"quote":1e-05,"lr":0.01,"step":1,"train/loss":0.6931,"wall_time":1716000000.25}"#)
        let objects = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(objects.map { Set($0.keys) }, [["a\"quote", "lr", "step", "train/loss", "wall_time"],
                                                      ["lr", "step", "train/loss", "wall_time"], ["lr", "step", "wall_time"]])
        XCTAssertEqual(objects.map { $0["step"] as? Int }, [1, 2, 3])
        XCTAssertEqual(objects[1]["lr"] as? Double, 0.0095)
        XCTAssertTrue(objects[1]["train/loss"] is NSNull, "a NaN is written as null")
        XCTAssertEqual(objects[2]["wall_time"] as? Double, 1_716_000_002.25)
        for line in lines {   // keys in sorted order in the text itself
            let keys = try XCTUnwrap(try NSRegularExpression(pattern: #""((?:[^"\\]|\\.)*)":"#)).matches(in: line, range: NSRange(line.startIndex..., in: line))
                .map { String(line[Range($0.range(at: 1), in: line)!]) }
            XCTAssertEqual(keys, keys.sorted(), line)
        }
    }

    // MARK: - YAML configuration

    enum Schedule: String, CaseIterable, ConfigRepresentable { case poly, step }

    func write(_ text: String, _ name: String = "config.yaml") throws -> URL {
        let url = try TestSupport.scratchDirectory().appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testFlagWinsThenFileThenDefault() throws {
        let url = try write("""
        # training
        lr: 0.5
        epochs: 3
        batch-size: 8
        schedule: step
        scales: [1.0, 0.5, 1.5]
        weights: ~
        name: "007"
        """)
        var config = try RunConfig.load(yaml: url)
        XCTAssertEqual(try config.resolve("lr", flag: 0.1, default: 0.01), 0.1)
        XCTAssertEqual(try config.resolve("epochs", flag: nil as Int?, default: 10), 3)
        XCTAssertEqual(try config.resolve("warmup", flag: nil as Int?, default: 7), 7)
        XCTAssertEqual(try config.resolve("batch_size", flag: nil as Int?, default: 1), 8)
        XCTAssertEqual(try config.resolve("schedule", flag: nil as Schedule?, default: .poly), .step)
        XCTAssertEqual(try config.resolve("scales", flag: nil as [Double]?, default: [1]), [1.0, 0.5, 1.5])
        XCTAssertNil(try config.resolveOptional("weights", flag: nil as String?))
        XCTAssertEqual(try config.require("name", flag: nil as String?), "007")
        XCTAssertEqual(config.origins, ["lr": .flag, "epochs": .file, "warmup": .default, "batch_size": .file,
                                        "schedule": .file, "scales": .file, "name": .file])
        XCTAssertNoThrow(try config.checkUnknownKeys())

        var none = try RunConfig.load(yaml: nil)
        XCTAssertEqual(try none.resolve("lr", flag: nil as Double?, default: 0.01), 0.01)
        XCTAssertThrowsError(try none.require("data_dir", flag: nil as String?)) { error in
            XCTAssertTrue("\(error)".contains("--data-dir"), "\(error)")
        }
    }

    /// Asserts `body` throws a one-line `ConfigError` that starts with `prefix` and contains `fragment`.
    func assertConfigError(_ body: () throws -> Void, prefix: String, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ConfigError, text, line: line)
            XCTAssertTrue(text.hasPrefix(prefix), "\(text) does not start with \(prefix)", line: line)
            XCTAssertTrue(text.contains(fragment), "\(text) lacks \(fragment)", line: line)
            XCTAssertFalse(text.contains("\n"), "not one line: \(text)", line: line)
        }
    }

    func testUnknownKeysWrongTypesAndMalformedFilesNameTheFileAndLine() throws {
        let typo = try write("lr: 0.1\nlrr: 0.2\nepochs: 2\n")
        var config = try RunConfig.load(yaml: typo)
        _ = try config.resolve("lr", flag: nil as Double?, default: 0)
        _ = try config.resolve("epochs", flag: nil as Int?, default: 0)
        assertConfigError({ try config.checkUnknownKeys() }, prefix: "\(typo.path):2: ", "unknown key 'lrr'")
        let out = typo.deletingLastPathComponent().appendingPathComponent("resolved.yaml")
        assertConfigError({ try config.write(to: out) }, prefix: "\(typo.path):2: ", "lrr")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        let wrongType = try write("lr: 0.1\nepochs: many\n")
        var wrong = try RunConfig.load(yaml: wrongType)
        assertConfigError({ _ = try wrong.resolve("epochs", flag: nil as Int?, default: 1) }, prefix: "\(wrongType.path):2: ", "'epochs' must be an integer")
        assertConfigError({ _ = try wrong.resolve("lr", flag: nil as Schedule?, default: .poly) }, prefix: "\(wrongType.path):1: ", "one of poly, step")
        // A flag given wins without looking at the bad file value.
        XCTAssertEqual(try wrong.resolve("epochs", flag: 4, default: 1), 4)

        let malformed = try write("lr: 0.1\nscales: [1.0, 0.5\nepochs: 3\n")
        assertConfigError({ _ = try RunConfig.load(yaml: malformed) }, prefix: "\(malformed.path):", "malformed YAML")
        let badIndent = try write("lr: 0.1\n  epochs: 3\n")
        assertConfigError({ _ = try RunConfig.load(yaml: badIndent) }, prefix: "\(badIndent.path):2: ", "malformed YAML")
        assertConfigError({ _ = try RunConfig.load(yaml: try self.write("- 1\n- 2\n")) }, prefix: "/", "top level must be a mapping")
        assertConfigError({ _ = try RunConfig.load(yaml: try self.write("lr: 1\nlr: 2\n")) }, prefix: "/", ":2: key 'lr' is set twice")
        assertConfigError({ _ = try RunConfig.load(yaml: try self.write("optim:\n  lr: 1\n")) }, prefix: "/", ":1: key 'optim' holds a mapping")
        let missing = typo.deletingLastPathComponent().appendingPathComponent("absent.yaml")
        assertConfigError({ _ = try RunConfig.load(yaml: missing) }, prefix: "\(missing.path): ", "no such file")
    }

    /// Found by fuzzing (Fuzz/regressions/yaml): a quoted value or key holding a newline or an escape sequence is
    /// quoted back escaped, so the error stays one line.
    func testQuotedNewlinesInValuesAndKeysStayOneLine() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/regressions/yaml/value-with-newline.yaml")
        var config = try RunConfig.load(yaml: url)
        assertConfigError({ _ = try config.resolve("flip", flag: nil as Bool?, default: false) }, prefix: "\(url.path):2: ",
                          "got '0.01s:5\\nlr: \\u{1B}[2J'")
        _ = try config.resolve("lr", flag: nil as Double?, default: 0)
        assertConfigError({ try config.checkUnknownKeys() }, prefix: "\(url.path):3: ", "unknown key 'bad\\nkey'")
    }

    func testResolvedConfigRoundTrips() throws {
        var config = try RunConfig.load(yaml: try write("epochs: 3\nlr: 1e-4\n"))
        let values: (Int, Double, Float, Bool, String, String, [Int], Schedule, Double, [Double]) = (
            try config.resolve("epochs", flag: nil, default: 1),
            try config.resolve("lr", flag: nil, default: 0.1),
            try config.resolve("momentum", flag: Float(0.9), default: 0),
            try config.resolve("amp", flag: nil, default: true),
            try config.resolve("note", flag: "yes: #1 \"quoted\"\nsecond line", default: ""),
            try config.resolve("data-dir", flag: nil, default: "/data/voc 2012"),
            try config.resolve("crop", flag: [512, -1], default: []),
            try config.resolve("schedule", flag: .step, default: .poly),
            try config.resolve("clip", flag: nil, default: 1e20),
            try config.resolve("weights", flag: nil, default: [1.0 / 3.0, -2.5e-300, .infinity]))
        let dir = try TestSupport.scratchDirectory()
        let url = dir.appendingPathComponent("config.yaml")
        try config.write(to: url, header: "pcs-mpi train-pc\nresolved configuration")
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("# pcs-mpi train-pc\n# resolved configuration\n"), text)
        let keyOrder = text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix(" ") }.compactMap { $0.split(separator: ":").first.map(String.init) }
        XCTAssertEqual(keyOrder, keyOrder.sorted())

        var back = try RunConfig.load(yaml: url)
        XCTAssertEqual(try back.resolve("epochs", flag: nil, default: 0), values.0)
        XCTAssertEqual(try back.resolve("lr", flag: nil, default: 0.0), values.1)
        XCTAssertEqual(try back.resolve("momentum", flag: nil, default: Float(0)), values.2)
        XCTAssertEqual(try back.resolve("amp", flag: nil, default: false), values.3)
        XCTAssertEqual(try back.resolve("note", flag: nil, default: ""), values.4)
        XCTAssertEqual(try back.resolve("data-dir", flag: nil, default: ""), values.5)
        XCTAssertEqual(try back.resolve("crop", flag: nil, default: [Int]()), values.6)
        XCTAssertEqual(try back.resolve("schedule", flag: nil, default: Schedule.poly), values.7)
        XCTAssertEqual(try back.resolve("clip", flag: nil, default: 0.0), values.8)
        XCTAssertEqual(try back.resolve("weights", flag: nil, default: [Double]()), values.9)
        XCTAssertNoThrow(try back.checkUnknownKeys())
        XCTAssertEqual(back.resolved, config.resolved)
        XCTAssertEqual(Set(back.origins.values), [.file])
        XCTAssertEqual(values.1, 1e-4)
    }
}
