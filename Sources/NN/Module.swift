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
/// `state(prefix)` lists everything in the order PyTorch's `state_dict()` does: for each module its parameters,
/// then its buffers, then its children in registration order. That order is also the stable order in which the
/// gradient reducer walks the parameters.
public protocol Module: AnyObject {
    func state(_ prefix: String) -> [StateEntry]
}

extension Module {
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
    public func state(_ prefix: String) -> [StateEntry] { namedParameters(prefix).map { .parameter($0.0, $0.1) } }
}

extension Linear: Module {
    public func state(_ prefix: String) -> [StateEntry] { namedParameters(prefix).map { .parameter($0.0, $0.1) } }
}

extension LayerNorm: Module {
    public func state(_ prefix: String) -> [StateEntry] { namedParameters(prefix).map { .parameter($0.0, $0.1) } }
}

extension BatchNorm2d: Module {
    public func state(_ prefix: String) -> [StateEntry] {
        namedParameters(prefix).map { .parameter($0.0, $0.1) } + namedBuffers(prefix).map { .buffer($0.0, $0.1) }
            + [.counter("\(prefix)num_batches_tracked", get: { Int64(self.numBatchesTracked) }, set: { self.numBatchesTracked = Int($0) })]
    }
}

extension MultiHeadAttention: Module {
    public func state(_ prefix: String) -> [StateEntry] { namedParameters(prefix).map { .parameter($0.0, $0.1) } }
}
