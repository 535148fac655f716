import Formats
import Foundation
import Imaging
import Storage
import TestSupport
import XCTest

/// `pcs-mpi crf` against the pydensecrf fixtures, its bad inputs, and `crf-labels` over a dataset (1 and 2
/// ranks, resume) scored by `eval --type labels`.
final class CRFCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SegmentationTests/Fixtures/densecrf")

    func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(name))) }

    /// The psa-label fixture (56×42, 21 labels) and the psa-softmax one (probabilities from HDF5) through the
    /// command: the PNG labels equal pydensecrf's argmax on ≥ 99.5 % of the pixels and Q is within 1e-5.
    func testCRFCommandMatchesPydensecrf() throws {
        let dir = try TestSupport.scratchDirectory()
        for (name, w, h, unary) in [("psa_label", 56, 42, "labels"), ("psa_softmax", 40, 30, "probs")] {
            let image = dir.appendingPathComponent("\(name).png")
            try Data(try PNGCodec.encode(PixelImage(width: w, height: h, channels: 3, pixels: try bytes("\(name).image.u8")))).write(to: image)
            var arguments = ["crf", "--image", image.path, "--out", dir.appendingPathComponent("\(name)-out.png").path,
                             "--out-probs", dir.appendingPathComponent("\(name)-q.h5").path, "--threads", "2"]
            if unary == "labels" {
                let labels = dir.appendingPathComponent("\(name)-labels.png")
                try Data(try PNGCodec.encodeIndexed(PixelImage(width: w, height: h, channels: 1, pixels: try bytes("\(name).labels.u8")))).write(to: labels)
                arguments += ["--labels", labels.path, "--preset", "psa-label"]
            } else {
                let probs = dir.appendingPathComponent("\(name)-probs.h5")
                let values = try bytes("\(name).probs.f32").withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                try HDF5File.writeAtomically(to: probs) { try $0.write("/probs", values, shape: [21, h, w]) }
                arguments += ["--probs", probs.path, "--preset", "psa-softmax"]
            }
            let result = try TestSupport.pcsMPI(arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            let out = try PNGCodec.decodeIndices(try ImageFile.readBytes(dir.appendingPathComponent("\(name)-out.png").path), name: name)
            let expected = try bytes("\(name).argmax.u8")
            let agreement = Double(zip(out.pixels, expected).filter { $0 == $1 }.count) / Double(expected.count)
            XCTAssertGreaterThanOrEqual(agreement, 0.995, name)
            let q = try HDF5File.open(dir.appendingPathComponent("\(name)-q.h5").path).read("/q", as: Float.self)
            let reference = try bytes("\(name).q.f32").withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            XCTAssertEqual(q.shape, [21, h, w])
            XCTAssertLessThanOrEqual(zip(q.values, reference).map { abs($0 - $1) }.max() ?? 1, 1e-5, name)
        }
    }

    /// A label ≥ --classes, a label map of another size, probabilities of the wrong shape: one line naming the
    /// file, exit 1, no output.
    func testCRFCommandBadInput() throws {
        let dir = try TestSupport.scratchDirectory()
        let image = dir.appendingPathComponent("image.png")
        try Data(try PNGCodec.encode(PixelImage(width: 8, height: 6, channels: 3, pixels: [UInt8](repeating: 90, count: 144)))).write(to: image)
        func labels(_ name: String, width: Int, height: Int, value: UInt8) throws -> String {
            let url = dir.appendingPathComponent(name)
            try Data(try PNGCodec.encodeIndexed(PixelImage(width: width, height: height, channels: 1,
                                                           pixels: [UInt8](repeating: value, count: width * height)))).write(to: url)
            return url.path
        }
        let probs = dir.appendingPathComponent("probs.h5")
        try HDF5File.writeAtomically(to: probs) { try $0.write("/probs", [Float](repeating: 0.5, count: 2 * 5 * 8), shape: [2, 5, 8]) }
        let out = dir.appendingPathComponent("out.png")
        for (bad, named) in [(["--labels", try labels("big.png", width: 8, height: 6, value: 7), "--classes", "5"], "big.png"),
                             (["--labels", try labels("small.png", width: 4, height: 6, value: 1)], "small.png"),
                             (["--probs", probs.path, "--preset", "deeplab"], "probs.h5")] {
            let result = try TestSupport.pcsMPI(["crf", "--image", image.path, "--out", out.path] + bad)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(named), result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }

    /// A CAM set made from the masks (a blurred one-hot of each present class), then `crf-labels` on 1 and on 2
    /// ranks: the same maps; a part removed and the run repeated: the same maps again, only the lost ids redone;
    /// `eval --type labels` agrees with the counts made here from the maps and masks.
    func testCRFLabelsOnOneAndTwoRanksResumeAndEval() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 10, size: "48x40", classes: 3, shards: 2)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let cams = dir.appendingPathComponent("cams")
        try Self.writeCAMs(from: dataset, into: cams)

        func crfLabels(_ ranks: Int, _ out: URL) throws -> TestSupport.Result {
            let arguments = ["crf-labels", "--data", shards.path, "--cams", cams.path, "--out", out.path, "--chunk", "3",
                             "--png", out.appendingPathComponent("png").path]
            return ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
        }
        func maps(_ out: URL) throws -> [String: [UInt8]] {
            let set = try ShardedDataset(directory: out, name: "crf-labels")
            XCTAssertEqual(set.labelMapNames, ["la", "ha"])
            var all: [String: [UInt8]] = [:]
            for id in dataset.ids { for name in ["la", "ha"] { all["\(id)/\(name)"] = try set.labelMap(id, name: name).pixels } }
            return all
        }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        XCTAssertEqual(try crfLabels(1, one).status, 0)
        let twoRun = try crfLabels(2, two)
        XCTAssertEqual(twoRun.status, 0, twoRun.stderr)
        let reference = try maps(one)
        XCTAssertEqual(try maps(two), reference)
        XCTAssertTrue(reference.values.contains { $0.contains { $0 > 0 } }, "some foreground survives the CRF")
        let firstId = dataset.ids[0]
        let png = try PNGCodec.decodeIndices(try ImageFile.readBytes(one.appendingPathComponent("png/out_crf_0.60/\(firstId).png").path), name: firstId)
        XCTAssertEqual(png.pixels, reference["\(firstId)/la"])

        let part = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: two.path).sorted().first { $0.hasPrefix("crf-labels-a") })
        try FileManager.default.removeItem(at: two.appendingPathComponent(part))
        try FileManager.default.removeItem(at: two.appendingPathComponent("crf-labels-index.json"))
        let resumed = try crfLabels(2, two)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue((resumed.stdout + resumed.stderr).contains("already done"), resumed.stdout + resumed.stderr)
        XCTAssertEqual(try maps(two), reference)

        // eval --type labels on `la`: the table is over the non-ignored pixels (no 255 here, so all of them).
        let report = dir.appendingPathComponent("eval.json")
        let eval = try TestSupport.mpirun(2, "pcs-mpi", ["eval", "--data", shards.path, "--type", "labels", "--predictions", one.path,
                                                        "--map", "la", "--out", report.path])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        let result = try XCTUnwrap(json["result"] as? [String: Any])
        var tp = [Double](repeating: 0, count: 4), t = tp, p = tp
        for id in dataset.ids {
            let truth = try PNGCodec.decodeIndices(try XCTUnwrap(try dataset.locate(id).reader.mask(id)), name: id).pixels
            for (g, q) in zip(truth, reference["\(id)/la"]!) where g < 255 {
                t[Int(g)] += 1
                p[Int(q)] += 1
                if g == q { tp[Int(g)] += 1 }
            }
        }
        var iouSum = 0.0
        for c in 0..<4 {
            let union: Double = t[c] + p[c] - tp[c] + 1e-10
            iouSum += tp[c] / union
        }
        let expected = iouSum / 4
        XCTAssertEqual(try XCTUnwrap(result["meanIoU"] as? Double), expected, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(json["ignoredShare"] as? Double), 0)
        XCTAssertEqual(json["map"] as? String, "la")
    }

    /// CAMs for every image of `dataset`: for each present class, 0.9 inside its mask region and 0.1 outside
    /// (rows shifted by one pixel, so the CRF has edges to fix).
    static func writeCAMs(from dataset: ShardedDataset, into folder: URL, dropClassesOf dropped: String? = nil) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let attributes = [CAMSetAttributes.dataset: dataset.index.name, CAMSetAttributes.datasetFingerprint: dataset.fingerprint,
                          CAMSetAttributes.settings: "test"]
        let writer = try ShardWriter(directory: folder, fileName: "cams-a000-r00000-00000.h5", name: CAMSetAttributes.name,
                                     shard: 0, of: 0, attributes: attributes)
        for id in dataset.ids {
            let record = try dataset.record(id)
            let mask = try PNGCodec.decodeIndices(try XCTUnwrap(record.mask), name: id)
            let classes = id == dropped ? [] : record.label.indices.filter { record.label[$0] == 1 }
            var values: [Float] = []
            for c in classes {
                for y in 0..<mask.height {
                    for x in 0..<mask.width {
                        values.append(Int(mask.pixels[y * mask.width + max(0, x - 1)]) == c + 1 ? 0.9 : 0.1)
                    }
                }
            }
            try writer.add(CAMRecord(id: id, maps: ClassActivationMaps(classes: classes, width: mask.width, height: mask.height, values: values)))
        }
        let ids = try writer.finish()
        try ShardIndex(name: CAMSetAttributes.name, shards: [ShardIndex.Entry(file: "cams-a000-r00000-00000.h5", ids: ids)],
                       attributes: attributes.merging(["class_names": dataset.index.attributes["class_names"] ?? ""]) { a, _ in a })
            .write(directory: folder)
    }
}
