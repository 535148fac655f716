@testable import Distributed
import Formats
import Foundation
import PCSformer
import Storage
import TestSupport
import XCTest

/// `pcs-mpi train-aff` with the tiny AffinityNet on crf-labels' maps, under `mpirun -n 2`: the backbone starts
/// from --init, the frozen stem stays as loaded while the heads learn, both groups' learning rates are logged (the
/// heads at 10×), and --resume auto continues the run.
final class TrainAffTests: XCTestCase {
    func testTrainsFromInitWithFrozenStemAndResumes() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "96x80", classes: 3, shards: 2)
        let synth = dir.appendingPathComponent("synth")
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let cams = dir.appendingPathComponent("cams"), maps = dir.appendingPathComponent("crf")
        try CRFCommandTests.writeCAMs(from: dataset, into: cams)
        XCTAssertEqual(try TestSupport.pcsMPI(["crf-labels", "--data", shards.path, "--cams", cams.path, "--out", maps.path]).status, 0)
        let initial = dir.appendingPathComponent("resnet38.h5")
        try AffinityNet(.tiny, seed: 9).backbone.stateDict().save(to: initial.path)

        let run = dir.appendingPathComponent("run")
        let arguments = ["train-aff", "--data", shards.path, "--labels", maps.path, "--out", run.path, "--model", "tiny-aff",
                         "--init", initial.path, "--crop", "72", "--batch", "4", "--epochs", "3", "--lr", "0.05"]
        let first = try TestSupport.mpirun(2, "pcs-mpi", arguments + ["--max-steps", "3"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let resumed = try TestSupport.mpirun(2, "pcs-mpi", arguments + ["--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resume: step 3"), resumed.stdout)

        let final = try XCTUnwrap(try TrainCheckpoint.newest(in: run))
        XCTAssertEqual(final.lastPathComponent, TrainCheckpoint.fileName(step: 6))
        let trained = try StateDict.load(path: final.path), loaded = try StateDict.load(path: initial.path)
        XCTAssertEqual(trained["conv1a.weight"]?.floats, loaded["conv1a.weight"]?.floats, "the stem is frozen")
        XCTAssertEqual(trained["b2.conv_branch2a.weight"]?.floats, loaded["b2.conv_branch2a.weight"]?.floats, "b2 is frozen")
        XCTAssertEqual(trained["b4.bn_branch2a.weight"]?.floats, loaded["b4.bn_branch2a.weight"]?.floats, "BatchNorm is frozen")
        XCTAssertNotEqual(trained["b4.conv_branch2a.weight"]?.floats, loaded["b4.conv_branch2a.weight"]?.floats, "b4 learns")

        let rows = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows.compactMap { $0["step"] as? Int }, Array(1...6))
        let lrs = try XCTUnwrap(rows.first)
        let base = try XCTUnwrap(lrs["lr_pretrained"] as? Double), heads = try XCTUnwrap(lrs["lr_heads"] as? Double)
        XCTAssertEqual(heads, 10 * base, accuracy: 1e-6 * heads)
        XCTAssertTrue(rows.allSatisfy { ($0["loss"] as? Double)?.isFinite == true })

        // la/ha maps made for another shard set (the val split) are refused, naming the label set.
        XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                               synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                                               "--out", shards.path, "--name", "other", "--shards", "1", "--log-level", "warning"]).status, 0)
        let other = try TestSupport.pcsMPI(arguments.map { $0 == run.path ? dir.appendingPathComponent("other-run").path : $0 }
                                           + ["--split", "other", "--max-steps", "1"])
        XCTAssertEqual(other.status, 1, other.stderr)
        XCTAssertTrue(other.stderr.contains("crf-labels-index.json"), other.stderr)
    }
}
