import ArgumentParser
import Distributed
import Foundation
import NN
import Segmentation
import Storage

/// `pcs-mpi cluster`: per-class k-means sub-prototypes and the SP stage's sub-category labels (spec §6.2).
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Per-class k-means on extract-features' output; writes the (C − 1)·k-way sub-category labels for train-sp.",
        discussion: """
        For each class, the features of the images holding it are clustered into --k groups (k-means++ with \
        --restarts, Lloyd iterations with scikit-learn's relative tolerance 1e-4, at most 300). Each image gets one \
        bit per present class c at c·k + its cluster. Labels are aligned by image id (the intent of spec §6.3); \
        --upstream-compat reproduces upstream's misalignment (row i of the training set gets the i-th row of the \
        deduplicated class-major list). Under mpirun the classes are spread over the ranks; the result is the \
        same for any rank count. Output: HDF5 (`ids`, `label_200`, `kept_ids`, `kept_label_200`) and the ids as \
        text beside it.
        """)

    @Option(help: "Folder of the dataset shards (the image labels).")
    var data: String

    @Option(help: "Shard set name.")
    var split: String = "train"

    @Option(help: "Features from `pcs-mpi extract-features`.")
    var features: String

    @Option(help: "Output HDF5 file.")
    var out: String

    @Option(help: "Clusters (sub-prototypes) per class.")
    var k: Int = 10

    @Option(help: "k-means++ initialisations per class; the lowest inertia is kept. 1 is scikit-learn 1.4's n_init=\"auto\" (upstream's), 10 the SC-CAM-era default.")
    var restarts: Int = 10

    @Option(help: "Seed; each class's k-means derives its own from it.")
    var seed: UInt64 = 0

    @Flag(help: "Reproduce upstream's position-indexed label misalignment (spec §12 Q1) instead of aligning by id.")
    var upstreamCompat = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard k >= 1, restarts >= 1 else { throw ValidationError("--k and --restarts must be at least 1") }
    }

    func run() throws {
        let world = global.startWorld()
        let dataset = try ShardedDataset(directory: URL(fileURLWithPath: data), name: split)
        let matrix = try ClassFeatures.read(URL(fileURLWithPath: features), for: dataset)
        let labels = try dataset.ids.map { try dataset.locate($0).reader.label($0) }
        let classes = dataset.classNames.count
        let start = Date()
        let clustering = ClassClustering(k: k, restarts: restarts, seed: seed)
        let names = dataset.classNames
        let clusters = try ClusteringJob(clustering, world: world).run(matrix, labels: labels, names: names) { c, seconds in
            Log.debug(String(format: "cluster: %@ on rank %d in %.2f s", names[c], world.rank, seconds))
        }
        guard world.isRoot else { return }
        let result = try SubCategoryLabels.build(ids: dataset.ids, imageLabels: labels, clusters: clusters, k: k,
                                                 upstreamCompatible: upstreamCompat)
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try result.write(to: url)
        Log.info(String(format: "cluster: %d classes × k = %d over %d images in %.1f s (%@) → %@", classes, k, dataset.count,
                        Date().timeIntervalSince(start), upstreamCompat ? "upstream alignment" : "aligned by id", out))
    }
}
