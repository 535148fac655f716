import Formats
import Foundation
import NN

/// Loading weights into a Conformer (spec §2.7).
public enum ConformerCheckpoint {
    /// The four 1000-way ImageNet head entries that never fit PCSformer's heads.
    static let imageNetHeads: Set<String> = ["trans_cls_head.weight", "trans_cls_head.bias", "conv_cls_head.weight", "conv_cls_head.bias"]

    /// The ImageNet checkpoint rules: the file is a bare state dict or `{"model": …}`; the four ImageNet head
    /// entries are dropped; every other entry whose name the model has is loaded (a mis-shaped one is an error
    /// naming it); names the model lacks are ignored. The heads keep their fresh initialisation.
    /// Returns the report (which keys stayed freshly initialised).
    @discardableResult
    public static func loadImageNet(_ model: Conformer, path: String) throws -> StateDictReport {
        var dict = try StateDict.load(path: path)
        let known = Set(model.expectedKeys.map(\.key))
        for key in dict.keys where imageNetHeads.contains(key) || !known.contains(key) { dict[key] = nil }
        let report = try model.load(dict, strict: false, source: path)
        if let first = report.misShaped.first {
            throw CheckpointError(file: path, what: "\(first.key) is \(first.found), the \(model.config.numClasses)-class model expects \(first.expected)")
        }
        return report
    }

    /// A stage checkpoint (PC, SP) from `.pth` or the project's HDF5, loaded strictly: a checkpoint of another
    /// variant, a missing or an extra key is a one-line error that names it.
    public static func loadStrict(_ model: Conformer, path: String) throws {
        try model.load(try StateDict.load(path: path), strict: true, source: path)
    }

    /// A network of `config` with a stage checkpoint loaded strictly, BatchNorm on running statistics: what CAM
    /// inference and feature extraction run.
    public static func loadForInference(_ config: ConformerConfig, path: String) throws -> Conformer {
        let conformer = Conformer(config, seed: 0)
        try loadStrict(conformer, path: path)
        conformer.setBatchNormMode(.inference)
        return conformer
    }
}
