@testable import Distributed
import Formats
import Foundation
import Imaging
import Storage
import TestSupport
import XCTest

/// The DeepLab commands end to end on a small synthetic set: `train-deeplab` under `mpirun -n 2` (the three
/// learning-rate groups, frozen BatchNorm, --resume auto), `infer-deeplab --crf` into a label set that `eval`
/// scores, `forward --model tiny-deeplab` against deeplab-pytorch's fixture, and the bad inputs.
final class DeepLabCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../DeepLabTests/Fixtures").standardizedFileURL

    func testTrainsResumesInfersWithCRFAndEvaluates() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "96x80", classes: 3, shards: 2)
        let run = dir.appendingPathComponent("run")
        let arguments = ["train-deeplab", "--data", shards.path, "--labels", "gt", "--out", run.path, "--model", "tiny-deeplab",
                         "--crop", "64", "--batch", "4", "--iterations", "6", "--lr", "1e-3", "--checkpoint-every", "3"]
        let first = try TestSupport.mpirun(2, "pcs-mpi", arguments + ["--max-steps", "3"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let resumed = try TestSupport.mpirun(2, "pcs-mpi", arguments + ["--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resume: step 3"), resumed.stdout)

        let final = try XCTUnwrap(try TrainCheckpoint.newest(in: run))
        XCTAssertEqual(final.lastPathComponent, TrainCheckpoint.fileName(step: 6))
        let rows = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let lrs = try XCTUnwrap(rows.first)
        let base = try XCTUnwrap(lrs["lr_1x"] as? Double)
        XCTAssertEqual(base, 1e-3, accuracy: 1e-9, "poly refreshed every 10 updates: still the base rate at step 1")
        XCTAssertEqual(try XCTUnwrap(lrs["lr_10x"] as? Double), 10 * base, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(lrs["lr_20x"] as? Double), 20 * base, accuracy: 1e-9)
        XCTAssertTrue(rows.allSatisfy { ($0["loss"] as? Double)?.isFinite == true })
        let trained = try StateDict.load(path: final.path)
        let start = try StateDict.load(path: try XCTUnwrap(TrainCheckpoint.all(in: run).first).path)
        XCTAssertEqual(trained["base.layer3.block1.reduce.bn.weight"]?.floats, start["base.layer3.block1.reduce.bn.weight"]?.floats,
                       "BatchNorm is frozen")
        XCTAssertNotEqual(trained["base.aspp.c0.bias"]?.floats, start["base.aspp.c0.bias"]?.floats, "the ASPP learns")

        let predictions = dir.appendingPathComponent("pred"), png = dir.appendingPathComponent("png")
        let infer = try TestSupport.mpirun(2, "pcs-mpi", ["infer-deeplab", "--data", shards.path, "--split", "train", "--weights", final.path,
                                                          "--model", "tiny-deeplab", "--out", predictions.path, "--crf", "--png", png.path])
        XCTAssertEqual(infer.status, 0, infer.stderr)
        let set = try ShardedDataset(directory: predictions, name: "prediction")
        XCTAssertEqual(set.count, 8)
        XCTAssertEqual(set.labelMapNames, ["labels", "crf"])
        let id = set.ids[0]
        let map = try set.labelMap(id, name: "crf")
        XCTAssertEqual(try ShardedDataset(directory: shards, name: "train").record(id).width, map.width)
        XCTAssertTrue(map.pixels.allSatisfy { $0 < 4 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: png.appendingPathComponent("crf/\(id).png").path))
        for name in ["labels", "crf"] {
            let report = dir.appendingPathComponent("\(name).json")
            let eval = try TestSupport.pcsMPI(["eval", "--data", shards.path, "--type", "labels", "--predictions", predictions.path,
                                               "--map", name, "--out", report.path, "--contact-sheet", dir.appendingPathComponent("sheet.png").path])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: report.path))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("sheet.png").path))
    }

    /// A short run on the ground truth of 36 training images must beat predicting background everywhere on 12
    /// val images it never saw, with and without the CRF.
    func testShortRunBeatsTheAllBackgroundPredictionOnVal() throws {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth"), shards = dir.appendingPathComponent("shards")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "48", "--size", "96x80", "--classes", "3",
                                               "--seed", "2", "--log-level", "warning"]).status, 0)
        for split in ["train", "val"] {
            XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                                   synth.appendingPathComponent("ImageSets/Segmentation/\(split).txt").path,
                                                   "--out", shards.path, "--shards", "1", "--log-level", "warning"]).status, 0)
        }
        let run = dir.appendingPathComponent("run"), predictions = dir.appendingPathComponent("pred")
        let train = try TestSupport.mpirun(2, "pcs-mpi", ["train-deeplab", "--data", shards.path, "--labels", "gt", "--out", run.path,
                                                          "--model", "tiny-deeplab", "--crop", "64", "--batch", "8", "--iterations", "300",
                                                          "--lr", "2e-3", "--batch-norm", "train", "--checkpoint-every", "300", "--log-level", "warning"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let weights = try XCTUnwrap(try TrainCheckpoint.newest(in: run))
        let infer = try TestSupport.mpirun(2, "pcs-mpi", ["infer-deeplab", "--data", shards.path, "--split", "val", "--weights", weights.path,
                                                          "--model", "tiny-deeplab", "--out", predictions.path, "--crf", "--log-level", "warning"])
        XCTAssertEqual(infer.status, 0, infer.stderr)
        // Predicting background everywhere scores (background share of the val pixels) / classes.
        let val = try ShardedDataset(directory: shards, name: "val")
        var background = 0, pixels = 0
        for id in val.ids {
            let mask = try PNGCodec.decodeIndices(try XCTUnwrap(try val.locate(id).reader.mask(id)), name: id).pixels
            background += mask.filter { $0 == 0 }.count
            pixels += mask.filter { $0 != 255 }.count
        }
        let baseline = Double(background) / Double(pixels) / 4
        for map in ["labels", "crf"] {
            let report = dir.appendingPathComponent("\(map).json")
            let eval = try TestSupport.pcsMPI(["eval", "--data", shards.path, "--split", "val", "--type", "labels", "--predictions",
                                               predictions.path, "--map", map, "--out", report.path, "--log-level", "warning"])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
            let mIoU = try XCTUnwrap((json["result"] as? [String: Any])?["meanIoU"] as? Double)
            XCTAssertGreaterThan(mIoU, baseline + 0.1, "DeepLab (\(map)) val mIoU \(mIoU) against the all-background \(baseline)")
        }
    }

    func testForwardMatchesDeepLabPyTorchFixture() throws {
        let dir = try TestSupport.scratchDirectory()
        let out = dir.appendingPathComponent("out.h5")
        let result = try TestSupport.pcsMPI(["forward", "--model", "tiny-deeplab", "--weights", Self.fixtures.appendingPathComponent("tiny_deeplab.pth").path,
                                             "--input", Self.fixtures.appendingPathComponent("tiny_deeplab.h5").path, "--out", out.path, "--train"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let ours = try HDF5File.open(out.path), reference = try HDF5File.open(Self.fixtures.appendingPathComponent("tiny_deeplab.h5").path)
        for (name, tolerance) in [("logits", 1e-4), ("train/max", 1e-4), ("train/scale_0.5", 1e-4), ("train/scale_0.75", 1e-4),
                                  ("grad/base.aspp.c2.weight", 1e-3), ("grad/base.layer1.conv1.conv.weight", 1e-3)] {
            let a = try ours.read(name, as: Float.self), b = try reference.read(name, as: Float.self)
            XCTAssertEqual(a.shape, b.shape, name)
            let scale = max(1, b.values.map { abs($0) }.max() ?? 0)
            XCTAssertLessThanOrEqual((zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity) / scale, Float(tolerance), name)
        }
        XCTAssertEqual(Double(try ours.read("loss", as: Float.self).values[0]), try reference.read("loss", as: Double.self).values[0],
                       accuracy: 1e-4)
    }

    func testBadInputsAreOneLineErrors() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 4, size: "64x48", classes: 2, shards: 1)
        let base = ["train-deeplab", "--data", shards.path, "--out", dir.appendingPathComponent("run").path, "--model", "tiny-deeplab",
                    "--crop", "32", "--batch", "2", "--iterations", "1"]
        // A folder with no label set.
        let noSet = try TestSupport.pcsMPI(base + ["--labels", dir.path])
        XCTAssertEqual(noSet.status, 1, noSet.stderr)
        XCTAssertTrue(noSet.stderr.contains("no label set here"), noSet.stderr)
        // An init file of another architecture: its keys are named.
        let other = dir.appendingPathComponent("other.h5")
        var dict = StateDict()
        dict.insert(StateTensor(shape: [2, 2], storage: .float32([1, 2, 3, 4])), forKey: "encoder.weight")
        try dict.save(to: other.path)
        let wrongInit = try TestSupport.pcsMPI(base + ["--labels", "gt", "--init", other.path])
        XCTAssertEqual(wrongInit.status, 1, wrongInit.stderr)
        XCTAssertTrue(wrongInit.stderr.contains("another architecture") && wrongInit.stderr.contains("encoder.weight"), wrongInit.stderr)
        // A checkpoint of another class count for infer-deeplab: the mismatched key is named.
        let wrongClasses = try TestSupport.pcsMPI(["infer-deeplab", "--data", shards.path, "--split", "train", "--model", "tiny-deeplab",
                                                   "--weights", Self.fixtures.appendingPathComponent("tiny_deeplab.pth").path,
                                                   "--out", dir.appendingPathComponent("pred").path])
        XCTAssertEqual(wrongClasses.status, 1, wrongClasses.stderr)
        XCTAssertTrue(wrongClasses.stderr.contains("5-class network"), wrongClasses.stderr)
        XCTAssertEqual(wrongClasses.stderr.split(separator: "\n").count, 1, wrongClasses.stderr)
    }
}
