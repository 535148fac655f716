import Distributed
import Foundation
import TestSupport
import XCTest

/// A rank of a 2-rank run killed (SIGKILL at a crash point, as an out-of-memory kill ends it): the survivor must say
/// in one line which rank was lost and what to resume from (`LostRankWatch`).
final class LostRankTests: XCTestCase {
    func lostLines(_ result: TestSupport.Result) -> [String] {
        (result.stdout + result.stderr).split(separator: "\n").map(String.init).filter { $0.contains(" was lost (") }
    }

    /// Rank 0 dies while committing its second checkpoint: rank 1 names it and the first, the newest complete one.
    func testLostTrainingRankNamesTheNewestCompleteCheckpoint() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "64x48", classes: 2)
        let run = dir.appendingPathComponent("run")
        let result = try TestSupport.run("/usr/bin/env", [
            "mpirun", "-n", "2", "--oversubscribe", "--bind-to", "none", TestSupport.binary("pcs-mpi"),
            "train-pc", "--data", shards.path, "--out", run.path, "--model", "tiny-pc", "--epochs", "3", "--batch", "2",
            "--crop", "64", "--pair", "32", "--resize-long", "64:96", "--lr", "1e-3", "--checkpoint-every", "1", "--log-level", "warning",
        ], timeout: 300, environment: ["PCS_MPI_CRASH_AT": "commit:2:checkpoint-"])
        XCTAssertNotEqual(result.status, 0)
        let checkpoints = try TrainCheckpoint.all(in: run)
        XCTAssertEqual(checkpoints.count, 1, "the second checkpoint was never renamed")
        let lines = lostLines(result)
        XCTAssertEqual(lines.count, 1, result.stdout + result.stderr)
        XCTAssertEqual(lines.first, "pcs-mpi[1]: error: rank 0 was lost (killed, out of memory or a crash: it ended without a word); "
                       + "train-pc: resume with --resume auto from \(checkpoints[0].lastPathComponent) in \(run.path), the newest complete checkpoint")
    }

    /// Rank 1 dies committing its first CAM part: rank 0 names it and says that a rerun keeps the complete parts.
    func testLostInferenceRankSaysARerunGoesOn() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 6, size: "64x48", classes: 2)
        let run = dir.appendingPathComponent("run")
        let train = try TestSupport.pcsMPI(["train-pc", "--data", shards.path, "--out", run.path, "--model", "tiny-pc", "--max-steps", "1",
                                            "--batch", "2", "--crop", "64", "--pair", "32", "--resize-long", "64:96", "--log-level", "warning"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let weights = try XCTUnwrap(TrainCheckpoint.newest(in: run))
        let cams = dir.appendingPathComponent("cams")
        let result = try TestSupport.run("/usr/bin/env", [
            "mpirun", "-n", "2", "--oversubscribe", "--bind-to", "none", TestSupport.binary("pcs-mpi"),
            "infer-cam", "--data", shards.path, "--split", "train", "--out", cams.path, "--model", "tiny-pc", "--weights", weights.path,
            "--long-side", "64", "--scales", "1", "--chunk", "1", "--log-level", "warning",
        ], timeout: 300, environment: ["PCS_MPI_CRASH_AT": "commit:1:-r00001-"])
        XCTAssertNotEqual(result.status, 0)
        let lines = lostLines(result)
        XCTAssertEqual(lines.count, 1, result.stdout + result.stderr)
        XCTAssertEqual(lines.first, "pcs-mpi[0]: error: rank 1 was lost (killed, out of memory or a crash: it ended without a word); "
                       + "infer-cam: the complete CAM parts in \(cams.path) are kept: run the same command again to compute the rest")
    }

    /// Every rank stops on the same bad input and says so: nobody was lost, so no rank may say otherwise, even
    /// when a wrapper (`/usr/bin/time`) lets one rank's process end before another's abort is under way.
    func testRanksThatAllStopOnAnErrorReportNoLoss() throws {
        for _ in 0..<6 {
            let result = try TestSupport.run("/usr/bin/env", [
                "mpirun", "-n", "2", "--oversubscribe", "--bind-to", "none", "/usr/bin/time", "-q", TestSupport.binary("pcs-mpi"),
                "ingest", "coco", "--images", "/nonexistent-images", "--annotations", "/nonexistent.json", "--out", "/nonexistent-out",
            ], timeout: 60)
            XCTAssertNotEqual(result.status, 0)
            XCTAssertTrue(result.stderr.contains("/nonexistent-images: no such image folder"), result.stderr)
            XCTAssertEqual(lostLines(result), [], result.stderr)
        }
    }
}
