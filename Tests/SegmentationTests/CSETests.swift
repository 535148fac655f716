import Foundation
import Imaging
import XCTest
@testable import Segmentation

/// The fixtures of `Fixtures/cse`, in upstream's own layout: inputs and the output of upstream's `SP_2/CSE_voc.py`
/// on them (see scripts/fixtures/make_cse_fixtures.py).
enum CSEFixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/cse")

    struct Case {
        var id: String
        var classes: [Int]
        var width: Int, height: Int
        var saliency: [UInt8]
        var attention: [Int: [UInt8]]
        var randomWalk: [UInt8]
        var expected: [UInt8]
    }

    static func png(_ relative: String) throws -> PixelImage {
        let url = root.appendingPathComponent(relative)
        return try PNGCodec.decodeIndices([UInt8](Data(contentsOf: url)), name: url.path)
    }

    /// Every case of `voc12/trainaug_cls.txt`, read as upstream reads it (an attention file that is absent is
    /// skipped).
    static func cases() throws -> [Case] {
        let list = try String(contentsOf: root.appendingPathComponent("voc12/trainaug_cls.txt"), encoding: .utf8)
        return try list.split(separator: "\n").map { line in
            let fields = line.split(separator: " ").map(String.init)
            let id = fields[0]
            let classes = fields.dropFirst().map { Int($0)! }
            let saliency = try png("VOC2012/saliency_map_DRS/\(id).png")
            var attention: [Int: [UInt8]] = [:]
            for c in classes {
                let relative = "save/attention/train_aug/\(id)_\(c).png"
                if FileManager.default.fileExists(atPath: root.appendingPathComponent(relative).path) {
                    attention[c] = try png(relative).pixels
                }
            }
            let randomWalk = try png("save/out_rw/\(id).png")
            let expected = try png("save/pseudo_label/\(id).png")
            for image in [randomWalk, expected] {
                precondition(image.width == saliency.width && image.height == saliency.height, "\(id): fixture sizes differ")
            }
            return Case(id: id, classes: classes, width: saliency.width, height: saliency.height,
                        saliency: saliency.pixels, attention: attention, randomWalk: randomWalk.pixels,
                        expected: expected.pixels)
        }
    }
}

final class CSETests: XCTestCase {
    private func run(_ c: CSEFixture.Case, _ cse: ConflictSelfElimination = ConflictSelfElimination(),
                     classes: Int = 20) throws -> [UInt8] {
        try cse.labels(saliency: c.saliency, width: c.width, height: c.height, attention: c.attention,
                       randomWalk: c.randomWalk, classes: classes)
    }

    func testFixturesCoverTheCases() throws {
        let cases = try CSEFixture.cases()
        let ids = Set(cases.map(\.id))
        for id in ["missing_attention", "conflict", "constant_attention", "below_one_percent", "exactly_one_percent",
                   "salient_background", "random_walk_disagreement", "thresholds"] {
            XCTAssert(ids.contains(id), "fixture case \(id) missing")
        }
        let missing = try XCTUnwrap(cases.first { $0.id == "missing_attention" })
        XCTAssertLessThan(missing.attention.count, missing.classes.count, "missing_attention has every map")
    }

    /// Pixel-identical to upstream's CSE_voc.py on every fixture.
    func testPixelIdenticalToUpstream() throws {
        for c in try CSEFixture.cases() {
            let got = try run(c)
            let differing = zip(got, c.expected).enumerated().filter { $0.element.0 != $0.element.1 }
            XCTAssertEqual(got.count, c.expected.count, c.id)
            XCTAssert(differing.isEmpty, "\(c.id): \(differing.count) of \(got.count) pixels differ from upstream, first at "
                + (differing.first.map { "(x \($0.offset % c.width), y \($0.offset / c.width)): \($0.element.0) vs \($0.element.1)" } ?? ""))
        }
    }

    /// Classes without a map have all-zero channels, so C = 80 (COCO) gives the same labels on VOC inputs.
    func testMoreClassesChangeNothing() throws {
        for c in try CSEFixture.cases() {
            XCTAssertEqual(try run(c, classes: 80), c.expected, c.id)
        }
    }

