import ArgumentParser
import Distributed
import Formats
import Foundation
import NN
import PCSformer

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint between PyTorch .pth and the project's HDF5, checking it against a model.",
        discussion: """
        The input format is read from the content (HDF5, or .pth in the zip or legacy format; a {"model": ...} \
        wrapper is unwrapped), the output format from OUT's extension: .h5/.hdf5 writes /model/<key> datasets, \
        .pth/.pt a file `torch.load` reads (an OrderedDict, or {"model": ...} with --wrap). Every name and shape is \
        checked against --model first (strict); --no-check converts any state dict, e.g. the ImageNet checkpoint.
        """)

    @Argument(help: "Checkpoint to read (.pth or .h5).")
    var input: String

    @Argument(help: "Checkpoint to write: .h5/.hdf5 or .pth/.pt.")
    var output: String

    @Option(help: "Model to check the names and shapes against: \(ModelVariant.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: ModelVariant = .pc

    @Option(help: "Sub-prototypes per class for SP models.")
    var k: Int = 10

    @Flag(help: "Convert without checking against a model.")
    var noCheck = false

    @Flag(help: "Write a .pth as {\"model\": state_dict} instead of the bare state dict.")
    var wrap = false

    @OptionGroup var global: GlobalOptions

    var outputKind: String? {
        switch URL(fileURLWithPath: output).pathExtension.lowercased() {
        case "h5", "hdf5": return "hdf5"
        case "pth", "pt": return "pth"
        default: return nil
        }
    }

    func validate() throws {
        guard outputKind != nil else { throw ValidationError("OUT must end in .h5, .hdf5, .pth or .pt; got '\(output)'") }
        guard k >= 1 else { throw ValidationError("--k must be at least 1; got \(k)") }
    }

    func run() throws {
        global.apply()
        let dict = try StateDict.load(path: input)
        if !noCheck {
            let expected = Conformer(model.config(k: k)).expectedKeys
            _ = try dict.check(against: expected, strict: true, source: input)
        }
        if outputKind == "hdf5" {
            try dict.save(to: output, attributes: ["source": URL(fileURLWithPath: input).lastPathComponent])
        } else {
            try dict.savePth(to: output, wrapInModelKey: wrap)
        }
        Log.info("convert: \(dict.count) entries, \(dict.parameterCount) values → \(output)")
    }
}
