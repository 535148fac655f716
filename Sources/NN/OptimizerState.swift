import Formats
/// What a checkpoint keeps of an optimiser: named per-parameter buffers and the step count, so a resumed run
/// continues with exactly the moments it stopped with.
public struct OptimizerState {
    /// Per parameter (by state-dict name): its buffers (AdamW: `m`, `v`; SGD: `momentum`) and its own step count.
    public var buffers: [String: [String: [Float]]] = [:]
    public var steps: [String: Int] = [:]
    public var iteration = 0

    public init() {}

    /// Writes under `group` of an HDF5 file: `<group>/<name>/<buffer>` datasets, `steps` attributes.
    public func write(into file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("iteration", [Int64(iteration)], on: group)
        for (name, named) in buffers.sorted(by: { $0.key < $1.key }) {
            for (buffer, values) in named { try file.write("\(group)/\(name)/\(buffer)", values) }
            try file.setAttribute("steps", [Int64(steps[name] ?? 0)], on: "\(group)/\(name)")
        }
    }

    /// Reads what `write` wrote, for the parameter names given.
    public static func read(from file: HDF5File, group: String, names: [String], buffers bufferNames: [String]) throws -> OptimizerState {
        var state = OptimizerState()
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

extension AdamW {
    /// The moments of every parameter that has taken a step, under the names given (parallel to the groups'
    /// parameters in order).
    public func exportState(names: [ObjectIdentifier: String]) -> OptimizerState {
        var result = OptimizerState()
        result.iteration = iteration
        for (id, s) in state {
            guard let name = names[id] else { continue }
            result.buffers[name] = ["m": s.m, "v": s.v]
            result.steps[name] = s.steps
        }
        return result
    }

    /// Restores moments exported by `exportState` (parameters matched by name).
    public func importState(_ saved: OptimizerState, names: [ObjectIdentifier: String]) {
        iteration = saved.iteration
        for (id, name) in names {
            guard let b = saved.buffers[name], let m = b["m"], let v = b["v"] else { continue }
            state[id] = AdamMoments(m: m, v: v, steps: saved.steps[name] ?? 0)
        }
    }
}
