import Foundation
import XCTest
@testable import Storage

/// Shards the fuzzer made (scripts/fuzz.sh shard; kept in Fuzz/regressions/shard): an error naming the file, no trap.
final class ShardFuzzRegressionTests: XCTestCase {
    static let inputs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/regressions/shard")

    /// The id list repeats an id: the id dictionary trapped ("Duplicate values for key").
    func testRepeatedIdIsCorruptionNotATrap() throws {
        let url = Self.inputs.appendingPathComponent("duplicate-ids.h5")
        XCTAssertThrowsError(try ShardReader(url: url)) { error in
            XCTAssertTrue(error.localizedDescription.hasPrefix(url.path + ": shard is corrupt: id"), error.localizedDescription)
        }
    }
}
