import Foundation

/// The state-dict names of ResNet-38d and AffinityNet (spec §8.1/§8.2, `KEYS_resnet38_aff.tsv`) and the renaming of
/// the MXNet ImageNet weights (`ilsvrc-cls_rna-a1_cls1000_ep-0001.params`) to them (spec §8.7, upstream's
/// `network/resnet38d.py` `convert_mxnet_to_torch`). Names only: the network itself lives elsewhere.
public enum ResNet38Weights {
    /// One entry of the table.
    public struct Row: Equatable, Sendable {
        public var key: String
        public var shape: [Int]
        /// A trained parameter, or a buffer (running statistics, `num_batches_tracked`).
        public var isParameter: Bool
    }

    /// Every entry of upstream's `resnet38_aff.Net` state dict in PyTorch's order (232 entries).
    public static let affinityNet: [Row] = compactTable.split(separator: "\n").flatMap { line -> [Row] in
        let fields = line.split(separator: " ").map(String.init)
        func dims(_ text: String) -> [Int] { text.split(separator: "x").map { Int($0)! } }
        if fields.count == 3 {
            let c = dims(fields[2])
            return [Row(key: "\(fields[0]).weight", shape: c, isParameter: true),
                    Row(key: "\(fields[0]).bias", shape: c, isParameter: true),
                    Row(key: "\(fields[0]).running_mean", shape: c, isParameter: false),
                    Row(key: "\(fields[0]).running_var", shape: c, isParameter: false),
                    Row(key: "\(fields[0]).num_batches_tracked", shape: [], isParameter: false)]
        }
        return [Row(key: fields[0], shape: dims(fields[1]), isParameter: true)]
    }

    /// The AffinityNet heads, absent from the ImageNet weights.
    public static let headModules = ["f8_3", "f8_4", "f8_5", "f9"]

    static func isHead(_ key: String) -> Bool { headModules.contains { key.hasPrefix("\($0).") } }

    /// The ResNet-38d backbone as converted from MXNet: the table without the heads and without
    /// `num_batches_tracked` (191 entries).
    public static let backbone: [(key: String, shape: [Int])] = affinityNet
        .filter { !isHead($0.key) && !$0.key.hasSuffix(".num_batches_tracked") }
        .map { ($0.key, $0.shape) }

    // MARK: MXNet names

    private static let batchNormParameters = ["gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"]

    /// The PyTorch name of one MXNet array (with or without its `arg:`/`aux:` prefix), or nil for the 1000-way
    /// classifier `linear1000`, which is dropped. Spec §8.7, tokens split at `_`:
    /// `conv1a_weight` → `conv1a.weight`; a second token containing `branch` names a block unit — `res4b3_branch2b1_weight`
    /// → `b4_3.conv_branch2b1.weight`, `bn5a_branch2a_gamma` → `b5.bn_branch2a.weight` (first token ending in `a`:
    /// `b<S>`, S its second-to-last character; otherwise `b<S>_<K>`, S the third-to-last and K the last); anything else
    /// is the final BatchNorm `bn7`. BatchNorm parameters: gamma → weight, beta → bias, (moving_)mean → running_mean,
    /// (moving_)var → running_var. A name these rules cannot place throws.
    public static func pytorchName(mxnet name: String, source: String = "MXNet weights") throws -> String? {
        let tokens = MXNetParams.strippingPrefix(name).split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        func failure(_ why: String) -> CheckpointError {
            CheckpointError(file: source, what: "MXNet array \"\(name)\" is not a ResNet-38 weight: \(why)")
        }
        func batchNorm(_ token: String) throws -> String {
            guard let parameter = batchNormParameters[token] else { throw failure("unknown BatchNorm parameter \"\(token)\"") }
            return parameter
        }
        let unit = tokens[0]
        if unit.contains("conv1a") {
            guard tokens.count == 2, tokens[1] == "weight" else { throw failure("conv1a has only a weight") }
            return "conv1a.weight"
        }
        if unit.contains("linear1000") { return nil }
        guard tokens.count >= 2 else { throw failure("no parameter name after \"\(unit)\"") }
        if tokens[1].contains("branch") {
            let characters = Array(unit)
            guard characters.count >= 3 else { throw failure("\"\(unit)\" does not name a block unit") }
            let block = characters.last == "a"
                ? "b\(characters[characters.count - 2])"
                : "b\(characters[characters.count - 3])_\(characters[characters.count - 1])"
            if unit.contains("res") {
                guard tokens.count == 3, tokens[2] == "weight" else { throw failure("a convolution has only a weight") }
                return "\(block).conv_\(tokens[1]).weight"
            }
            return "\(block).bn_\(tokens[1]).\(try batchNorm(tokens[tokens.count - 1]))"
        }
        return "bn7.\(try batchNorm(tokens[tokens.count - 1]))"
    }

