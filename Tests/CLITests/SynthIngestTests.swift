@testable import Distributed
import Foundation
@testable import Imaging
import Storage
import TestSupport
import XCTest

/// `synth` and `ingest` end to end, as a user runs them: determinism, rank-count invariance, bad images.
final class SynthIngestTests: XCTestCase {
    func synth(_ dir: URL, seed: Int = 3, ranks: Int = 1, images: Int = 12) throws {
        let arguments = ["synth", "--out", dir.path, "--images", "\(images)", "--size", "80x64", "--classes", "4", "--seed", "\(seed)"]
        let result = ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// Every file under `dir`, relative path → bytes.
    func contents(_ dir: URL) throws -> [String: Data] {
        var all: [String: Data] = [:]
        let base = dir.resolvingSymlinksInPath().path
        for case let url as URL in FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)! {
            let path = url.resolvingSymlinksInPath().path
            if let data = FileManager.default.contents(atPath: path), !url.hasDirectoryPath {
                all[String(path.dropFirst(base.count))] = data
            }
        }
        return all
    }

    func testSynthIsDeterministicAndRankCountInvariant() throws {
        let a = try TestSupport.scratchDirectory(), b = try TestSupport.scratchDirectory()
        let c = try TestSupport.scratchDirectory(), d = try TestSupport.scratchDirectory()
        try synth(a)
        try synth(b)
        try synth(c, ranks: 2)
        try synth(d, seed: 4)
        let ca = try contents(a)
        XCTAssertEqual(ca.keys.filter { $0.hasSuffix(".jpg") }.count, 12)
        XCTAssertNotNil(ca["/ImageSets/Segmentation/train.txt"])
        XCTAssertEqual(ca, try contents(b), "same seed, same files")
        XCTAssertEqual(ca, try contents(c), "2 ranks write what 1 rank writes")
        XCTAssertNotEqual(ca["/JPEGImages/synth_000000.jpg"], try contents(d)["/JPEGImages/synth_000000.jpg"], "another seed, other images")
        // The masks are palette PNGs whose classes agree with the XML labels.
        let mask = try PNGCodec.decodeIndices(Array(ca["/SegmentationClass/synth_000001.png"]!), name: "mask")
        let xml = String(decoding: ca["/Annotations/synth_000001.xml"]!, as: UTF8.self)
        let names = String(decoding: ca["/classes.txt"]!, as: UTF8.self).split(separator: "\n").map(String.init)
        for (c, name) in names.enumerated() {
            XCTAssertEqual(mask.pixels.contains(UInt8(c + 1)), xml.contains("<name>\(name)</name>"), "class \(name)")
        }
    }

    func ingest(_ root: URL, out: URL, ranks: Int, extra: [String] = []) throws -> TestSupport.Result {
        let arguments = ["ingest", "voc", "--root", root.path, "--split", root.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                         "--out", out.path, "--shards", "3"] + extra
        return ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
    }

    func testIngestOnTwoRanksEqualsOneRank() throws {
        let root = try TestSupport.scratchDirectory()
        try synth(root)
        let one = root.appendingPathComponent("one"), two = root.appendingPathComponent("two")
        XCTAssertEqual(try ingest(root, out: one, ranks: 1).status, 0)
        let result = try ingest(root, out: two, ranks: 2)
        XCTAssertEqual(result.status, 0, result.stderr)
        let a = try ShardedDataset(directory: one, name: "train"), b = try ShardedDataset(directory: two, name: "train")
        XCTAssertEqual(a.index, b.index)
        XCTAssertEqual(a.count, 9, "12 images, 25 % in val")
        for id in a.ids {
            let record = try a.record(id)
            XCTAssertEqual(record, try b.record(id))
            XCTAssertNotNil(record.mask)
            XCTAssertNotNil(record.saliency)
            XCTAssertEqual(record.label.count, 4)
            XCTAssertGreaterThan(record.label.reduce(0, +), 0, "every synthetic image holds a class")
            let jpeg = try Data(contentsOf: root.appendingPathComponent("JPEGImages/\(id).jpg"))
            XCTAssertEqual(Data(record.image), jpeg, "the shard keeps the file's bytes")
        }
    }

    func testBadImageStopsTheIngestOrIsSkipped() throws {
        let root = try TestSupport.scratchDirectory()
        try synth(root)
        let victim = root.appendingPathComponent("JPEGImages/synth_000007.jpg")
        let bytes = try Data(contentsOf: victim)
        try bytes.prefix(bytes.count / 3).write(to: victim)

        let stopped = try ingest(root, out: root.appendingPathComponent("stopped"), ranks: 2)
        XCTAssertFalse(stopped.timedOut)
        XCTAssertNotEqual(stopped.status, 0)
        XCTAssertTrue(stopped.stderr.contains("synth_000007") && stopped.stderr.contains(victim.lastPathComponent), stopped.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("stopped/train-index.json").path))

        let out = root.appendingPathComponent("skipped")
        let skipped = try ingest(root, out: out, ranks: 1, extra: ["--skip-bad"])
        XCTAssertEqual(skipped.status, 0, skipped.stderr)
        XCTAssertTrue(skipped.stdout.contains("1 rejected"), skipped.stdout)
        let rejected = try String(contentsOf: out.appendingPathComponent("rejected.txt"), encoding: .utf8)
        XCTAssertTrue(rejected.hasPrefix("synth_000007\t\(victim.path)"), rejected)
        let set = try ShardedDataset(directory: out, name: "train")
        XCTAssertEqual(set.count, 8)
        XCTAssertFalse(set.contains("synth_000007"))
    }

    func testIngestFolderWithCSV() throws {
        let dir = try TestSupport.scratchDirectory()
        let images = dir.appendingPathComponent("pics")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let red = PixelImage(width: 8, height: 6, channels: 3, pixels: [UInt8](repeating: 200, count: 144))
        try Data(try JPEGCodec.encode(red)).write(to: images.appendingPathComponent("a.jpg"))
        try Data(try PNGCodec.encode(red)).write(to: images.appendingPathComponent("b.png"))
        try Data(try JPEGCodec.encode(red)).write(to: images.appendingPathComponent("c.jpg"))
        try "image,labels\na.jpg,dog\nb.png,cat dog\nc.jpg,\n".write(to: dir.appendingPathComponent("labels.csv"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("shards")
        let result = try TestSupport.pcsMPI(["ingest", "folder", "--images", images.path, "--labels", dir.appendingPathComponent("labels.csv").path,
                                             "--out", out.path, "--shards", "2", "--name", "mine"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let set = try ShardedDataset(directory: out, name: "mine")
        XCTAssertEqual(set.ids, ["a", "b", "c"])
        XCTAssertEqual(set.classNames, ["cat", "dog"])
        XCTAssertEqual(try set.record("b").label, [1, 1])
        XCTAssertEqual(try set.record("b").imageFormat, "png")
        XCTAssertEqual(try set.record("c").label, [0, 0])

        try "image,labels\na.jpg,unicorn\n".write(to: dir.appendingPathComponent("bad.csv"), atomically: true, encoding: .utf8)
        let bad = try TestSupport.pcsMPI(["ingest", "folder", "--images", images.path, "--labels", dir.appendingPathComponent("bad.csv").path,
                                          "--classes", dir.appendingPathComponent("labels.csv").path, "--out", out.path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("unicorn"), bad.stderr)
    }
}
