import Formats

/// What a checkpoint keeps of an optimiser: its kind, named per-parameter buffers and step counts, so a resumed
/// run continues with exactly the state it stopped with.
public struct OptimizerState {
    /// `Optimizer.kind` of the optimiser that exported it.
    public var kind: String
    /// Per parameter (by state-dict name): its buffers (AdamW: `m`, `v`; SGD: `momentum`).
    public var buffers: [String: [String: [Float]]] = [:]
    /// Per parameter: its own update count (AdamW's bias correction).
    public var steps: [String: Int] = [:]
    public var iteration = 0

    public init(kind: String, iteration: Int = 0) {
        self.kind = kind
        self.iteration = iteration
    }

    /// Writes under `group` of an HDF5 file: `<group>/<name>/<buffer>` datasets, `steps` attributes, the
    /// `kind` and `iteration` attributes on the group.
    public func write(into file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("iteration", [Int64(iteration)], on: group)
        try file.setAttribute("kind", kind, on: group)
        for (name, named) in buffers.sorted(by: { $0.key < $1.key }) {
            for (buffer, values) in named.sorted(by: { $0.key < $1.key }) { try file.write("\(group)/\(name)/\(buffer)", values) }
            try file.setAttribute("steps", [Int64(steps[name] ?? 0)], on: "\(group)/\(name)")
        }
    }

    /// Reads what `write` wrote, for the parameter names given, and checks it belongs to an optimiser of `kind`
    /// (checkpoints from before the kind was recorded are AdamW's).
    public static func read(from file: HDF5File, group: String, names: [String], kind: String, buffers bufferNames: [String]) throws -> OptimizerState {
        let stored = try file.stringAttribute("kind", on: group) ?? AdamW.kind
        guard stored == kind else {
            throw HDF5Error(file: file.path, what: "the checkpoint's optimiser is \(stored), this run's is \(kind); resume with the same optimiser")
        }
        var state = OptimizerState(kind: kind)
        state.iteration = Int(try file.numericAttribute("iteration", on: group, as: Int64.self)?.first ?? 0)
        for name in names where file.exists("\(group)/\(name)") {
            var named: [String: [Float]] = [:]
            for buffer in bufferNames { named[buffer] = try file.read("\(group)/\(name)/\(buffer)", as: Float.self).values }
            state.buffers[name] = named
            state.steps[name] = Int(try file.numericAttribute("steps", on: "\(group)/\(name)", as: Int64.self)?.first ?? 0)
        }
        return state
    }
}
