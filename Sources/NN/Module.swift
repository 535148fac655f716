import Formats
/// One entry of a module's state under its PyTorch state-dict name.
public enum StateEntry {
    /// A trainable tensor (`weight`, `bias`, `cls_token`, …).
    case parameter(String, Tensor)
    /// A tensor the module keeps but does not train (`running_mean`, `running_var`).
    case buffer(String, Tensor)
    /// An integer counter stored as an Int64 scalar (`num_batches_tracked`).
    case counter(String, get: () -> Int64, set: (Int64) -> Void)

    public var name: String {
        switch self {
        case let .parameter(name, _), let .buffer(name, _), let .counter(name, _, _): return name
        }
    }

    var shape: [Int] {
        switch self {
        case let .parameter(_, t), let .buffer(_, t): return t.shape
        case .counter: return []
        }
    }
}

/// A layer or a model with PyTorch's state-dict names, so that upstream checkpoints load by name.
///
/// A module lists its own tensors (`ownState`, named relative to it) and its direct sub-modules (`children`,
/// under their attribute names). `state(prefix)` walks the tree in the order PyTorch's `state_dict()` does: a
/// module's own entries, then each child's in registration order. That order is also the stable order in which
/// the gradient reducer walks the parameters. Traversal by name (`namedModules`, `freeze`, `setBatchNormMode(_:under:)`)
/// uses the same names as the state dict.
public protocol Module: AnyObject {
    /// This module's own parameters, buffers and counters, not its children's; names relative to it (`weight`).
    var ownState: [StateEntry] { get }
    /// The direct sub-modules in state-dict order, under their names (`conv1`, `mlp.fc1`, `conv_trans_2`).
    var children: [(name: String, module: Module)] { get }
}

extension StateEntry {
    /// The same entry under `prefix + name`.
    func prefixed(_ prefix: String) -> StateEntry {
        guard !prefix.isEmpty else { return self }
        switch self {
        case let .parameter(name, t): return .parameter(prefix + name, t)
        case let .buffer(name, t): return .buffer(prefix + name, t)
        case let .counter(name, get, set): return .counter(prefix + name, get: get, set: set)
        }
    }
}

extension Module {
    public var ownState: [StateEntry] { [] }
    public var children: [(name: String, module: Module)] { [] }

    /// Every entry of the tree under `prefix`, in state-dict order.
    public func state(_ prefix: String) -> [StateEntry] {
        ownState.map { $0.prefixed(prefix) } + children.flatMap { $0.module.state("\(prefix)\($0.name).") }
    }

    /// This module (named `prefix` without its final dot, "" for the root) and every module below it, depth first
    /// in state-dict order.
    public func namedModules(_ prefix: String = "") -> [(name: String, module: Module)] {
        [(String(prefix.dropLast(prefix.hasSuffix(".") ? 1 : 0)), self)]
            + children.flatMap { $0.module.namedModules("\(prefix)\($0.name).") }
    }

    /// The parameters with their state-dict names, in state-dict order.
    public var namedParameterList: [(name: String, tensor: Tensor)] {
        state("").compactMap { if case let .parameter(name, t) = $0 { return (name, t) } else { return nil } }
    }

    /// Freezes every parameter whose state-dict name starts with one of `prefixes` ("" freezes all): it gets no
    /// gradient, and the training loop gives it no bucket and no optimiser state. Returns how many were frozen.
    @discardableResult
    public func freeze(_ prefixes: [String]) -> Int {
        setRequiresGrad(false, prefixes)
    }

    /// Undoes `freeze` for the parameters under `prefixes`.
    @discardableResult
    public func unfreeze(_ prefixes: [String]) -> Int {
        setRequiresGrad(true, prefixes)
    }

    private func setRequiresGrad(_ value: Bool, _ prefixes: [String]) -> Int {
        var changed = 0
        for (name, t) in namedParameterList where prefixes.contains(where: { name.hasPrefix($0) }) {
            t.requiresGrad = value
            changed += 1
        }
        return changed
    }

