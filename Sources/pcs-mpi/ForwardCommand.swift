import ArgumentParser
import Foundation
import NN
import PCSformer

extension ModelVariant: ExpressibleByArgument {}
extension CAMMethod: ExpressibleByArgument {}

/// `--model` and `--weights`, shared by the commands that build a Conformer.
struct ModelOptions: ParsableArguments {
    @Option(help: "Network: \(ModelVariant.allCases.map(\.rawValue).joined(separator: ", ")) (tiny-* are small configurations for tests and demos).")
    var model: ModelVariant = .pc

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
    }

    func build() throws -> Conformer {
        let conformer = Conformer(model.config(k: k), seed: seed)
        if let weights {
            if imagenet { try ConformerCheckpoint.loadImageNet(conformer, path: weights) } else { try ConformerCheckpoint.loadStrict(conformer, path: weights) }
        }
        return conformer
    }
}

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run a Conformer on a tensor from HDF5; write logits, CAM and, with --train, the loss and all gradients.",
        discussion: """
        Input HDF5: `input` (B, 3, H, W) float32, H and W multiples of 16 (already normalised); with --train also \
        `label` (B, classes − 1) and, for SP networks, `sub_label` (B, (classes − 1)·k). \
        Output HDF5: `conv_logits`, `trans_logits` (B, classes); `cam` (B, classes, H/16, W/16) with attribute \
        `method`; SP: `sub_conv_logits`, `sub_trans_logits`, `pooled_feature`; --train: `loss` (1) and \
        `grad/<state-dict key>` for every parameter. BatchNorm runs on running statistics (eval) unless --bn-train; \
        drop path is off unless --drop-path, so a --train pass is deterministic.
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

    @Option(help: "With --train: the dataset of the input file holding the (B, classes − 1) image labels.")
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
        let model = try modelOptions.build()
        model.setBatchNormMode(bnTrain ? .training : .inference)
        var tool = ForwardTool(model: model, method: method, train: train, dropPath: dropPath)
        tool.labelDataset = label
        tool.subLabelDataset = subLabel
        try tool.run(input: input, output: out)
    }
}
