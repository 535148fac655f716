import Foundation
import XCTest
@testable import Segmentation

/// The pycocotools-made fixtures of `Fixtures/coco` (see scripts/fixtures/make_coco_fixtures.py).
enum COCOFixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/coco")
    static let instancesURL = directory.appendingPathComponent("instances_fixture.json")

    /// The instances file decoded whole with `JSONDecoder`: the reference the streaming index is checked against.
    struct Instances: Decodable {
        var images: [COCOImage]
        var annotations: [COCOAnnotation]
        var categories: [COCOCategory]
    }

    struct Expected: Decodable {
        struct Annotation: Decodable {
            var id: Int
            /// pycocotools' `annToMask`, as canonical column-major run lengths.
            var mask_counts: [UInt32]
            /// pycocotools' compressed RLE string of each polygon part (`frPyObjects`), for polygon annotations.
            var part_rles: [String]?
        }
        struct Image: Decodable {
            var id: Int
            var annotation_ids: [Int]
            /// Row-major `[value, run]` pairs.
            var label_map_runs: [[Int]]
            var image_labels: [Int]
        }
        var annotations: [Annotation]
        var images: [Image]
    }

    static func instances() throws -> Instances {
        try JSONDecoder().decode(Instances.self, from: Data(contentsOf: instancesURL))
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
    }

    /// Column-major run lengths to a row-major 0/1 mask, pixel by pixel (deliberately naive: an independent check).
    static func expand(_ counts: [UInt32], height: Int, width: Int) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: height * width)
        var p = 0
        for (j, count) in counts.enumerated() {
            for _ in 0..<Int(count) {
                if j % 2 == 1, p < height * width { mask[(p % height) * width + p / height] = 1 }
                p += 1
            }
        }
        return mask
    }
}

final class COCOMaskTests: XCTestCase {
    func testCompressedCountsKnownVectors() {
        // Strings made by pycocotools' encode; the last has deltas that go negative and multi-character values.
        XCTAssertEqual(COCOMask.decodeCompressedCounts("53T3OTNO9"), [5, 3, 100, 2, 40, 1, 49])
        XCTAssertEqual(COCOMask.decodeCompressedCounts("0X6"), [0, 200])
        XCTAssertEqual(COCOMask.decodeCompressedCounts("W61"), [199, 1])
        XCTAssertEqual(COCOMask.decodeCompressedCounts("Xo0`j`1Pac0eU_NQ_\\OmYl0"), [1000, 50000, 20000, 5, 1, 28994])
        XCTAssertEqual(COCOMask.decodeCompressedCounts(""), [])
    }

    /// The encoders `synth --format coco` writes with: pycocotools' strings back from their counts, any mask back
    /// from its run lengths, and rectangle polygons that rasterise (pycocotools' rule) to exactly the mask.
    func testEncodersInvertTheDecoders() {
        for string in ["53T3OTNO9", "0X6", "W61", "Xo0`j`1Pac0eU_NQ_\\OmYl0", ""] {
            XCTAssertEqual(COCOMask.compressedCounts(COCOMask.decodeCompressedCounts(string)), string)
        }
        var rng = SystemRandomNumberGenerator()
        for (h, w) in [(1, 1), (7, 5), (13, 29)] {
            for density in [0.0, 0.3, 0.9, 1.0] {
                var mask = (0..<(h * w)).map { _ in UInt8(Double.random(in: 0..<1, using: &rng) < density ? 1 : 0) }
                if h * w > 4 { for i in 0..<(h * w) where (i / w) % 3 == 1 { mask[i] = mask[i - w] } }   // repeated rows
                let rle = COCOMask.rle(mask: mask, height: h, width: w)
                XCTAssertEqual(rle.counts.reduce(0) { $0 + Int($1) }, h * w)
                XCTAssertEqual(COCOMask.binaryMask(rle), mask)
                XCTAssertEqual(COCOMask.decodeCompressedCounts(COCOMask.compressedCounts(rle.counts)), rle.counts)
                let polygons = COCOMask.rectanglePolygons(mask: mask, height: h, width: w)
                XCTAssertEqual(COCOMask.binaryMask(for: .polygons(polygons), height: h, width: w), mask, "\(h)x\(w) at \(density)")
            }
        }
    }

