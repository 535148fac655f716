import Foundation
import TestSupport
import XCTest

/// The short form of `scripts/faults/kill-loop.sh`: train-pc on 1 and 2 ranks, ingest and infer-cam, each killed
/// (SIGKILL) at a random moment and resumed; every result must be complete, free of temporaries and identical to
/// the uninterrupted run. The long form (50 rounds and more) is the script itself.
final class KillLoopTests: XCTestCase {
    func testKilledRunsResumeToTheSameResult() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let result = try TestSupport.run("/bin/bash", [root.appendingPathComponent("scripts/faults/kill-loop.sh").path, "4",
                                                        TestSupport.binary("pcs-mpi")], timeout: 600)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("kill-loop: 4 rounds"), result.stdout + result.stderr)
    }
}