    /// Every BatchNorm at or below the module named `prefix` ("" for all), in state-dict order.
    public func batchNorms(under prefix: String = "") -> [BatchNorm2d] {
        namedModules().compactMap { name, module in
            guard prefix.isEmpty || name == prefix || name.hasPrefix(prefix + ".") else { return nil }
            return module as? BatchNorm2d
        }
    }

    /// Puts every BatchNorm at or below `prefix` into `mode`. `.frozen` also freezes their weight and bias
    /// (no gradient, no bucket, no optimiser state, as deeplab-pytorch's `requires_grad = False`); the other
    /// modes make them trainable again.
    public func setBatchNormMode(_ mode: BatchNormMode, under prefix: String = "") {
        for bn in batchNorms(under: prefix) {
            bn.mode = mode
            bn.weight.requiresGrad = mode != .frozen
            bn.bias.requiresGrad = mode != .frozen
        }
    }

    /// The trainable tensors, in state-dict order.
    public var parameters: [Tensor] {
        state("").compactMap { if case let .parameter(_, t) = $0 { return t } else { return nil } }
    }

    /// Every key and shape, in state-dict order (what a checkpoint is checked against).
    public var expectedKeys: [(key: String, shape: [Int])] { state("").map { ($0.name, $0.shape) } }

    /// A copy of the module's state (parameters, buffers, counters) in state-dict order.
    public func stateDict() -> StateDict {
        var dict = StateDict()
        for entry in state("") {
            switch entry {
            case let .parameter(name, t), let .buffer(name, t):
                dict.insert(StateTensor(shape: t.shape, storage: .float32(t.toArray())), forKey: name)
            case let .counter(name, get, _):
                dict.insert(StateTensor(shape: [], storage: .int64([get()])), forKey: name)
            }
        }
        return dict
    }

    /// Copies matching entries of `dict` into the module. Strict: every key must match in name and shape, or a
    /// one-line error names the first offenders (and `source`). Non-strict: what matches is loaded and the report
    /// says what was missing, unexpected or mis-shaped.
    @discardableResult
    public func load(_ dict: StateDict, strict: Bool, source: String? = nil) throws -> StateDictReport {
        let report = try dict.check(against: expectedKeys, strict: strict, source: source)
        let misShaped = Set(report.misShapedKeys)
        for entry in state("") where !misShaped.contains(entry.name) {
            guard let value = dict[entry.name] else { continue }
            switch entry {
            case let .parameter(_, t), let .buffer(_, t):
                let floats = value.floats ?? []
                precondition(floats.count == t.elementCount && t.isPlain, "load: \(entry.name) holds \(floats.count) values for \(t)")
                floats.withUnsafeBufferPointer { t.storage.floats.update(from: $0.baseAddress!, count: floats.count) }
                t.version += 1
            case let .counter(_, _, set):
                if case let .int64(values) = value.storage, let v = values.first { set(v) }
            }
        }
        return report
    }
}

extension Conv2d: Module {
    public var ownState: [StateEntry] { namedParameters("").map { .parameter($0.0, $0.1) } }
}

extension Linear: Module {
    public var ownState: [StateEntry] { namedParameters("").map { .parameter($0.0, $0.1) } }
}

extension LayerNorm: Module {
    public var ownState: [StateEntry] { namedParameters("").map { .parameter($0.0, $0.1) } }
}

extension BatchNorm2d: Module {
    public var ownState: [StateEntry] {
        namedParameters("").map { .parameter($0.0, $0.1) } + namedBuffers("").map { .buffer($0.0, $0.1) }
            + [.counter("num_batches_tracked", get: { Int64(self.numBatchesTracked) }, set: { self.numBatchesTracked = Int($0) })]
    }
}

extension MultiHeadAttention: Module {
    public var children: [(name: String, module: Module)] { [("qkv", qkv), ("proj", proj)] }
}
