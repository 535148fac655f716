@testable import Distributed
import Foundation
@testable import Imaging
import Segmentation
import Storage
import TestSupport
import XCTest

/// `pcs-mpi ingest coco` on the pycocotools fixture (Tests/SegmentationTests/Fixtures/coco): the masks in the
/// shards equal pycocotools' label maps, for 1 and 2 ranks alike.
final class COCOIngestTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SegmentationTests/Fixtures/coco").standardized

    struct Instances: Decodable {
        struct Image: Decodable { var id: Int; var file_name: String; var width: Int; var height: Int }
        var images: [Image]
    }
    struct Expected: Decodable {
        struct Image: Decodable { var id: Int; var label_map_runs: [[Int]]; var image_labels: [Int] }
        var images: [Image]
    }

    /// Writes a JPEG of the annotated size for every fixture image (one of them `wrongSize`, if asked).
    func makeImages(_ dir: URL, wrongSize: Int? = nil) throws -> Instances {
        let instances = try JSONDecoder().decode(Instances.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("instances_fixture.json")))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for image in instances.images {
            let w = image.id == wrongSize ? image.width + 1 : image.width
            let pixels = PixelImage(width: w, height: image.height, channels: 3, pixels: [UInt8](repeating: UInt8(image.id % 256), count: w * image.height * 3))
            try Data(try JPEGCodec.encode(pixels)).write(to: dir.appendingPathComponent(image.file_name))
        }
        return instances
    }

    func ingest(_ images: URL, out: URL, ranks: Int, extra: [String] = []) throws -> TestSupport.Result {
        let arguments = ["ingest", "coco", "--images", images.path, "--annotations", Self.fixtures.appendingPathComponent("instances_fixture.json").path,
                         "--out", out.path, "--shards", "2", "--name", "coco"] + extra
        return ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
    }

    func testMasksMatchPycocotoolsOnOneAndTwoRanks() throws {
        let dir = try TestSupport.scratchDirectory()
        let instances = try makeImages(dir.appendingPathComponent("train2014"))
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json")))
        for ranks in [1, 2] {
            let out = dir.appendingPathComponent("shards-\(ranks)")
            let result = try ingest(dir.appendingPathComponent("train2014"), out: out, ranks: ranks)
            XCTAssertEqual(result.status, 0, result.stderr)
            let set = try ShardedDataset(directory: out, name: "coco")
            XCTAssertEqual(set.classNames.count, 80)
            XCTAssertEqual(set.count, 6, "the image without annotations is dropped")
            for image in expected.images {
                let id = ((instances.images.first { $0.id == image.id }?.file_name ?? "") as NSString).deletingPathExtension
                guard !image.label_map_runs.isEmpty, image.image_labels.count > 0 else {
                    XCTAssertFalse(set.contains(id))
                    continue
                }
                let record = try set.record(id)
                let mask = try PNGCodec.decodeIndices(try XCTUnwrap(record.mask), name: id)
                let reference = image.label_map_runs.flatMap { [UInt8](repeating: UInt8($0[0]), count: $0[1]) }
                XCTAssertEqual(mask.pixels, reference, "label map of \(id), \(ranks) rank(s)")
                XCTAssertEqual(record.label.enumerated().filter { $0.element == 1 }.map(\.offset), image.image_labels, "labels of \(id)")
            }
        }
        let kept = try ingest(dir.appendingPathComponent("train2014"), out: dir.appendingPathComponent("kept"), ranks: 1, extra: ["--keep-empty"])
        XCTAssertEqual(kept.status, 0, kept.stderr)
        XCTAssertEqual(try ShardedDataset(directory: dir.appendingPathComponent("kept"), name: "coco").count, 7)
    }

    /// A COCO-format export with its own categories (those of the fixture that occur, renamed): classes in
    /// category-id order with the file's names, the masks those of pycocotools with each label moved to its new
    /// index; `--expect-coco80` refuses the file in one line and takes the standard one.
    func testAnyCategoryListIsIndexedByIdWithItsOwnNames() throws {
        let dir = try TestSupport.scratchDirectory()
        let instances = try makeImages(dir.appendingPathComponent("images"))
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("instances_fixture.json"))) as? [String: Any])
        let annotations = try XCTUnwrap(json["annotations"] as? [[String: Any]])
        let used = Set(annotations.compactMap { $0["category_id"] as? Int }).sorted()
        json["categories"] = used.reversed().map { ["id": $0, "name": "kind \($0)", "supercategory": "own"] as [String: Any] }
        let custom = dir.appendingPathComponent("own.json")
        try JSONSerialization.data(withJSONObject: json).write(to: custom)
        let out = dir.appendingPathComponent("own")
        let result = try TestSupport.pcsMPI(["ingest", "coco", "--images", dir.appendingPathComponent("images").path, "--annotations", custom.path,
                                             "--out", out.path, "--shards", "1", "--name", "own"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let set = try ShardedDataset(directory: out, name: "own")
        XCTAssertEqual(set.classNames, used.map { "kind \($0)" })
        // pycocotools' maps use the standard index + 1; here a category's label is its rank among `used` + 1.
        let standard = Dictionary(uniqueKeysWithValues: COCOCategories.ids.enumerated().map { ($0.offset + 1, $0.element) })
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json")))
        for image in expected.images where !image.label_map_runs.isEmpty && !image.image_labels.isEmpty {
            let id = ((instances.images.first { $0.id == image.id }?.file_name ?? "") as NSString).deletingPathExtension
            let record = try set.record(id)
            XCTAssertEqual(record.label.count, used.count)
            let mask = try PNGCodec.decodeIndices(try XCTUnwrap(record.mask), name: id)
            let reference = image.label_map_runs.flatMap { run -> [UInt8] in
                let value = run[0] == 0 || run[0] == 255 ? run[0] : 1 + (used.firstIndex(of: standard[run[0]] ?? -1) ?? 254)
                return [UInt8](repeating: UInt8(value), count: run[1])
            }
            XCTAssertEqual(mask.pixels, reference, "label map of \(id)")
        }
        let strict = try TestSupport.pcsMPI(["ingest", "coco", "--images", dir.appendingPathComponent("images").path, "--annotations", custom.path,
                                             "--out", dir.appendingPathComponent("strict").path, "--expect-coco80"])
        XCTAssertEqual(strict.status, 1)
        XCTAssertEqual(strict.stderr.split(separator: "\n").count, 1, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("own.json") && strict.stderr.contains("non-standard COCO categories"), strict.stderr)
        XCTAssertEqual(try ingest(dir.appendingPathComponent("images"), out: dir.appendingPathComponent("standard"), ranks: 1,
                                  extra: ["--expect-coco80"]).status, 0)
    }

    func testImageOfTheWrongSizeIsNamed() throws {
        let dir = try TestSupport.scratchDirectory()
        _ = try makeImages(dir.appendingPathComponent("train2014"), wrongSize: 30)
        let result = try ingest(dir.appendingPathComponent("train2014"), out: dir.appendingPathComponent("out"), ranks: 1)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("COCO_train2014_000000000030.jpg") && result.stderr.contains("51x37"), result.stderr)
        let missing = try TestSupport.pcsMPI(["ingest", "coco", "--images", dir.path, "--annotations", dir.appendingPathComponent("none.json").path,
                                              "--out", dir.appendingPathComponent("o").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("none.json"), missing.stderr)
    }
}

