import ArgumentParser
import Formats
import Foundation
import NN
import PCSformer
import DeepLab

extension ModelVariant: ExpressibleByArgument {}
extension CAMMethod: ExpressibleByArgument {}

/// What `forward --model` builds: a Conformer variant, AffinityNet (`aff`, ResNet-38d; `tiny-aff`), or DeepLab-v2
/// with MSC (`deeplab`, `deeplab-coco`, `tiny-deeplab`).
enum ForwardModel: ExpressibleByArgument, CustomStringConvertible {
    case conformer(ModelVariant)
    case affinity(tiny: Bool)
    case deepLab(String)

    init?(argument: String) {
        switch argument {
        case "aff": self = .affinity(tiny: false)
        case "tiny-aff": self = .affinity(tiny: true)
        case let name where DeepLabConfig.names.contains(name): self = .deepLab(name)
        default:
            guard let variant = ModelVariant(rawValue: argument) else { return nil }
            self = .conformer(variant)
        }
    }

    var description: String {
        switch self {
        case .conformer(let variant): variant.rawValue
        case .affinity(let tiny): tiny ? "tiny-aff" : "aff"
        case .deepLab(let name): name
        }
    }

    static var allValueStrings: [String] { ModelVariant.allCases.map(\.rawValue) + ["aff", "tiny-aff"] + DeepLabConfig.names }
}

/// `--model` and `--weights` of `forward`.
struct ModelOptions: ParsableArguments {
    @Option(help: "Network: \(ForwardModel.allValueStrings.joined(separator: ", ")) (tiny-* are small configurations for tests and demos).")
    var model: ForwardModel = .conformer(.pc)

    @Option(help: "Sub-prototypes per class for SP networks: the extra heads have (classes − 1)·k outputs.")
    var k: Int = 10

    @Option(help: "Weights: a stage checkpoint (.pth or .h5), loaded strictly. Without it the model is freshly initialised.")
    var weights: String?

    @Flag(help: "Load --weights by the ImageNet rules (drop the 1000-way heads, keep matching names).")
    var imagenet = false

    @Option(help: "Seed of the fresh initialisation.")
    var seed: UInt64 = 0

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be at least 1; got \(k)") }
        if imagenet, weights == nil { throw ValidationError("--imagenet needs --weights") }
        if case .conformer = model {} else if imagenet { throw ValidationError("--imagenet is for Conformer models, not \(model)") }
    }

    func build(_ variant: ModelVariant) throws -> Conformer {
        let conformer = Conformer(variant.config(k: k), seed: seed)
        if let weights {
            if imagenet { try ConformerCheckpoint.loadImageNet(conformer, path: weights) } else { try ConformerCheckpoint.loadStrict(conformer, path: weights) }
        }
        return conformer
    }

    /// AffinityNet, with --weights (a train-aff checkpoint or upstream's resnet38_aff.pth) loaded strictly.
    func buildAffinity(tiny: Bool) throws -> AffinityNet {
        let network = AffinityNet(tiny ? .tiny : .full, seed: seed)
        if let weights { try network.load(try StateDict.load(path: weights), strict: true, source: weights) }
        return network
    }
}

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run a Conformer, AffinityNet or DeepLab-v2 on a tensor from HDF5; write its outputs and, with --train, the loss and gradients.",
        discussion: """
        Input HDF5: `input` (B, 3, H, W) float32, H and W multiples of 16 (already normalised); with --train also \
        `label` (B, classes − 1) and, for SP networks, `sub_label` (B, (classes − 1)·k). \
        Output HDF5: `conv_logits`, `trans_logits` (B, classes); `cam` (B, classes, H/16, W/16) with attribute \
        `method`; SP: `sub_conv_logits`, `sub_trans_logits`, `pooled_feature`; --train: `loss` (1) and \
        `grad/<state-dict key>` for every parameter. BatchNorm runs on running statistics (eval) unless --bn-train; \
        drop path is off unless --drop-path, so a --train pass is deterministic.

        --model aff / tiny-aff (AffinityNet, spec §8.2): `input` H and W multiples of 8; output `conv4`, `conv5`, \
        `conv6` and `affinity` (B, D, P) (radius 5, D = 34, when the H/8 × W/8 map's smaller side is ≥ 11). \
        --train reads the pair masks `bg_pos`, `fg_pos`, `neg` (B, D, P) and writes `loss` (bg/4 + fg/4 + neg/2) and \
        `grad/<key>` for every trained parameter under upstream's freezing (stem and b2* fixed, BatchNorm frozen). \
        BatchNorm always on running statistics and channel dropout off (upstream trains with dropout), so deterministic.

        --model deeplab / deeplab-coco / tiny-deeplab (DeepLab-v2 with MSC, spec §10.1; the class count comes from \
        --weights): `input` of any size, Caffe-normalised (BGR, mean subtracted); output `logits` (the MSC max). \
        --train reads `--label` as (B, H, W) integers (255 ignored) and writes `train/scale_1`, `train/scale_0.5`, \
        `train/scale_0.75`, `train/max`, `loss` (the sum of the four cross-entropies) and `grad/<key>` for every \
        trained parameter; BatchNorm frozen in both.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Input HDF5 file.")
    var input: String

    @Option(help: "Output HDF5 file (written under a temporary name, then renamed).")
    var out: String

    @Option(help: "CAM method: \(CAMMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: CAMMethod = .transcam

    @Flag(help: "Compute the loss (spec §3.4, plus the sub-category loss for SP) and every parameter's gradient.")
    var train = false

    @Option(help: "With --train: the dataset of the input file holding the (B, classes − 1) image labels (DeepLab: the (B, H, W) label map).")
    var label: String = "label"

    @Option(help: "With --train on an SP network: the dataset holding the (B, (classes − 1)·k) sub-category labels.")
    var subLabel: String = "sub_label"

    @Flag(help: "BatchNorm with batch statistics (training mode) instead of running statistics.")
    var bnTrain = false

    @Flag(help: "Stochastic depth on during --train.")
    var dropPath = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        _ = global.startWorld()
        let variant: ModelVariant
        switch modelOptions.model {
        case .affinity(let tiny):
            guard !bnTrain, !dropPath else { throw ValidationError("--bn-train and --drop-path are for Conformer models") }
            let network = try modelOptions.buildAffinity(tiny: tiny)
            network.setBatchNormMode(.inference)
            try AffinityForwardTool(network: network, train: train).run(input: input, output: out)
            return
        case .deepLab(let name):
            guard !bnTrain, !dropPath else { throw ValidationError("--bn-train and --drop-path are for Conformer models") }
            let network = try modelOptions.weights.map { try DeepLabCheckpoint.loadTrained(model: name, path: $0) }
                ?? DeepLabV2MSC(DeepLabConfig.named(name)!, seed: modelOptions.seed)
            var tool = DeepLabForwardTool(network: network, train: train)
            tool.labelDataset = label
            try tool.run(input: input, output: out)
            return
        case .conformer(let v): variant = v
        }
        let model = try modelOptions.build(variant)
        model.setBatchNormMode(bnTrain ? .training : .inference)
        var tool = ForwardTool(model: model, method: method, train: train, dropPath: dropPath)
        tool.labelDataset = label
        tool.subLabelDataset = subLabel
        try tool.run(input: input, output: out)
    }
}