    func testCompressedRLEAnnotationsMatchReference() throws {
        let instances = try COCOFixture.instances()
        let expected = Dictionary(uniqueKeysWithValues: try COCOFixture.expected().annotations.map { ($0.id, $0) })
        var checked = 0
        for annotation in instances.annotations {
            guard case .compressedRLE(let string, let h, let w) = annotation.segmentation else { continue }
            let counts = COCOMask.decodeCompressedCounts(string)
            XCTAssertEqual(counts, expected[annotation.id]?.mask_counts, "annotation \(annotation.id)")
            XCTAssertEqual(counts.reduce(0) { $0 + Int($1) }, h * w, "annotation \(annotation.id)")
            checked += 1
        }
        XCTAssertEqual(checked, 2, "the fixture has two compressed-RLE annotations")
    }

    func testPolygonPartsMatchPycocotoolsRunLengths() throws {
        let instances = try COCOFixture.instances()
        let images = Dictionary(uniqueKeysWithValues: instances.images.map { ($0.id, $0) })
        let expected = Dictionary(uniqueKeysWithValues: try COCOFixture.expected().annotations.map { ($0.id, $0) })
        var parts = 0
        for annotation in instances.annotations {
            guard case .polygons(let polygons) = annotation.segmentation, let image = images[annotation.imageID] else { continue }
            let reference = try XCTUnwrap(expected[annotation.id]?.part_rles, "annotation \(annotation.id)")
            XCTAssertEqual(polygons.count, reference.count)
            for (polygon, string) in zip(polygons, reference) {
                let rle = COCOMask.rle(polygon: polygon, height: image.height, width: image.width)
                XCTAssertEqual(rle.counts, COCOMask.decodeCompressedCounts(string), "annotation \(annotation.id), part \(polygon)")
                XCTAssertEqual(rle.height, image.height)
                XCTAssertEqual(rle.width, image.width)
                parts += 1
            }
        }
        XCTAssertGreaterThan(parts, 30)
    }

    func testEveryAnnotationMaskMatchesAnnToMask() throws {
        let instances = try COCOFixture.instances()
        let images = Dictionary(uniqueKeysWithValues: instances.images.map { ($0.id, $0) })
        let expected = Dictionary(uniqueKeysWithValues: try COCOFixture.expected().annotations.map { ($0.id, $0) })
        XCTAssertEqual(expected.count, instances.annotations.count)
        for annotation in instances.annotations {
            let image = try XCTUnwrap(images[annotation.imageID])
            let reference = try XCTUnwrap(expected[annotation.id])
            let mask = COCOMask.binaryMask(for: annotation.segmentation, height: image.height, width: image.width)
            XCTAssertEqual(mask, COCOFixture.expand(reference.mask_counts, height: image.height, width: image.width),
                           "annotation \(annotation.id)")
        }
    }

    func testBinaryMaskOfRLEIsColumnMajor() {
        // 2×3 mask, column-major runs: 1 off, 2 on (pixels (1,0), (0,1)), 2 off, 1 on (pixel (1,2)).
        let rle = COCORLE(height: 2, width: 3, counts: [1, 2, 2, 1])
        XCTAssertEqual(COCOMask.binaryMask(rle), [0, 1, 0,
                                                  1, 0, 1])
        XCTAssertEqual(rle.area, 3)
    }

    func testRLEIsClippedOrPaddedToTheImage() {
        // Runs past height·width are ignored; a short RLE leaves the rest unset.
        let long = COCOSegmentation.rle(counts: [0, 100], height: 2, width: 2)
        XCTAssertEqual(COCOMask.binaryMask(for: long, height: 2, width: 2), [1, 1, 1, 1])
        let short = COCOSegmentation.rle(counts: [1, 1], height: 2, width: 2)
        XCTAssertEqual(COCOMask.binaryMask(for: short, height: 2, width: 2), [0, 0, 1, 0])
        // A 3×3 RLE into a 2×2 image keeps its top-left 2×2.
        let big = COCOSegmentation.rle(counts: [0, 9], height: 3, width: 3)
        XCTAssertEqual(COCOMask.binaryMask(for: big, height: 2, width: 2), [1, 1, 1, 1])
    }

    func testDegeneratePolygonsAreEmpty() {
        for polygon in [[], [3.0, 4.0], [1.0, 1.0, 6.0, 6.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]] {
            let rle = COCOMask.rle(polygon: polygon, height: 8, width: 8)
            XCTAssertEqual(rle.area, 0, "\(polygon)")
            XCTAssertEqual(rle.counts.reduce(0) { $0 + Int($1) }, 64, "\(polygon)")
        }
        // pycocotools rejects a first part of exactly 4 numbers (it takes it for a box); here it is a line: empty.
        let mask = COCOMask.binaryMask(for: .polygons([[1, 1, 5, 5], [0, 0, 4, 0, 4, 4, 0, 4]]), height: 8, width: 8)
        XCTAssertEqual(mask.reduce(0) { $0 + Int($1) }, 16)
    }

