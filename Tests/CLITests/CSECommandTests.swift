import Foundation
import Imaging
import Storage
import TestSupport
import XCTest

/// `pcs-mpi cse` in upstream's layout against upstream's own output, and over a dataset on 1 and 2 ranks, with
/// its bad inputs.
final class CSECommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SegmentationTests/Fixtures/cse")

    func indices(_ url: URL) throws -> [UInt8] { try PNGCodec.decodeIndices(try ImageFile.readBytes(url.path), name: url.path).pixels }

    /// A copy of the fixtures' upstream layout without its pseudo labels, run on 2 ranks: every PNG equals the one
    /// upstream's CSE_voc.py wrote.
    func testUpstreamLayoutIsPixelIdenticalToUpstream() throws {
        let dir = try TestSupport.scratchDirectory()
        let root = dir.appendingPathComponent("upstream")
        try FileManager.default.copyItem(at: Self.fixtures, to: root)
        let produced = root.appendingPathComponent("save/pseudo_label")
        try FileManager.default.removeItem(at: produced)
        let result = try TestSupport.mpirun(2, "pcs-mpi", ["cse", "--upstream-layout", root.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let expected = Self.fixtures.appendingPathComponent("save/pseudo_label")
        let names = try FileManager.default.contentsOfDirectory(atPath: expected.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 8)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: produced.path).filter { $0.hasSuffix(".png") }.sorted(), names)
        for name in names {
            XCTAssertEqual(try indices(produced.appendingPathComponent(name)), try indices(expected.appendingPathComponent(name)), name)
        }
    }

    /// Saliency from the shards, attention from a CAM set, random-walk labels from crf-labels' `la` map: the same
    /// pseudo labels on 1 and 2 ranks, only background, the listed classes and 255 in them; an attention set of
    /// another dataset and a dataset without saliency maps are one-line errors.
    func testOverADatasetOnOneAndTwoRanksAndBadInput() throws {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "8", "--size", "48x40", "--classes", "3",
                                               "--val-fraction", "0", "--log-level", "warning"]).status, 0)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("empty"), withIntermediateDirectories: true)
        func ingest(_ out: URL, saliency: Bool, root: URL? = nil) throws -> ShardedDataset {
            let synth = root ?? synth
            var arguments = ["ingest", "voc", "--root", synth.path, "--split", synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                             "--out", out.path, "--shards", "2", "--log-level", "warning"]
            if !saliency { arguments += ["--saliency", dir.appendingPathComponent("empty").path] }
            XCTAssertEqual(try TestSupport.pcsMPI(arguments).status, 0)
            return try ShardedDataset(directory: out, name: "train")
        }
        let shards = dir.appendingPathComponent("shards")
        let dataset = try ingest(shards, saliency: true)
        let cams = dir.appendingPathComponent("cams"), walk = dir.appendingPathComponent("rw")
        try CRFCommandTests.writeCAMs(from: dataset, into: cams)
        XCTAssertEqual(try TestSupport.pcsMPI(["crf-labels", "--data", shards.path, "--cams", cams.path, "--out", walk.path]).status, 0)

        func cse(_ ranks: Int, data: URL, attention: URL, out: URL) throws -> TestSupport.Result {
            let arguments = ["cse", "--data", data.path, "--attention", attention.path, "--rw", walk.path, "--rw-map", "la",
                             "--out", out.path, "--png", out.appendingPathComponent("png").path]
            return ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
        }
        func labels(_ out: URL) throws -> [[UInt8]] {
            let set = try ShardedDataset(directory: out, name: "pseudo-labels")
            return try dataset.ids.map { try set.labelMap($0, name: "labels").pixels }
        }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        XCTAssertEqual(try cse(1, data: shards, attention: cams, out: one).status, 0)
        let twoRun = try cse(2, data: shards, attention: cams, out: two)
        XCTAssertEqual(twoRun.status, 0, twoRun.stderr)
        let reference = try labels(one)
        XCTAssertEqual(try labels(two), reference)
        for (id, map) in zip(dataset.ids, reference) {
            let listed = try dataset.record(id).label.enumerated().filter { $0.element == 1 }.map { UInt8($0.offset + 1) }
            XCTAssertTrue(map.allSatisfy { $0 == 0 || $0 == 255 || listed.contains($0) }, id)
            XCTAssertEqual(try indices(one.appendingPathComponent("png/\(id).png")), map)
        }
        XCTAssertTrue(reference.contains { $0.contains { $0 != 255 && $0 != 0 } }, "some foreground is kept")
        // Resume: a part and the index removed, the run repeated: the same labels.
        let part = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: two.path).sorted().first { $0.hasPrefix("pseudo-labels-a") })
        try FileManager.default.removeItem(at: two.appendingPathComponent(part))
        try FileManager.default.removeItem(at: two.appendingPathComponent("pseudo-labels-index.json"))
        let resumed = try cse(2, data: shards, attention: cams, out: two)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue((resumed.stdout + resumed.stderr).contains("already done"), resumed.stdout + resumed.stderr)
        XCTAssertEqual(try labels(two), reference)

        // CAMs made for another dataset (6 other images)…
        let otherSynth = dir.appendingPathComponent("other-synth")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", otherSynth.path, "--images", "6", "--size", "48x40", "--classes", "3",
                                               "--val-fraction", "0", "--seed", "5", "--log-level", "warning"]).status, 0)
        let other = try ingest(dir.appendingPathComponent("other"), saliency: true, root: otherSynth)
        let otherCAMs = dir.appendingPathComponent("other-cams")
        try CRFCommandTests.writeCAMs(from: other, into: otherCAMs)
        let wrongSet = try cse(1, data: shards, attention: otherCAMs, out: dir.appendingPathComponent("x"))
        XCTAssertEqual(wrongSet.status, 1, wrongSet.stderr)
        XCTAssertTrue(wrongSet.stderr.contains("cams-index.json"), wrongSet.stderr)
        // …and a dataset without saliency maps (the same images, so the CAMs and labels fit it).
        let bare = try ingest(dir.appendingPathComponent("bare"), saliency: false)
        let noSaliency = try cse(1, data: bare.directory, attention: cams, out: dir.appendingPathComponent("y"))
        XCTAssertEqual(noSaliency.status, 1, noSaliency.stderr)
        XCTAssertTrue(noSaliency.stderr.contains("saliency"), noSaliency.stderr)
        XCTAssertEqual(noSaliency.stderr.split(separator: "\n").count, 1, noSaliency.stderr)
    }
}
