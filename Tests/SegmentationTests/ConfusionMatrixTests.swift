import Foundation
import TestSupport
import XCTest
@testable import NN
@testable import Segmentation

final class ConfusionMatrixTests: XCTestCase {
    func testHandComputedCase() {
        // 4 classes; gt 255 is ignored; a prediction of 255 counts against recall only.
        var m = ConfusionMatrix(classes: 4)
        m.add(groundTruth: [0, 0, 1, 1, 1, 2, 255, 3], prediction: [0, 1, 1, 1, 255, 2, 3, 0])
        let u = m.upstream
        // class 0: T 2, P 2 (two gt-0 pixels: one right; and the gt-3 pixel predicted 0), TP 1 → IoU 1/3
        XCTAssertEqual(u.iou[0], 1.0 / 3, accuracy: 1e-9)
        // class 1: T 3, P 3 (the gt-0 pixel predicted 1 counts too), TP 2 → 2/4
        XCTAssertEqual(u.iou[1], 0.5, accuracy: 1e-9)
        XCTAssertEqual(u.recall[1], 2.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(u.iou[2], 1, accuracy: 1e-9)
        XCTAssertEqual(u.iou[3], 0, accuracy: 1e-9)
        XCTAssertEqual(u.meanIoU, (1.0 / 3 + 0.5 + 1 + 0) / 4, accuracy: 1e-9)
        // deeplab: the 255 prediction is not in the matrix; class 1 row = 2, column = 3, diag = 2 → 2/3.
        XCTAssertEqual(m.deeplab.iou[1], 2.0 / 3, accuracy: 1e-9)
        var absent = ConfusionMatrix(classes: 3)
        absent.add(groundTruth: [0, 0], prediction: [0, 0])
        XCTAssertEqual(absent.upstream.meanIoU, 1.0 / 3, accuracy: 1e-9, "upstream averages absent classes as 0")
        XCTAssertEqual(absent.deeplab.meanIoU, 1, accuracy: 1e-9, "deeplab skips classes that are nowhere")
    }

    /// Both conventions against scripts/reference/eval_reference.py (numpy) on random label maps with ignore pixels.
    func testAgreesWithTheNumpyReference() throws {
        var rng = SeededRandom(seed: 4)
        let n = 21, pixels = 40_000
        let gt = (0..<pixels).map { _ -> UInt8 in rng.nextFloat() < 0.05 ? 255 : UInt8(Int(rng.next() % 21)) }
        let pred = gt.map { g -> UInt8 in
            let r = rng.nextFloat()
            return r < 0.6 && g < 21 ? g : (r < 0.62 ? 255 : UInt8(Int(rng.next() % 20)))
        }
        var m = ConfusionMatrix(classes: n)
        m.add(groundTruth: Array(gt[..<20_000]), prediction: Array(pred[..<20_000]))
        var second = ConfusionMatrix(classes: n)
        second.add(groundTruth: Array(gt[20_000...]), prediction: Array(pred[20_000...]))
        for i in m.counts.indices { m.counts[i] += second.counts[i] } // what an allreduce of the counts does
        let dir = try TestSupport.scratchDirectory()
        try Data(gt).write(to: dir.appendingPathComponent("gt.u8"))
        try Data(pred).write(to: dir.appendingPathComponent("pred.u8"))
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/reference/eval_reference.py").standardized
        let result = try TestSupport.run(TestSupport.python, [script.path, dir.path, "\(n)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reference = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let u = m.upstream, d = m.deeplab
        XCTAssertEqual(u.meanIoU, try XCTUnwrap(reference["upstream_miou"] as? Double), accuracy: 1e-12)
        for (name, mine) in [("upstream_iou", u.iou), ("recall", u.recall), ("precision", u.precision)] {
            let theirs = try XCTUnwrap(reference[name] as? [Double], name)
            XCTAssertEqual(mine.count, theirs.count, name)
            for (a, b) in zip(mine, theirs) { XCTAssertEqual(a, b, accuracy: 1e-12, name) }
        }
        XCTAssertEqual(d.meanIoU, try XCTUnwrap(reference["deeplab_miou"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(d.pixelAccuracy, try XCTUnwrap(reference["pixel_accuracy"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(d.meanAccuracy, try XCTUnwrap(reference["mean_accuracy"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(d.frequencyWeightedIoU, try XCTUnwrap(reference["fw_iou"] as? Double), accuracy: 1e-12)
    }
}
