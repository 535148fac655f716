import Foundation
import TestSupport
import XCTest
@testable import Storage
import Formats
import NN

/// CAM items in output shards: round trip (including an image without classes), the fingerprint that ties a CAM
/// set to its dataset, and the refusal of a set made for another dataset.
final class CAMRecordTests: XCTestCase {
    func testRoundTripIncludingNoClasses() throws {
        let dir = try TestSupport.scratchDirectory()
        let records = [CAMRecord(id: "a", maps: ClassActivationMaps(classes: [1, 4], width: 3, height: 2, values: (0..<12).map { Float($0) / 12 })),
                       CAMRecord(id: "b", maps: ClassActivationMaps(classes: [], width: 5, height: 4, values: []))]
        let writer = try ShardWriter(directory: dir, fileName: "cams-a000-r00000-00000.h5", name: "cams", shard: 0, of: 0)
        for r in records { try writer.add(r) }
        try writer.finish()
        let reader = try ShardReader(url: writer.url)
        XCTAssertEqual(try records.map { try reader.camRecord($0.id) }, records)
    }

    func testFingerprintFollowsIdsAndClasses() {
        let a = ShardIndex(name: "train", shards: [.init(file: "x", ids: ["1", "2"])], attributes: ["class_names": "cat,dog"])
        var b = a
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        b.shards = [.init(file: "other-file", ids: ["1", "2"])]
        XCTAssertEqual(a.fingerprint, b.fingerprint, "the file layout does not matter")
        b.shards = [.init(file: "x", ids: ["2", "1"])]
        XCTAssertNotEqual(a.fingerprint, b.fingerprint)
        b = a
        b.attributes["class_names"] = "cat,cow"
        XCTAssertNotEqual(a.fingerprint, b.fingerprint)
        XCTAssertEqual(a.fingerprint.count, 16)
    }
}
