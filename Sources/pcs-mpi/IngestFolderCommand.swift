import ArgumentParser
import Distributed
import Foundation
import Segmentation

/// `pcs-mpi ingest folder`: a user's own images and a CSV of their labels.
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
