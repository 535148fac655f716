import Foundation
import TestSupport
import XCTest
@testable import Storage
import Formats
import NN

final class ShardStoreTests: XCTestCase {
    func record(_ i: Int) -> DatasetRecord {
        DatasetRecord(id: "img_\(i)", image: (0..<(50 + i * 7)).map { UInt8(($0 * 31 + i) % 256) }, imageFormat: i % 2 == 0 ? "jpeg" : "png",
                      width: 10 + i, height: 20 + i, label: [Float(i % 2), 1, 0],
                      mask: i % 3 == 0 ? nil : [UInt8](repeating: UInt8(i), count: 9), saliency: i == 4 ? [1, 2, 3] : nil)
    }

    /// Writes `count` records into `shards` shards plus the index, as an ingest would.
    func writeSet(_ dir: URL, count: Int = 7, shards: Int = 3) throws -> [DatasetRecord] {
        let records = (0..<count).map(record)
        var entries: [ShardIndex.Entry] = []
        for s in 0..<shards {
            let writer = try ShardWriter(directory: dir, name: "toy", shard: s, of: shards, attributes: ["class_names": "a,b,c"])
            for i in (s * count / shards)..<((s + 1) * count / shards) { try writer.add(records[i]) }
            entries.append(ShardIndex.Entry(file: writer.url.lastPathComponent, ids: try writer.finish()))
        }
        try ShardIndex(name: "toy", shards: entries, attributes: ["class_names": "a,b,c"]).write(directory: dir)
        return records
    }

    func testRoundTripRandomAccessAndOrder() throws {
        let dir = try TestSupport.scratchDirectory()
        let records = try writeSet(dir)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("toy-00001-of-00003.h5").path))
        let set = try ShardedDataset(directory: dir, name: "toy")
        XCTAssertEqual(set.ids, records.map(\.id))
        XCTAssertEqual(set.classNames, ["a", "b", "c"])
        for i in [6, 0, 3, 5, 1] {
            XCTAssertEqual(try set.record("img_\(i)"), records[i])
        }
        XCTAssertThrowsError(try set.record("img_99"))
    }

    func testUnfinishedShardNeverHasItsFinalName() throws {
        let dir = try TestSupport.scratchDirectory()
        var writer: ShardWriter? = try ShardWriter(directory: dir, name: "half", shard: 0, of: 1)
        try writer!.add(record(1))
        let final = writer!.url
        XCTAssertFalse(FileManager.default.fileExists(atPath: final.path))
        writer = nil
        XCTAssertFalse(FileManager.default.fileExists(atPath: final.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "the temporary file is removed")
    }

    func testTruncatedShardIsNamed() throws {
        let dir = try TestSupport.scratchDirectory()
        _ = try writeSet(dir)
        let victim = dir.appendingPathComponent("toy-00002-of-00003.h5")
        let bytes = try Data(contentsOf: victim)
        try bytes.prefix(bytes.count * 2 / 3).write(to: victim)
        let set = try ShardedDataset(directory: dir, name: "toy")
        XCTAssertNoThrow(try set.record("img_0"), "other shards stay readable")
        XCTAssertThrowsError(try set.record("img_6")) { error in
            XCTAssertTrue("\(error)".contains("toy-00002-of-00003.h5"), "\(error)")
        }
    }

    func testFlippedByteIsDetectedByChecksum() throws {
        let dir = try TestSupport.scratchDirectory()
        let records = try writeSet(dir, count: 1, shards: 1)
        let url = dir.appendingPathComponent("toy-00000-of-00001.h5")
        var bytes = try Data(contentsOf: url)
        // Find the stored image payload and damage one byte of it.
        let payload = Data(records[0].image.prefix(24))
        let range = try XCTUnwrap(bytes.range(of: payload))
        bytes[range.lowerBound + 5] ^= 0xFF
        try bytes.write(to: url)
        let set = try ShardedDataset(directory: dir, name: "toy")
        XCTAssertThrowsError(try set.record("img_0")) { error in
            XCTAssertTrue("\(error)".contains("toy-00000-of-00001.h5"), "\(error)")
        }
    }

    func testIndexThatDisagreesWithShardIsAnError() throws {
        let dir = try TestSupport.scratchDirectory()
        _ = try writeSet(dir)
        var index = try ShardIndex.read(directory: dir, name: "toy")
        index.shards[1].ids.append("ghost")
        try index.write(directory: dir)
        let set = try ShardedDataset(directory: dir, name: "toy")
        XCTAssertThrowsError(try set.record("ghost")) { XCTAssertTrue("\($0)".contains("toy-00001-of-00003.h5"), "\($0)") }
        XCTAssertThrowsError(try ShardedDataset(directory: dir, name: "missing"))
    }

    /// h5py, with no project code, reads the shards and the index: ids, labels, image bytes, masks, attributes.
    func testShardsAreReadableWithH5py() throws {
        let dir = try TestSupport.scratchDirectory()
        let records = try writeSet(dir)
        let script = """
        import h5py, json, sys
        d = sys.argv[1]
        index = json.load(open(d + '/toy-index.json'))
        out = []
        for entry in index['shards']:
            with h5py.File(d + '/' + entry['file'], 'r') as f:
                assert f.attrs['format'] == 'pcs-mpi-shard-1', f.attrs['format']
                ids = list(f['ids'].asstr()[()])
                assert ids == entry['ids'], (ids, entry['ids'])
                assert int(f.attrs['item_count']) == len(ids)
                for i in ids:
                    g = f['items'][i]
                    out.append({'id': i, 'n': int(g['image'].shape[0]), 'sum': int(g['image'][()].sum()),
                                'label': [float(v) for v in g['label'][()]], 'format': g['image'].attrs['format'],
                                'width': int(g['image'].attrs['width']), 'mask': 'mask' in g})
        print(json.dumps(out))
        """
        let result = try TestSupport.run(TestSupport.python, ["-c", script, dir.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        struct Row: Decodable { var id: String; var n: Int; var sum: Int; var label: [Float]; var format: String; var width: Int; var mask: Bool }
        let rows = try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
        XCTAssertEqual(rows.map(\.id), records.map(\.id))
        for (row, record) in zip(rows, records) {
            XCTAssertEqual(row.n, record.image.count)
            XCTAssertEqual(row.sum, record.image.reduce(0) { $0 + Int($1) })
            XCTAssertEqual(row.label, record.label)
            XCTAssertEqual(row.format, record.imageFormat)
            XCTAssertEqual(row.width, record.width)
            XCTAssertEqual(row.mask, record.mask != nil)
        }
    }
}
