import ArgumentParser
import Distributed
import Foundation
import Segmentation

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

struct IngestVOCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "voc",
        abstract: "Ingest PASCAL VOC 2012 (+ SBD) or a folder in its layout (e.g. from `pcs-mpi synth`).",
        discussion: """
        Labels come from Annotations/<id>.xml (every <name> that is a class name). The class list is \
        ROOT/classes.txt when present, else VOC's 20 classes.
        """)

    @Option(help: "The VOC2012 folder (holding JPEGImages/ and Annotations/).")
    var root: String

    @Option(help: "Split list: ids, or upstream's '/JPEGImages/ID.jpg /SegmentationClassAug/ID.png' lines.")
    var split: String

    @Option(help: "Mask folder, absolute or under ROOT (default: SegmentationClassAug, else SegmentationClass).")
    var aug: String?

    @Option(help: "Saliency-map folder, absolute or under ROOT (default: saliency_map_DRS when present).")
    var saliency: String?

    @OptionGroup var output: IngestOutputOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        let source = try VOCIngestSource(root: URL(fileURLWithPath: root), list: URL(fileURLWithPath: split), masks: aug, saliency: saliency)
        let listName = URL(fileURLWithPath: split).deletingPathExtension().lastPathComponent
        try output.ingest(defaultName: listName, classNames: source.classNames, source: "voc:\(root)", count: source.ids.count,
                          world: world, makeRecord: source.record)
    }
}

struct IngestFolderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "folder",
        abstract: "Ingest your own images: a folder of JPEG/PNG files and a CSV of their labels.",
        discussion: """
        labels.csv: a header line, then 'FILE,CLASSES' per image, CLASSES separated by spaces or semicolons \
        (e.g. 'img_01.jpg,dog person'). The id is the file's stem.
        """)

    @Option(help: "Folder holding the images (paths in the CSV are relative to it).")
    var images: String

    @Option(help: "CSV of FILE,CLASSES lines after a header.")
    var labels: String

    @Option(help: "Class list, one name per line, in label order (default: the CSV's names, sorted).")
    var classes: String?

    @Option(help: "Folder of label-map PNGs named <stem>.png (optional).")
    var masks: String?

    @OptionGroup var output: IngestOutputOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let world = global.startWorld()
        let source = try FolderIngestSource(images: URL(fileURLWithPath: images), labels: URL(fileURLWithPath: labels),
                                            classes: classes.map { URL(fileURLWithPath: $0) }, masks: masks.map { URL(fileURLWithPath: $0) })
        try output.ingest(defaultName: URL(fileURLWithPath: images).lastPathComponent, classNames: source.classNames,
                          source: "folder:\(images)", count: source.count, world: world, makeRecord: source.record)
    }
}