/// `synth --format coco` → `ingest coco --saliency` gives the dataset `synth` → `ingest voc` gives: the same ids,
/// class names, image labels, masks (polygons, both RLE forms and crowd regions all rasterised back) and saliency
/// maps, on 1 and 2 ranks; a saliency folder that lacks an image's map is an error naming the file.
final class SyntheticCOCOTests: XCTestCase {
    func testCOCOLayoutIngestsToTheVOCLayoutsDataset() throws {
        let dir = try TestSupport.scratchDirectory()
        let common = ["--images", "16", "--size", "64x48", "--classes", "5", "--seed", "3", "--log-level", "warning"]
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", dir.appendingPathComponent("voc").path] + common).status, 0)
        let coco = try TestSupport.mpirun(2, "pcs-mpi", ["synth", "--out", dir.appendingPathComponent("coco").path, "--format", "coco"] + common)
        XCTAssertEqual(coco.status, 0, coco.stderr)
        for split in ["train", "val"] {
            XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", dir.appendingPathComponent("voc").path, "--split",
                                                   dir.appendingPathComponent("voc/ImageSets/Segmentation/\(split).txt").path,
                                                   "--out", dir.appendingPathComponent("voc-shards").path, "--shards", "2", "--log-level", "warning"]).status, 0)
            let ingested = try TestSupport.mpirun(2, "pcs-mpi", ["ingest", "coco", "--images", dir.appendingPathComponent("coco/images").path,
                                                                 "--annotations", dir.appendingPathComponent("coco/annotations/instances_\(split).json").path,
                                                                 "--saliency", dir.appendingPathComponent("coco/saliency_map_DRS").path,
                                                                 "--out", dir.appendingPathComponent("coco-shards").path, "--name", split,
                                                                 "--shards", "2", "--log-level", "warning"])
            XCTAssertEqual(ingested.status, 0, ingested.stderr)
            let voc = try ShardedDataset(directory: dir.appendingPathComponent("voc-shards"), name: split)
            let fromCOCO = try ShardedDataset(directory: dir.appendingPathComponent("coco-shards"), name: split)
            XCTAssertEqual(fromCOCO.classNames, voc.classNames)
            XCTAssertEqual(fromCOCO.ids.sorted(), voc.ids.sorted(), "every image with an object is kept")
            for id in voc.ids {
                let a = try voc.record(id), b = try fromCOCO.record(id)
                XCTAssertEqual(b.label, a.label, "labels of \(id)")
                XCTAssertEqual(try PNGCodec.decodeIndices(try XCTUnwrap(b.mask), name: id).pixels,
                               try PNGCodec.decodeIndices(try XCTUnwrap(a.mask), name: id).pixels, "mask of \(id)")
                XCTAssertEqual(b.image, a.image, "JPEG of \(id)")
                XCTAssertNotNil(b.saliency)
                XCTAssertEqual(b.saliency, a.saliency, "saliency map of \(id)")
            }
        }
    }

    func testMissingSaliencyMapIsNamed() throws {
        let dir = try TestSupport.scratchDirectory()
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", dir.path, "--images", "4", "--size", "64x48", "--classes", "2", "--format", "coco",
                                               "--val-fraction", "0", "--log-level", "warning"]).status, 0)
        let gone = dir.appendingPathComponent("saliency_map_DRS/synth_000002.png")
        try FileManager.default.removeItem(at: gone)
        let result = try TestSupport.pcsMPI(["ingest", "coco", "--images", dir.appendingPathComponent("images").path,
                                             "--annotations", dir.appendingPathComponent("annotations/instances_train.json").path,
                                             "--saliency", dir.appendingPathComponent("saliency_map_DRS").path, "--out", dir.appendingPathComponent("o").path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains(gone.path), result.stderr)
    }
}
