import TestSupport
import XCTest
@testable import Distributed

/// The collectives under a real `mpirun -n 2` (the checks themselves are in Tests/MPIChecks/main.swift).
final class CollectiveTests: XCTestCase {
    func testCollectivesOnTwoRanks() throws {
        let result = try TestSupport.mpirun(2, "mpi-checks", ["2"], timeout: 120)
        XCTAssertFalse(result.timedOut, "mpirun hung")
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 16 checks passed, 0 failed"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rank 1: 16 checks passed, 0 failed"), result.stdout)
    }

    func testWithoutMpirunTheWorldHasOneRank() throws {
        let result = try TestSupport.run(TestSupport.binary("mpi-checks"), ["1"], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 16 checks passed, 0 failed"), result.stdout)
    }

    func testAbortEndsEveryRankWithoutHanging() throws {
        let result = try TestSupport.mpirun(2, "mpi-checks", ["abort"], timeout: 60)
        XCTAssertFalse(result.timedOut, "abort left a rank waiting in the barrier")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("error: rank 1 gives up on purpose"), result.stderr)
        XCTAssertFalse(result.stdout.contains("passed a barrier"), result.stdout)
    }

    func testDefaultThreadsSplitTheNodeBetweenRanks() {
        let cores = ThreadPlan.nodeCores
        XCTAssertEqual(ThreadPlan.defaultThreads(localSize: 1), cores)
        XCTAssertEqual(ThreadPlan.defaultThreads(localSize: cores), 1)
        XCTAssertEqual(ThreadPlan.defaultThreads(localSize: cores * 4), 1, "never below one thread")
        XCTAssertGreaterThanOrEqual(ThreadPlan.allowedCores, 1)
    }
}

/// The gradient reducer under `mpirun -n 2` (checks in Tests/MPIChecks/ReducerCheck.swift).
final class GradientReducerTests: XCTestCase {
    func testTwoRanksOfOneImageEqualOneRankOfTwo() throws {
        let result = try TestSupport.mpirun(2, "mpi-checks", ["reducer"], timeout: 120)
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 25 reducer checks passed, 0 failed"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rank 1: 25 reducer checks passed, 0 failed"), result.stdout)
    }
}

/// The training loop on 1 and 2 ranks (checks in Tests/MPIChecks/TrainLoopCheck.swift): resume gives the same
/// losses step for step, a NaN loss stops with the step named, a signal writes a checkpoint and stops; SGD with
/// three groups resumes exactly; accumulation, frozen BatchNorm and global-batch losses give the update of the
/// whole batch; a rank whose every pixel is ignored stays in lock-step; --keep and --iterations (the two-rank
/// run has 3 checks more: the per-rank-mean contrast and the lock-step pair).
final class TrainLoopTests: XCTestCase {
    func testOnOneRank() throws {
        let dir = try TestSupport.scratchDirectory()
        let result = try TestSupport.run(TestSupport.binary("mpi-checks"), ["trainloop", dir.path], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 19 train-loop checks passed, 0 failed"), result.stdout)
    }

    func testOnTwoRanks() throws {
        let dir = try TestSupport.scratchDirectory()
        let result = try TestSupport.mpirun(2, "mpi-checks", ["trainloop", dir.path], timeout: 300)
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 1: 22 train-loop checks passed, 0 failed"), result.stdout)
    }
}
