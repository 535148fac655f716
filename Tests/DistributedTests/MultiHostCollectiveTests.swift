import TestSupport
import XCTest

/// The multi-rank checks of CollectiveTests, GradientReducerTests and TrainLoopTests again with the ranks on
/// separate test hosts (`scripts/hosts/`: network namespaces, TCP only, no shared memory between hosts), so the
/// collectives and the loop are shown to hold over a real network stack and not only over shared memory.
final class MultiHostCollectiveTests: XCTestCase {
    /// The hosts go when the class is done (the next class that needs them brings them up again).
    override class func tearDown() { TestHosts.down() }

    override func setUpWithError() throws {
        if let reason = TestHosts.up(2) {
            print("MultiHostCollectiveTests skipped: \(reason)")
            throw XCTSkip(reason)
        }
    }

    func testCollectivesOnTwoHosts() throws {
        let result = try TestHosts.mpirun(2, TestSupport.binary("mpi-checks"), ["2", "2"], timeout: 120)
        XCTAssertFalse(result.timedOut, "mpirun hung")
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 16 checks passed, 0 failed"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rank 1: 16 checks passed, 0 failed"), result.stdout)
    }

    /// Three ranks on two hosts: two ranks share pcs-h0 (node-local rank 0 and 1 there), one is alone on pcs-h1.
    func testThreeRanksOnTwoHostsSeeTheirNodes() throws {
        let result = try TestHosts.mpirun(3, TestSupport.binary("mpi-checks"), ["3", "2"], timeout: 120)
        XCTAssertFalse(result.timedOut, "mpirun hung")
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        for rank in 0..<3 { XCTAssertTrue(result.stdout.contains("rank \(rank): 16 checks passed, 0 failed"), result.stdout) }
    }

    func testAbortEndsEveryHost() throws {
        let result = try TestHosts.mpirun(2, TestSupport.binary("mpi-checks"), ["abort"], timeout: 60)
        XCTAssertFalse(result.timedOut, "abort left a rank waiting in the barrier")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("error: rank 1 gives up on purpose"), result.stderr)
        XCTAssertFalse(result.stdout.contains("passed a barrier"), result.stdout)
    }

    func testReducerOnTwoHosts() throws {
        let result = try TestHosts.mpirun(2, TestSupport.binary("mpi-checks"), ["reducer"], timeout: 120)
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 25 reducer checks passed, 0 failed"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rank 1: 25 reducer checks passed, 0 failed"), result.stdout)
    }

    func testTrainLoopOnTwoHosts() throws {
        let dir = try TestSupport.scratchDirectory()
        let result = try TestHosts.mpirun(2, TestSupport.binary("mpi-checks"), ["trainloop", dir.path], timeout: 300)
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rank 0: 22 train-loop checks passed, 0 failed"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rank 1: 22 train-loop checks passed, 0 failed"), result.stdout)
    }
}