    /// The thresholds are live: moving each changes some fixture's labels, and the defaults are upstream's.
    func testThresholdsAreOptions() throws {
        let defaults = ConflictSelfElimination()
        XCTAssertEqual([defaults.conflict, defaults.foreground, defaults.background, defaults.attention,
                        defaults.minimumForeground], [0.9, 0.4, 32, 0.8, 0.01])
        let cases = try CSEFixture.cases()
        for (name, cse) in [("conflict", ConflictSelfElimination(conflict: 0.99)),
                            ("foreground", ConflictSelfElimination(foreground: 0.2)),
                            ("background", ConflictSelfElimination(background: 128)),
                            ("attention", ConflictSelfElimination(attention: 0.95)),
                            ("minimumForeground", ConflictSelfElimination(minimumForeground: 0))] {
            let changed = try cases.filter { try run($0, cse) != $0.expected }
            XCTAssertFalse(changed.isEmpty, "\(name): no fixture changed")
        }
        // Without the 1 % rule, the 4 sure pixels of below_one_percent survive.
        let below = try XCTUnwrap(cases.first { $0.id == "below_one_percent" })
        XCTAssertEqual(Set(below.expected), [255])
        let kept = try run(below, ConflictSelfElimination(minimumForeground: 0))
        XCTAssertEqual(kept.filter { $0 != 0 && $0 != 255 }.count, 4)
    }

    func testBadInput() throws {
        let c = try XCTUnwrap(CSEFixture.cases().first { $0.id == "conflict" })
        let cse = ConflictSelfElimination()
        func expectError(_ expected: ConflictSelfEliminationError, mentioning words: [String],
                         _ body: () throws -> [UInt8], line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                XCTAssertEqual(error as? ConflictSelfEliminationError, expected, line: line)
                let message = "\(error)"
                XCTAssertFalse(message.contains("\n"), "not one line: \(message)", line: line)
                for word in words { XCTAssert(message.contains(word), "\(message) does not name \(word)", line: line) }
            }
        }
        let (w, h) = (c.width, c.height)

        var attention = c.attention
        attention[14] = Array(attention[14]!.dropLast(w))
        expectError(.sizeMismatch(what: "attention map of class 14", count: w * (h - 1), width: w, height: h),
                    mentioning: ["attention map of class 14", "\(w)×\(h)"]) {
            try cse.labels(saliency: c.saliency, width: w, height: h, attention: attention,
                           randomWalk: c.randomWalk, classes: 20)
        }
        expectError(.sizeMismatch(what: "random-walk labels", count: w * h + 1, width: w, height: h),
                    mentioning: ["random-walk", "\(w)×\(h)"]) {
            try cse.labels(saliency: c.saliency, width: w, height: h, attention: c.attention,
                           randomWalk: c.randomWalk + [0], classes: 20)
        }
        expectError(.sizeMismatch(what: "saliency map", count: w * h, width: w + 1, height: h),
                    mentioning: ["saliency"]) {
            try cse.labels(saliency: c.saliency, width: w + 1, height: h, attention: c.attention,
                           randomWalk: c.randomWalk, classes: 20)
        }
        for bad in [20, 25, -1] {
            var extra = c.attention
            extra[bad] = c.attention[0]!
            expectError(.classOutOfRange(bad, classes: 20), mentioning: ["class \(bad)", "20 classes"]) {
                try cse.labels(saliency: c.saliency, width: w, height: h, attention: extra,
                               randomWalk: c.randomWalk, classes: 20)
            }
        }
        // Class 14 is fine for C = 20 but not for C = 14.
        expectError(.classOutOfRange(14, classes: 14), mentioning: ["class 14"]) {
            try cse.labels(saliency: c.saliency, width: w, height: h, attention: c.attention,
                           randomWalk: c.randomWalk, classes: 14)
        }
        var walk = c.randomWalk
        walk[3] = 21
        expectError(.randomWalkLabel(21, classes: 20), mentioning: ["21"]) {
            try cse.labels(saliency: c.saliency, width: w, height: h, attention: c.attention, randomWalk: walk, classes: 20)
        }
        expectError(.emptyImage(width: 0, height: 0), mentioning: ["0×0"]) {
            try cse.labels(saliency: [], width: 0, height: 0, attention: [:], randomWalk: [], classes: 20)
        }
        expectError(.classCount(255), mentioning: ["255"]) {
            try cse.labels(saliency: c.saliency, width: w, height: h, attention: [:], randomWalk: c.randomWalk, classes: 255)
        }
    }
}
