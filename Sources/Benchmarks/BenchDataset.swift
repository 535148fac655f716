import Distributed
import Storage
import Foundation
import Segmentation
import SyntheticData

/// The synthetic VOC-sized training set the multi-process benchmarks (`bench train`, `bench infer`) run on:
/// `images` generated images (500×375 unless `width`/`height` say otherwise, e.g. COCO's 640×480) with 20 classes, ingested into `shards` shards of the set `train` under
/// SCRATCH/shards. `relabel` may replace an image's label vector (e.g. to fix the classes per image).
public enum BenchDataset {
    public static func make(in scratch: URL, images: Int, seed: UInt64, shards: Int, world: Communicator,
                            width: Int = 500, height: Int = 375, relabel: (([Float]) -> [Float])? = nil) throws -> URL {
        let synth = scratch.appendingPathComponent("synth"), directory = scratch.appendingPathComponent("shards")
        try SyntheticDatasetWriter(config: SyntheticConfig(width: width, height: height, classes: 20, seed: seed), images: images, valFraction: 0)
            .write(to: synth, world: world)
        let ingest = DatasetIngest(name: "train", directory: directory, shardCount: shards, classNames: SyntheticScene.classNames(count: 20))
        let source = try VOCIngestSource(root: synth, list: synth.appendingPathComponent("ImageSets/Segmentation/train.txt"), masks: nil, saliency: nil)
        _ = try ingest.run(count: source.ids.count, world: world) { index in
            var record = try source.record(index)
            if let relabel { record.label = relabel(record.label) }
            return record
        }
        return directory
    }
}
