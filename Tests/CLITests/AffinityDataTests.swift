import Distributed
import Foundation
import NN
import PCSformer
import Storage
import TestSupport
import XCTest

/// AffinityNet's training data (spec §8.4) on images smaller than the crop: the padding's labels are background
/// (PCSformer's rule) or ignored with `padLabelsIgnore` (PSA's, §12 Q4); the labels sit at 1/8 of the crop.
final class AffinityDataTests: XCTestCase {
    func testPaddingLabelsBackgroundOrIgnored() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 2, size: "32x32", classes: 2, shards: 1)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let cams = dir.appendingPathComponent("cams"), maps = dir.appendingPathComponent("crf")
        try CRFCommandTests.writeCAMs(from: dataset, into: cams)
        XCTAssertEqual(try TestSupport.pcsMPI(["crf-labels", "--data", shards.path, "--cams", cams.path, "--out", maps.path]).status, 0)
        let labelSet = try ShardedDataset.output(directory: maps, name: "crf-labels", for: dataset, made: "crf-labels")
        let stage = try AffinityTrainingStage(network: AffinityNet(.tiny), dataset: dataset, labelSet: labelSet, cropSize: 72)

        var random = SeededRandom(seed: 1)
        let background = try stage.loadBatch([0], random: &random)
        stage.padLabelsIgnore = true
        random = SeededRandom(seed: 1)
        let ignored = try stage.loadBatch([0], random: &random)
        XCTAssertEqual(background.images, ignored.images, "the same draws")
        let (a, b) = (background.labels[0], ignored.labels[0])
        XCTAssertEqual(a.count, 9 * 9)
        // A 32 × 32 image in a 72 × 72 crop covers at most 4 × 4 of the 9 × 9 label cells (sampled every 8 pixels).
        let padding = zip(a, b).filter { $0 != $1 }
        XCTAssertGreaterThanOrEqual(padding.count, 81 - 16)
        XCTAssertTrue(padding.allSatisfy { $0.0 == 0 && $0.1 == 255 }, "padding: background, or ignored with the flag")
        XCTAssertEqual(AffinityTrainingStage.combined(la: 2, ha: 0), 2)
        XCTAssertEqual(AffinityTrainingStage.combined(la: 0, ha: 0), 0)
        XCTAssertEqual(AffinityTrainingStage.combined(la: 0, ha: 1), 255)
    }
}
