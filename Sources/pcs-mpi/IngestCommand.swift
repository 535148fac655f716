import ArgumentParser
import Distributed
import Foundation
import Segmentation
import Storage

/// `pcs-mpi ingest`: datasets into HDF5 shards.
struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Pack a dataset into HDF5 shards (NAME-00000-of-00016.h5 + NAME-index.json).",
        discussion: """
        Each shard holds one group per image, items/<id>, with the encoded image bytes (image), the image-level \
        label vector (label) and, when present, the PNG mask (mask) and saliency map (saliency); /ids lists the \
        shard's ids. Readable with h5py alone. Under `mpirun -n N` the ranks split the shards; the result is the \
        same for any rank count.
        """,
        subcommands: [IngestVOCCommand.self, IngestCOCOCommand.self, IngestFolderCommand.self])
}

/// Options every ingest source shares.
struct IngestOutputOptions: ParsableArguments {
    @Option(help: "Output folder for the shards and the index.")
    var out: String

    @Option(help: "Number of shards to write (use at least the number of ranks).")
    var shards: Int = 16

    @Option(help: "Name of the shard set (default: the split list's or the source's name).")
    var name: String?

    @Flag(help: "Skip images that cannot be read, listing them in OUT/rejected.txt, instead of stopping.")
    var skipBad = false

    func validate() throws {
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1; got \(shards)") }
        if let name, name.isEmpty || name.contains("/") { throw ValidationError("--name must be a plain file name; got '\(name)'") }
    }

    /// Runs the ingest and prints the summary on rank 0.
    func ingest(defaultName: String, classNames: [String], source: String, count: Int, world: Communicator,
                makeRecord: (Int) throws -> DatasetRecord) throws {
        let setName = name ?? defaultName
        let ingest = DatasetIngest(name: setName, directory: URL(fileURLWithPath: out), shardCount: shards,
                                   classNames: classNames, attributes: ["source": source, "tool": "pcs-mpi ingest"],
                                   skipBad: skipBad)
        let summary = try ingest.run(count: count, world: world, makeRecord: makeRecord)
        var line = "ingest: \(summary.images) images of \(setName) in \(summary.shards) shards → \(out)/\(setName)-index.json"
        if !summary.rejected.isEmpty { line += "; \(summary.rejected.count) rejected (see \(out)/rejected.txt)" }
        Log.info(line)
    }
}
