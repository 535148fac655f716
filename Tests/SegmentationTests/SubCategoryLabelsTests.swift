import Foundation
import TestSupport
import XCTest
@testable import Segmentation

/// The sub-category labels of spec §6.2–6.3: one bit per present class, aligned by id, and upstream's misalignment
/// reproduced on a hand-made case; the file round trip.
final class SubCategoryLabelsTests: XCTestCase {
    // Four images, three classes, k = 2. Dataset order a, b, c, d.
    //   a: class 2        b: classes 0, 1        c: class 0        d: classes 1, 2
    // Members (dataset order): class 0 = [b, c], class 1 = [b, d], class 2 = [a, d].
    // Clusters: class 0 → b:1, c:0; class 1 → b:0, d:1; class 2 → a:1, d:0.
    let ids = ["a", "b", "c", "d"]
    let labels: [[Float]] = [[0, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 1]]
    let clusters = [[1, 0], [0, 1], [1, 0]]

    func bits(_ v: ArraySlice<Float>?) -> [Int] { (v ?? []).enumerated().filter { $0.element == 1 }.map { $0.offset } }

    func testOneBitPerPresentClassAlignedByID() throws {
        let result = try SubCategoryLabels.build(ids: ids, imageLabels: labels, clusters: clusters, k: 2, upstreamCompatible: false)
        XCTAssertEqual(result.width, 6)
        XCTAssertEqual(bits(result.vector(for: "a")), [2 * 2 + 1])
        XCTAssertEqual(bits(result.vector(for: "b")), [0 * 2 + 1, 1 * 2 + 0])
        XCTAssertEqual(bits(result.vector(for: "c")), [0 * 2 + 0])
        XCTAssertEqual(bits(result.vector(for: "d")), [1 * 2 + 1, 2 * 2 + 0])
        // Kept order: the merged list is b, c (class 0), b, d (class 1), a, d (class 2); first occurrences b, c, d, a.
        XCTAssertEqual(result.keptIDs, ["b", "c", "d", "a"])
        XCTAssertEqual(result.imageLabels, labels.flatMap { $0 }, "the 20-d labels in the same rows")
    }

    func testUpstreamCompatibilityReproducesTheMisalignment() throws {
        let aligned = try SubCategoryLabels.build(ids: ids, imageLabels: labels, clusters: clusters, k: 2, upstreamCompatible: false)
        let compat = try SubCategoryLabels.build(ids: ids, imageLabels: labels, clusters: clusters, k: 2, upstreamCompatible: true)
        // Upstream trains dataset position i with kept row i: a gets b's vector, b gets c's, c gets d's, d gets a's.
        for (id, donor) in zip(ids, ["b", "c", "d", "a"]) {
            XCTAssertEqual(bits(compat.vector(for: id)), bits(aligned.vector(for: donor)), "image \(id)")
        }
        XCTAssertEqual(compat.keptLabels, aligned.keptLabels)
    }

    func testFileRoundTripAndMismatchedClusters() throws {
        let dir = try TestSupport.scratchDirectory()
        let url = dir.appendingPathComponent("sub_labels.h5")
        let result = try SubCategoryLabels.build(ids: ids, imageLabels: labels, clusters: clusters, k: 2, upstreamCompatible: true)
        try result.write(to: url)
        XCTAssertEqual(try SubCategoryLabels.read(url), result)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("sub_labels_ids.txt"), encoding: .utf8), "a\nb\nc\nd\n")
        XCTAssertThrowsError(try SubCategoryLabels.build(ids: ids, imageLabels: labels, clusters: [[1], [0, 1], [1, 0]], k: 2, upstreamCompatible: false))
    }
}