    func testLabelMapsMatchReference() throws {
        let instances = try COCOFixture.instances()
        let images = Dictionary(uniqueKeysWithValues: instances.images.map { ($0.id, $0) })
        let index = try COCOCategories.categoryIndex(for: instances.categories)
        let expected = try COCOFixture.expected().images
        XCTAssertEqual(expected.count, 7)
        var sawIgnore = false
        for reference in expected {
            let image = try XCTUnwrap(images[reference.id])
            let annotations = instances.annotations.filter { $0.imageID == image.id }
            XCTAssertEqual(annotations.map(\.id), reference.annotation_ids)
            let labels = rasterizeCOCOLabelMap(annotations: annotations, height: image.height, width: image.width, categoryIndex: index)
            let want = reference.label_map_runs.flatMap { [UInt8](repeating: UInt8($0[0]), count: $0[1]) }
            XCTAssertEqual(labels, want, "image \(image.id)")
            sawIgnore = sawIgnore || labels.contains(COCOCategories.ignoreLabel)
        }
        XCTAssertTrue(sawIgnore, "the fixture exercises crowd regions")
    }

    func testLabelMapRules() {
        let index = COCOCategories.standardIndex
        func box(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) -> COCOSegmentation {
            .polygons([[x0, y0, x1, y0, x1, y1, x0, y1]])
        }
        // On a 4×4 image, a box [x0, x1) × [y0, y1) with integer corners covers exactly those pixels.
        let crowd = COCOAnnotation(id: 1, imageID: 1, categoryID: 1, isCrowd: true, segmentation: .rle(counts: [0, 16], height: 4, width: 4))
        let dog = COCOAnnotation(id: 2, imageID: 1, categoryID: 18, isCrowd: false, segmentation: box(0, 0, 2, 2))
        let toothbrush = COCOAnnotation(id: 3, imageID: 1, categoryID: 90, isCrowd: false, segmentation: box(1, 1, 3, 3))
        let unknown = COCOAnnotation(id: 4, imageID: 1, categoryID: 12, isCrowd: false, segmentation: box(3, 3, 4, 4))
        let labels = rasterizeCOCOLabelMap(annotations: [crowd, dog, toothbrush, unknown], height: 4, width: 4, categoryIndex: index)
        // dog = index 16 → 17; toothbrush = index 79 → 80, painted later so it wins the overlap; crowd (listed
        // first) still only fills what no instance painted; the unknown category 12 paints nothing.
        XCTAssertEqual(labels, [17, 17, 255, 255,
                                17, 80, 80, 255,
                                255, 80, 80, 255,
                                255, 255, 255, 255])
        let noCrowd = rasterizeCOCOLabelMap(annotations: [toothbrush, dog], height: 4, width: 4, categoryIndex: index)
        XCTAssertEqual(noCrowd, [17, 17, 0, 0,
                                 17, 17, 80, 0,
                                 0, 80, 80, 0,
                                 0, 0, 0, 0])
    }

    func testImageLabelsIncludeCrowdCategories() throws {
        let crowdOnly = COCOAnnotation(id: 1, imageID: 1, categoryID: 90, isCrowd: true, segmentation: .polygons([]))
        let cat = COCOAnnotation(id: 2, imageID: 1, categoryID: 17, isCrowd: false, segmentation: .polygons([]))
        let labels = cocoImageLabels(annotations: [crowdOnly, cat, cat], categoryIndex: COCOCategories.standardIndex)
        XCTAssertEqual(labels.count, 80)
        XCTAssertEqual(labels[79], 1)
        XCTAssertEqual(labels[15], 1)
        XCTAssertEqual(labels.reduce(0, +), 2)

        let instances = try COCOFixture.instances()
        for reference in try COCOFixture.expected().images {
            let annotations = instances.annotations.filter { $0.imageID == reference.id }
            let got = cocoImageLabels(annotations: annotations, categoryIndex: COCOCategories.standardIndex)
            XCTAssertEqual(got.indices.filter { got[$0] == 1 }, reference.image_labels, "image \(reference.id)")
        }
    }
}
