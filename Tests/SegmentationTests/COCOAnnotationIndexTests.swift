import Foundation
import XCTest
@testable import Segmentation

final class COCOAnnotationIndexTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("coco-index-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func write(_ text: String, to name: String) throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Indexing `text` must fail with an error naming the file and, when given, the byte offset.
    private func assertIndexFails(_ text: String, atOffset offset: Int?, mentioning phrase: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try write(text, to: "bad \(UUID().uuidString.prefix(8)).json")
        XCTAssertThrowsError(try COCOAnnotationIndex(url: url), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(url.path), "\(message) does not name the file", file: file, line: line)
            XCTAssertTrue(message.contains(phrase), "\(message) does not say \(phrase)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "\(message) is not one line", file: file, line: line)
            XCTAssertEqual((error as? COCOIndexError)?.offset, offset, message, file: file, line: line)
            XCTAssertEqual((error as? LocalizedError)?.errorDescription, message, file: file, line: line)
        }
    }

    func testIndexesTheFixture() throws {
        let index = try COCOAnnotationIndex(url: COCOFixture.instancesURL)
        let reference = try COCOFixture.instances()
        XCTAssertEqual(index.images.map(\.id), [7, 9, 30, 42, 77, 555, 1000])
        XCTAssertEqual(index.images, reference.images.sorted { $0.id < $1.id })
        XCTAssertEqual(index.image(withID: 7)?.fileName, "COCO_train2014_000000000007 \"empty\" é.jpg")
        XCTAssertEqual(index.image(withID: 42).map { [$0.width, $0.height] }, [40, 30])
        XCTAssertNil(index.image(withID: 8))
        XCTAssertEqual(index.categories.count, 80)
        XCTAssertEqual(index.annotationCount, reference.annotations.count)

        for reference in try COCOFixture.expected().images {
            XCTAssertEqual(try index.annotations(forImage: reference.id).map(\.id), reference.annotation_ids, "image \(reference.id)")
            XCTAssertEqual(index.annotationCount(forImage: reference.id), reference.annotation_ids.count)
        }
        XCTAssertEqual(try index.annotations(forImage: 7), [])
        // Lazily decoded annotations are the same values as a whole-file decode, in file order per image.
        for image in index.images {
            XCTAssertEqual(try index.annotations(forImage: image.id), reference.annotations.filter { $0.imageID == image.id })
        }
    }

    func testSegmentationKindsAndFields() throws {
        let index = try COCOAnnotationIndex(url: COCOFixture.instancesURL)
        let image9 = try index.annotations(forImage: 9)
        XCTAssertEqual(image9.map(\.categoryID), [62, 1, 90, 44])
        XCTAssertEqual(image9.map(\.isCrowd), [false, true, false, false])
        guard case .polygons(let parts) = image9[0].segmentation else { return XCTFail("polygons expected") }
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(parts[0], [5.5, 5.25, 20.75, 6, 12.1, 18.9])
        guard case .rle(let counts, let h, let w) = image9[1].segmentation else { return XCTFail("uncompressed RLE expected") }
        XCTAssertEqual([h, w], [48, 64])
        XCTAssertEqual(counts.reduce(0) { $0 + Int($1) }, 48 * 64)
        guard case .compressedRLE(_, 48, 64) = image9[3].segmentation else { return XCTFail("compressed RLE expected") }
        XCTAssertEqual(image9[1].bbox, [0, 20, 64, 14])
        XCTAssertEqual(image9[1].area, 64 * 14)
    }

    func testCategoryIndexFromTheFilesCategories() throws {
        let index = try COCOAnnotationIndex(url: COCOFixture.instancesURL)
        let map = try COCOCategories.categoryIndex(for: index.categories)
        XCTAssertEqual(map, COCOCategories.standardIndex)
        XCTAssertEqual(map[1], 0)
        XCTAssertEqual(map[13], 11) // stop sign: first id after the gap at 12
        XCTAssertEqual(map[90], 79)
        XCTAssertNil(map[12])
        XCTAssertEqual(index.categories.map(\.name), COCOCategories.names)
        XCTAssertEqual(COCOCategories.ids.count, 80)
        XCTAssertEqual(Set(COCOCategories.ids).intersection(COCOCategories.unusedIDs), [])
        // The file's order does not matter, only the set.
        XCTAssertEqual(try COCOCategories.categoryIndex(for: index.categories.reversed()), map)
    }

    func testAnyCategoryListIsIndexedByIdOrder() throws {
        let own = [COCOCategory(id: 50, name: "kite"), COCOCategory(id: 3, name: "dog"), COCOCategory(id: 7, name: "cat")]
        XCTAssertEqual(try COCOCategories.anyCategoryIndex(for: own), [3: 0, 7: 1, 50: 2])
        func message(_ categories: [COCOCategory]) -> String {
            do {
                _ = try COCOCategories.anyCategoryIndex(for: categories)
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(message([]), "non-standard COCO categories: the file lists no categories")
        XCTAssertEqual(message(own + [COCOCategory(id: 7, name: "again")]), "non-standard COCO categories: category id 7 is listed twice")
        XCTAssertEqual(message((1...255).map { COCOCategory(id: $0, name: "c\($0)") }),
                       "non-standard COCO categories: 255 categories; a label map holds at most 254 (labels 1…254, 255 ignore)")
        XCTAssertEqual(try COCOCategories.anyCategoryIndex(for: (1...254).map { COCOCategory(id: $0, name: "c\($0)") }).count, 254)
    }

    func testNonStandardCategoriesGiveAClearError() throws {
        let standard = zip(COCOCategories.ids, COCOCategories.names).map { COCOCategory(id: $0, name: $1) }
        func message(_ categories: [COCOCategory]) -> String {
            do {
                _ = try COCOCategories.categoryIndex(for: categories)
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(message(Array(standard.dropLast())), "non-standard COCO categories: expected 80 categories, the file has 79")
        var renamed = standard
        renamed[2].name = "automobile"
        XCTAssertEqual(message(renamed), "non-standard COCO categories: category id 3 is named \"automobile\", expected \"car\"")
        var renumbered = standard
        renumbered[11].id = 12
        XCTAssertEqual(message(renumbered), "non-standard COCO categories: category #11 (\"stop sign\") has id 12, expected 13")
    }

    func testPrettyPrintedCopyIndexesTheSame() throws {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: COCOFixture.instancesURL))
        let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let url = scratch.appendingPathComponent("pretty.json")
        try pretty.write(to: url)
        let a = try COCOAnnotationIndex(url: url)
        let b = try COCOAnnotationIndex(url: COCOFixture.instancesURL)
        XCTAssertEqual(a.images, b.images)
        XCTAssertEqual(a.categories, b.categories)
        for image in b.images {
            XCTAssertEqual(try a.annotations(forImage: image.id), try b.annotations(forImage: image.id))
        }
    }

    func testTruncatedFileNamesTheFileAndOffset() throws {
        let data = try Data(contentsOf: COCOFixture.instancesURL)
        for cut in [1, data.count / 10, data.count / 2, data.count * 9 / 10, data.count - 1] {
            let url = scratch.appendingPathComponent("truncated-\(cut).json")
            try data.prefix(cut).write(to: url)
            XCTAssertThrowsError(try COCOAnnotationIndex(url: url), "cut at \(cut)") { error in
                XCTAssertEqual("\(error)", "\(url.path): byte offset \(cut): " + ((error as? COCOIndexError)?.reason ?? "?"))
                XCTAssertTrue("\(error)".contains("unexpected end of file"), "\(error)")
            }
        }
    }

    func testMalformedJSONNamesTheOffset() throws {
        let prefix = #"{"images":[],"annotations":[{"image_id":1,"x":[1,"]",2]}"#
        try assertIndexFails(prefix + #";{"image_id":2}],"categories":[]}"#, atOffset: prefix.utf8.count, mentioning: "expected ',' or ']'")
        try assertIndexFails(#"{"images":[],"annotations":[{"image_id":1,"x":[1,2}}],"categories":[]}"#,
                             atOffset: 50, mentioning: "'}' does not match the open '['")
        try assertIndexFails(#"{"images":[],"annotations":[{"image_id":1.5}],"categories":[]}"#,
                             atOffset: 40, mentioning: "\"image_id\" is not an integer")
        try assertIndexFails(#"{"images":[],"annotations":[{"id":3}],"categories":[]}"#,
                             atOffset: 28, mentioning: "annotation has no \"image_id\"")
        try assertIndexFails(#"{"images":{},"annotations":[],"categories":[]}"#,
                             atOffset: 10, mentioning: "the value of \"images\" must be an array")
        try assertIndexFails(#"{"images":[],"annotations":[],"categories":[]} x"#, atOffset: 47, mentioning: "after the top-level object")
        try assertIndexFails(#"[1]"#, atOffset: 0, mentioning: "at the start of the file")
        try assertIndexFails(#"{"images":[],"annotations":[], "info":@}"#, atOffset: 38, mentioning: "unexpected '@'")
        try assertIndexFails("", atOffset: 0, mentioning: "empty file")
    }

    func testStructuralErrorsAreReported() throws {
        try assertIndexFails(#"{"images":[],"annotations":[]}"#, atOffset: nil, mentioning: "no \"categories\" array")
        let image = #"{"id":5,"file_name":"a.jpg","width":4,"height":3}"#
        try assertIndexFails(#"{"images":[\#(image),\#(image)],"annotations":[],"categories":[]}"#,
                             atOffset: nil, mentioning: "image id 5 appears more than once")
        try assertIndexFails(#"{"images":[\#(image)],"annotations":[{"image_id":6}],"categories":[]}"#,
                             atOffset: 77, mentioning: "image_id 6, which is not in \"images\"")
        try assertIndexFails(#"{"images":[{"id":5}],"annotations":[],"categories":[]}"#,
                             atOffset: 11, mentioning: "cannot decode images element: missing key")
        XCTAssertThrowsError(try COCOAnnotationIndex(url: scratch.appendingPathComponent("missing.json"))) { error in
            XCTAssertTrue("\(error)".hasPrefix(self.scratch.appendingPathComponent("missing.json").path + ": cannot read"), "\(error)")
        }
    }

    func testBadAnnotationFailsWhenDecodedNamingItsOffset() throws {
        let image = #"{"id":5,"file_name":"a.jpg","width":4,"height":3}"#
        let prefix = #"{"images":[\#(image)],"annotations":["#
        let bad = #"{"id":1,"image_id":5,"category_id":"cat","iscrowd":0,"segmentation":[[0,0,1,0,1,1]]}"#
        let url = try write(prefix + bad + #"],"categories":[]}"#, to: "bad-annotation.json")
        let index = try COCOAnnotationIndex(url: url)
        XCTAssertEqual(index.annotationCount(forImage: 5), 1)
        XCTAssertThrowsError(try index.annotations(forImage: 5)) { error in
            XCTAssertEqual((error as? COCOIndexError)?.offset, prefix.utf8.count)
            XCTAssertTrue("\(error)".hasPrefix("\(url.path): byte offset \(prefix.utf8.count): cannot decode annotation: category_id"), "\(error)")
        }
        XCTAssertThrowsError(try index.annotations(forImage: 6)) { error in
            XCTAssertEqual("\(error)", "\(url.path): no image with id 6")
        }
    }
}
