import Formats
import Foundation
import NN

/// Loading weights into DeepLab-v2 (spec §10.1, §10.2).
public enum DeepLabCheckpoint {
    /// What `loadInit` found in the file.
    public enum InitKind: String {
        /// deeplab-pytorch's converted caffemodels (`deeplabv1_resnet101-coco.pth`, `…-imagenet.pth`): the base
        /// network's names without `base.`, plus a classifier that is skipped.
        case caffe
        /// torchvision's `resnet101-*.pth`, renamed (`layer1.0.conv1` → `layer2.block1.reduce.conv`, …).
        case torchvision
        /// A whole DeepLab state dict (`base.*`: a deeplab-pytorch or pcs-mpi checkpoint), loaded as it is.
        case deepLab
    }

    /// Initialises `model` from `path` (`.pth` or `.h5`) as deeplab-pytorch's `train` does: a non-strict load into
    /// the base network, so the ASPP keeps its fresh init; names the network does not have (the classifier) are
    /// skipped and reported. A torchvision ResNet-101 is renamed first — note that its stride sits on the 3×3
    /// convolution and it expects RGB / std-normalised input, so it is an initialisation, not the same network. A
    /// key of the right name with another shape, or a file sharing no backbone key with the network (another
    /// architecture), is a one-line error naming the keys. Returns the file's kind and the report.
    @discardableResult
    public static func loadInit(_ model: DeepLabV2MSC, path: String) throws -> (kind: InitKind, report: StateDictReport) {
        var dict = try StateDict.load(path: path)
        let kind: InitKind
        if dict.keys.contains(where: { $0.hasPrefix("base.") }) {
            kind = .deepLab
        } else if dict["layer1.0.conv1.weight"] != nil {
            kind = .torchvision
            dict = torchvisionRenamed(dict)
        } else {
            kind = .caffe
        }
        let target: Module = kind == .deepLab ? model : model.base
        let report = try target.load(dict, strict: false, source: path)
        if !report.misShaped.isEmpty {
            let shown = report.misShaped.prefix(3).map { "\($0.key) is \($0.found), the network expects \($0.expected)" }
            throw CheckpointError(file: path, what: "not this DeepLab's weights: \(shown.joined(separator: "; "))\(report.misShaped.count > 3 ? " (\(report.misShaped.count) mis-shaped keys)" : "")")
        }
        let missing = Set(report.missingKeys)
        if target.state("").map(\.name).filter({ !$0.contains("aspp.") }).allSatisfy(missing.contains) {
            throw CheckpointError(file: path, what: "shares no key with DeepLab-v2's backbone (\(report.unexpectedKeys.prefix(3).joined(separator: ", ")) …): another architecture")
        }
        return (kind, report)
    }

    /// A trained DeepLab (`train-deeplab`'s `.h5` or a deeplab-pytorch `checkpoint_*.pth`, names `base.*`), loaded
    /// strictly: another size, class count or network is a one-line error naming the keys.
    public static func loadTrained(_ model: DeepLabV2MSC, path: String) throws {
        try model.load(try StateDict.load(path: path), strict: true, source: path)
    }

    /// The class count of a DeepLab state dict (its ASPP's output channels), nil when it holds no ASPP.
    public static func classes(in dict: StateDict) -> Int? {
        (dict["base.aspp.c0.bias"] ?? dict["aspp.c0.bias"])?.shape.first
    }

    /// A network of the `--model` name (`DeepLabConfig.named`) for a trained checkpoint, with its class count
    /// taken from the file, loaded strictly; BatchNorm frozen.
    public static func loadTrained(model name: String, path: String) throws -> DeepLabV2MSC {
        let dict = try StateDict.load(path: path)
        guard let config = DeepLabConfig.named(name, classes: classes(in: dict)) else {
            throw CheckpointError(file: path, what: "unknown DeepLab model \(name) (one of \(DeepLabConfig.names.joined(separator: ", ")))")
        }
        let network = DeepLabV2MSC(config)
        try network.load(dict, strict: true, source: path)
        network.freezeBatchNorm()
        return network
    }

    /// torchvision's ResNet names in deeplab-pytorch's: `conv1`/`bn1` → `layer1.conv1.{conv,bn}`, `layerN.i` →
    /// `layer(N+1).block(i+1)`, `conv1`/`bn1` → `reduce`, `conv2`/`bn2` → `conv3x3`, `conv3`/`bn3` → `increase`,
    /// `downsample.0`/`downsample.1` → `shortcut.conv`/`shortcut.bn`; `fc.*` stays (and is skipped).
    static func torchvisionRenamed(_ dict: StateDict) -> StateDict {
        let parts: [String: String] = ["conv1": "reduce.conv", "bn1": "reduce.bn", "conv2": "conv3x3.conv", "bn2": "conv3x3.bn",
                                       "conv3": "increase.conv", "bn3": "increase.bn"]
        var renamed = StateDict()
        for (key, tensor) in dict.entries {
            var fields = key.split(separator: ".").map(String.init)
            if fields.first == "conv1" || fields.first == "bn1" {
                fields = ["layer1", "conv1", fields[0] == "conv1" ? "conv" : "bn"] + fields.dropFirst()
            } else if fields.count >= 4, fields[0].hasPrefix("layer"), let n = Int(fields[0].dropFirst(5)), let i = Int(fields[1]) {
                var rest = Array(fields.dropFirst(2))
                if rest[0] == "downsample" {
                    rest = ["shortcut", rest[1] == "0" ? "conv" : "bn"] + rest.dropFirst(2)
                } else if let mapped = parts[rest[0]] {
                    rest = mapped.split(separator: ".").map(String.init) + rest.dropFirst()
                }
                fields = ["layer\(n + 1)", "block\(i + 1)"] + rest
            }
            renamed.insert(tensor, forKey: fields.joined(separator: "."))
        }
        return renamed
    }
}
