@testable import Distributed
import Foundation
@testable import Imaging
import Storage
import TestSupport
import XCTest

/// `pcs-mpi infer-cam` and `eval --type cam` end to end on a small synthetic set with a briefly trained tiny
/// network: rank-count invariance of CAMs and scores, resumption, the numbers against an independent numpy
/// evaluation (scripts/reference/eval_cams_reference.py), and bad input.
final class InferCAMTests: XCTestCase {
    struct Fixture {
        var dir: URL, synth: URL, shards: URL, weights: URL
    }

    /// A 24-image synthetic set (train and val shards) and a tiny PC checkpoint after 2 steps.
    func makeFixture() throws -> Fixture {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth"), shards = dir.appendingPathComponent("shards")
        let quiet = ["--log-level", "warning"]
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "24", "--size", "64x48", "--classes", "3"] + quiet).status, 0)
        for split in ["train", "val"] {
            XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                                   synth.appendingPathComponent("ImageSets/Segmentation/\(split).txt").path,
                                                   "--out", shards.path, "--shards", "2"] + quiet).status, 0)
        }
        let run = dir.appendingPathComponent("train")
        let train = try TestSupport.pcsMPI(["train-pc", "--data", shards.path, "--out", run.path, "--model", "tiny-pc", "--max-steps", "2",
                                            "--batch", "2", "--crop", "64", "--pair", "32", "--resize-long", "64:96", "--lr", "1e-3"] + quiet)
        XCTAssertEqual(train.status, 0, train.stderr)
        return Fixture(dir: dir, synth: synth, shards: shards, weights: try XCTUnwrap(TrainCheckpoint.newest(in: run)))
    }

    func inferArguments(_ f: Fixture, out: URL, split: String = "val") -> [String] {
        ["infer-cam", "--data", f.shards.path, "--split", split, "--out", out.path, "--model", "tiny-pc", "--weights", f.weights.path,
         "--long-side", "64", "--scales", "0.5,1,1.5", "--chunk", "2"]
    }

    func records(_ folder: URL) throws -> [String: CAMRecord] {
        let set = try ShardedDataset(directory: folder, name: CAMSetAttributes.name)
        return Dictionary(uniqueKeysWithValues: try set.ids.map { ($0, try set.camRecord($0)) })
    }

    /// --part-seconds 0: every image is committed as its own part although --chunk would hold them all, so a kill
    /// loses at most the image in progress.
    func testPartsAreCommittedByTimeAsWellAsByCount() throws {
        let f = try makeFixture()
        let out = f.dir.appendingPathComponent("timed")
        let result = try TestSupport.pcsMPI(inferArguments(f, out: out) + ["--chunk", "100", "--part-seconds", "0"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let parts = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("cams-a") }
        XCTAssertEqual(parts.count, try records(out).count)
        XCTAssertGreaterThan(parts.count, 1)
    }

    func testRankInvarianceResumeAndReference() throws {
        let f = try makeFixture()
        let one = f.dir.appendingPathComponent("cams1"), two = f.dir.appendingPathComponent("cams2")
        let npy = f.dir.appendingPathComponent("npy")
        let exports = ["--export-npy", npy.path, "--attention", f.dir.appendingPathComponent("att").path]
        let first = try TestSupport.pcsMPI(inferArguments(f, out: one) + exports)
        XCTAssertEqual(first.status, 0, first.stderr)
        let second = try TestSupport.mpirun(2, "pcs-mpi", inferArguments(f, out: two))
        XCTAssertEqual(second.status, 0, second.stderr)
        let reference = try records(one)
        let ids = try String(contentsOf: f.synth.appendingPathComponent("ImageSets/Segmentation/val.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(Set(reference.keys), Set(ids))
        XCTAssertEqual(try records(two), reference, "the CAMs do not depend on the rank count")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: npy.path).filter { $0.hasSuffix(".npy") }.count, ids.count)
        // Attention PNGs: one per (image, present class), bytes = uint8(255 · N / (max N + 1e-8)) of the stored map.
        let attention = f.dir.appendingPathComponent("att")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: attention.path).count,
                       reference.values.reduce(0) { $0 + $1.maps.classes.count })
        let sample = try XCTUnwrap(reference[ids[0]]?.maps)
        let png = try PNGCodec.decodeGray(try ImageFile.readBytes(attention.appendingPathComponent("\(ids[0])_\(sample.classes[0]).png").path), name: "att")
        let map = sample.map(0), peak = Float(Double(map.max()!) + 1e-8)
        XCTAssertEqual(png.pixels, map.map { UInt8(truncatingIfNeeded: Int(($0 / peak * 255).rounded(.towardZero))) })
        for record in reference.values {
            XCTAssertEqual(record.maps.classes, record.maps.classes.sorted())
            XCTAssertLessThanOrEqual(record.maps.values.max() ?? 0, 1)
        }

        // Resume: drop one part and the index, run again: only that part's ids are computed.
        let parts = try FileManager.default.contentsOfDirectory(atPath: one.path).filter { $0.hasPrefix("cams-a") }.sorted()
        XCTAssertGreaterThan(parts.count, 2, "--chunk 2 writes several parts")
        let dropped = try ShardReader(url: one.appendingPathComponent(parts[0])).ids
        try FileManager.default.removeItem(at: one.appendingPathComponent(parts[0]))
        try FileManager.default.removeItem(at: ShardIndex.url(directory: one, name: CAMSetAttributes.name))
        let withoutExports = try TestSupport.pcsMPI(inferArguments(f, out: one))
        XCTAssertNotEqual(withoutExports.status, 0, "a resume must ask for the same exports")
        XCTAssertTrue(withoutExports.stderr.contains("exports"), withoutExports.stderr)
        let resumed = try TestSupport.pcsMPI(inferArguments(f, out: one) + exports)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue((resumed.stdout + resumed.stderr).contains("\(ids.count - dropped.count) images already done, \(dropped.count) to go"),
                      resumed.stdout + resumed.stderr)
        XCTAssertEqual(try records(one), reference)

        // Scores: identical on 1 and 2 ranks, and equal to the numpy reference at every threshold.
        let thresholds = "0.30:0.60:0.10"
        func evaluate(_ ranks: Int) throws -> [String: Any] {
            let out = f.dir.appendingPathComponent("eval-\(ranks).json")
            let arguments = ["eval", "--data", f.shards.path, "--split", "val", "--predictions", one.path, "--out", out.path, "--sweep", thresholds,
                             "--seeds", f.dir.appendingPathComponent("seeds-\(ranks)").path]
            let result = ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        }
        let a = try evaluate(1), b = try evaluate(2)
        XCTAssertEqual(NSDictionary(dictionary: a), NSDictionary(dictionary: b))
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/reference/eval_cams_reference.py").standardized
        let numpy = try TestSupport.run(TestSupport.python, [script.path, one.path, f.synth.appendingPathComponent("SegmentationClass").path,
                                                              f.synth.appendingPathComponent("ImageSets/Segmentation/val.txt").path, "4", "0.46,0.3,0.4,0.5"])
        XCTAssertEqual(numpy.status, 0, numpy.stderr)
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(numpy.stdout.utf8)) as? [[String: Any]])
        let result = try XCTUnwrap(a["result"] as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(result["meanIoU"] as? Double), try XCTUnwrap(expected[0]["miou"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(result["deeplabMeanIoU"] as? Double), try XCTUnwrap(expected[0]["deeplab_miou"] as? Double), accuracy: 1e-12)
        let sweep = try XCTUnwrap(a["sweep"] as? [[String: Any]])
        XCTAssertEqual(sweep.compactMap { $0["threshold"] as? Double }, [0.3, 0.4, 0.5])
        for (point, want) in zip(sweep, expected.dropFirst()) {
            XCTAssertEqual(try XCTUnwrap(point["meanIoU"] as? Double), try XCTUnwrap(want["miou"] as? Double), accuracy: 1e-12)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: f.dir.appendingPathComponent("seeds-2").path).count, ids.count)
    }

    func testBadInputIsNamedAndNothingHalfWritten() throws {
        let f = try makeFixture()
        let cams = f.dir.appendingPathComponent("cams")
        XCTAssertEqual(try TestSupport.pcsMPI(inferArguments(f, out: cams)).status, 0)

        // CAMs of the val split scored against the train split.
        let out = f.dir.appendingPathComponent("eval.json")
        let other = try TestSupport.pcsMPI(["eval", "--data", f.shards.path, "--split", "train", "--predictions", cams.path, "--out", out.path])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("cams-index.json") && other.stderr.contains("not on 'train'"), other.stderr)
        XCTAssertEqual(other.stderr.split(separator: "\n").count, 1, other.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        // A truncated part.
        let part = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cams.path).first { $0.hasPrefix("cams-a") })
        let handle = try FileHandle(forWritingTo: cams.appendingPathComponent(part))
        try handle.truncate(atOffset: 1000)
        try handle.close()
        let truncated = try TestSupport.mpirun(2, "pcs-mpi", ["eval", "--data", f.shards.path, "--split", "val", "--predictions", cams.path, "--out", out.path])
        XCTAssertNotEqual(truncated.status, 0)
        XCTAssertTrue(truncated.stderr.contains(part), truncated.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        // A dataset without masks (same ids and classes, so the CAMs match it).
        let bare = f.dir.appendingPathComponent("bare"), bareShards = f.dir.appendingPathComponent("bare-shards")
        try FileManager.default.copyItem(at: f.synth, to: bare)
        try FileManager.default.removeItem(at: bare.appendingPathComponent("SegmentationClass"))
        XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", bare.path, "--split", bare.appendingPathComponent("ImageSets/Segmentation/val.txt").path,
                                               "--out", bareShards.path, "--shards", "2", "--log-level", "warning"]).status, 0)
        let bareCams = f.dir.appendingPathComponent("bare-cams")
        XCTAssertEqual(try TestSupport.pcsMPI(inferArguments(f, out: bareCams).map { $0 == f.shards.path ? bareShards.path : $0 }).status, 0)
        let noMask = try TestSupport.pcsMPI(["eval", "--data", bareShards.path, "--split", "val", "--predictions", bareCams.path, "--out", out.path])
        XCTAssertNotEqual(noMask.status, 0)
        XCTAssertTrue(noMask.stderr.contains("no ground-truth mask"), noMask.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        // Weights for another number of classes.
        let wrong = try TestSupport.pcsMPI(inferArguments(f, out: f.dir.appendingPathComponent("x")).map { $0 == "tiny-pc" ? "tiny-sp" : $0 })
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertEqual(wrong.stderr.split(separator: "\n").count, 1, wrong.stderr)
    }
}
