import ArgumentParser
import Distributed
import Formats
import Foundation
import NN
import PCSformer

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint between PyTorch .pth, MXNet .params and the project's HDF5, checking it against a model.",
        discussion: """
        The input format is read from the content (HDF5, .pth in the zip or legacy format — a {"model": ...} \
        wrapper is unwrapped — or an MXNet NDArray-list .params file), the output format from OUT's extension: \
        .h5/.hdf5 writes /model/<key> datasets, .pth/.pt a file `torch.load` reads (an OrderedDict, or \
        {"model": ...} with --wrap). An MXNet file is the ImageNet ResNet-38 (ilsvrc-cls_rna-a1_cls1000_ep-0001.params): \
        its arrays are renamed to the PyTorch names of ResNet-38d (spec §8.7, linear1000 dropped) and --model \
        defaults to aff (--mxnet-names keeps the file's own names). Every name and shape is checked against \
        --model first (strict; aff: exactly the backbone, or exactly the whole AffinityNet with its heads); \
        --no-check converts any state dict.
        """)

    @Argument(help: "Checkpoint to read (.pth, .h5 or MXNet .params).")
    var input: String

    @Argument(help: "Checkpoint to write: .h5/.hdf5 or .pth/.pt.")
    var output: String

    @Option(help: "Model to check the names and shapes against: \(ConvertModel.names) (default: aff for an MXNet file, else pc).")
    var model: ConvertModel?

    @Option(help: "Sub-prototypes per class for SP models.")
    var k: Int = 10

    @Flag(help: "Convert without checking against a model.")
    var noCheck = false

    @Flag(help: "Keep an MXNet file's own array names (arg:/aux: stripped) instead of renaming them to ResNet-38d's.")
    var mxnetNames = false

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
        let mxnet = MXNetParams.isParamsFile(input)
        let dict = mxnet && !mxnetNames ? try ResNet38Weights.loadMXNet(input) : try StateDict.load(path: input)
        if !noCheck {
            switch model ?? (mxnet ? .aff : .conformer(.pc)) {
            case .aff:
                try ResNet38Weights.checkAffinityNet(dict, source: input)
            case .conformer(let variant):
                _ = try dict.check(against: Conformer(variant.config(k: k)).expectedKeys, strict: true, source: input)
            }
        }
        if outputKind == "hdf5" {
            try dict.save(to: output, attributes: ["source": URL(fileURLWithPath: input).lastPathComponent])
        } else {
            try dict.savePth(to: output, wrapInModelKey: wrap)
        }
        Log.info("convert: \(dict.count) entries, \(dict.parameterCount) values → \(output)")
    }
}

/// What `convert --model` checks against: a Conformer variant, or `aff` (ResNet-38d / AffinityNet, whose network is
/// not a `ModelVariant`; its names and shapes come from `ResNet38Weights`).
enum ConvertModel: ExpressibleByArgument {
    case conformer(ModelVariant)
    case aff

    init?(argument: String) {
        if argument == "aff" {
            self = .aff
        } else if let variant = ModelVariant(rawValue: argument) {
            self = .conformer(variant)
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] { ModelVariant.allCases.map(\.rawValue) + ["aff"] }
    static var names: String { allValueStrings.joined(separator: ", ") }
}
