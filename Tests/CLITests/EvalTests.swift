import Foundation
import TestSupport
import XCTest
@testable import Imaging

/// `pcs-mpi eval --type png` on a synthetic validation split: perfect and degenerate predictions, the same report
/// on 1 and 2 ranks, a missing prediction named.
final class EvalTests: XCTestCase {
    struct Report: Decodable, Equatable {
        var images: Int
        var meanIoU: Double
        var iou: [Double]
        var deeplabMeanIoU: Double?
        var pixelAccuracy: Double?
    }

    struct Wrapped: Decodable { var result: Report }

    func testPerfectAndBackgroundPredictionsOnOneAndTwoRanks() throws {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth"), shards = dir.appendingPathComponent("shards")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "16", "--size", "64x48", "--classes", "3",
                                               "--log-level", "warning"]).status, 0)
        XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                               synth.appendingPathComponent("ImageSets/Segmentation/val.txt").path,
                                               "--out", shards.path, "--shards", "2", "--log-level", "warning"]).status, 0)
        let ids = try String(contentsOf: synth.appendingPathComponent("ImageSets/Segmentation/val.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let perfect = dir.appendingPathComponent("perfect"), background = dir.appendingPathComponent("background")
        for folder in [perfect, background] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        for id in ids {
            let mask = try Data(contentsOf: synth.appendingPathComponent("SegmentationClass/\(id).png"))
            try mask.write(to: perfect.appendingPathComponent("\(id).png"))
            let truth = try PNGCodec.decodeIndices([UInt8](mask), name: id)
            let zeros = PixelImage(width: truth.width, height: truth.height, channels: 1)
            try Data(try PNGCodec.encodeIndexed(zeros)).write(to: background.appendingPathComponent("\(id).png"))
        }
        func evaluate(_ predictions: URL, ranks: Int) throws -> Report {
            let out = dir.appendingPathComponent("eval-\(predictions.lastPathComponent)-\(ranks).json")
            let arguments = ["eval", "--type", "png", "--split", "val", "--data", shards.path, "--predictions", predictions.path, "--out", out.path]
            let result = ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            if ranks == 1 { XCTAssertTrue(result.stdout.contains("mIoU (all 4 classes, upstream)"), result.stdout) }
            return try JSONDecoder().decode(Wrapped.self, from: Data(contentsOf: out)).result
        }
        let one = try evaluate(perfect, ranks: 1), two = try evaluate(perfect, ranks: 2)
        XCTAssertEqual(one, two, "the report does not depend on the rank count")
        XCTAssertEqual(one.images, ids.count)
        XCTAssertEqual(try XCTUnwrap(one.deeplabMeanIoU), 1, accuracy: 1e-12)
        XCTAssertEqual(one.iou[0], 1, accuracy: 1e-9)
        let flat = try evaluate(background, ranks: 2)
        XCTAssertEqual(Array(flat.iou.dropFirst()), [0, 0, 0])
        XCTAssertLessThan(flat.iou[0], 1)
        XCTAssertEqual(flat.meanIoU, flat.iou[0] / 4, accuracy: 1e-12)

        try FileManager.default.removeItem(at: perfect.appendingPathComponent("\(ids[0]).png"))
        let missing = try TestSupport.mpirun(2, "pcs-mpi", ["eval", "--type", "png", "--split", "val", "--data", shards.path, "--predictions", perfect.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("\(ids[0]).png"), missing.stderr)
    }
}