    /// The MXNet state dict (names as `MXNetParams.stateDict` gives them, or with their prefixes) renamed to PyTorch's
    /// names, `linear1000` dropped. Keys of the table come first in its order (an MXNet file's order is a Python
    /// dict's), any others after them in file order. Two arrays that map to one key throw.
    public static func fromMXNet(_ dict: StateDict, source: String? = nil) throws -> StateDict {
        try fromMXNet(dict.entries.map { ($0.key, $0.tensor) }, source: source ?? dict.source ?? "MXNet weights")
    }

    static func fromMXNet(_ entries: [(name: String, tensor: StateTensor)], source: String) throws -> StateDict {
        var renamed: [String: StateTensor] = [:], origin: [String: String] = [:], fileOrder: [String] = []
        for (name, tensor) in entries {
            guard let key = try pytorchName(mxnet: name, source: source) else { continue }
            if let other = origin[key] {
                throw CheckpointError(file: source, what: "MXNet arrays \"\(other)\" and \"\(name)\" both become \"\(key)\"")
            }
            origin[key] = name
            renamed[key] = tensor
            fileOrder.append(key)
        }
        var result = StateDict()
        for row in affinityNet { if let tensor = renamed.removeValue(forKey: row.key) { result.insert(tensor, forKey: row.key) } }
        for key in fileOrder { if let tensor = renamed.removeValue(forKey: key) { result.insert(tensor, forKey: key) } }
        result.source = source
        return result
    }

    /// Reads an MXNet `.params` file and renames it (`MXNetParams.read`, then `fromMXNet`; errors name the arrays as
    /// stored, prefixes included).
    public static func loadMXNet(_ path: String) throws -> StateDict {
        try fromMXNet(MXNetParams.read(path).map { ($0.name, $0.tensor) }, source: path)
    }

    // MARK: checking

    /// How `entries` differ from `expected`, as `StateDict.check` reports it.
    public static func report(_ entries: [(key: String, shape: [Int])], against expected: [(key: String, shape: [Int])]) -> StateDictReport {
        let found = Dictionary(entries.map { ($0.key, $0.shape) }, uniquingKeysWith: { first, _ in first })
        let expectedKeys = Set(expected.map(\.key))
        var report = StateDictReport(missing: [], unexpected: [], misShaped: [])
        for (key, shape) in expected {
            guard let shapeFound = found[key] else { report.missing.append((key, shape)); continue }
            if shapeFound != shape { report.misShaped.append(.init(key: key, expected: shape, found: shapeFound)) }
        }
        report.unexpected = entries.filter { !expectedKeys.contains($0.key) }
        return report
    }

    /// Checks names and shapes for `--model aff`: either exactly the backbone (what the MXNet conversion gives) or
    /// exactly the whole AffinityNet (what upstream's `resnet38_aff.Net` saves). Which one is judged by whether any
    /// head key is present; a mismatch throws a one-line error naming `source` and the first offending keys.
    @discardableResult
    public static func checkAffinityNet(_ entries: [(key: String, shape: [Int])], source: String) throws -> StateDictReport {
        let full = entries.contains { isHead($0.key) }
        let expected: [(key: String, shape: [Int])] = full ? affinityNet.map { ($0.key, $0.shape) } : backbone
        let differences = report(entries, against: expected)
        guard differences.isExactMatch else {
            throw CheckpointError(file: source, what: "state dict does not match the ResNet-38 \(full ? "AffinityNet" : "backbone"): \(differences)")
        }
        return differences
    }

    /// `checkAffinityNet` on a state dict.
    @discardableResult
    public static func checkAffinityNet(_ dict: StateDict, source: String? = nil) throws -> StateDictReport {
        try checkAffinityNet(dict.entries.map { ($0.key, $0.tensor.shape) }, source: source ?? dict.source ?? "state dict")
    }
}
