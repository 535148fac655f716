import Foundation

/// The numbers of one state-dict tensor. Floating-point sources (Float16, BFloat16, Float64) are held as Float32,
/// the network's only compute type; integer sources as Int64, because the one integer buffer that matters,
/// BatchNorm's `num_batches_tracked`, is an int64 counter that must survive a round trip exactly.
public enum StateStorage: Equatable {
    case float32([Float])
    case int64([Int64])

    public var count: Int {
        switch self {
        case .float32(let values): return values.count
        case .int64(let values): return values.count
        }
    }

    /// "float32" or "int64", as numpy and PyTorch spell them.
    public var dtypeName: String {
        switch self {
        case .float32: return "float32"
        case .int64: return "int64"
        }
    }
}

/// One state-dict entry: a shape (as in PyTorch; `[]` for a scalar) and row-major contiguous values.
public struct StateTensor: Equatable {
    public var shape: [Int]
    public var storage: StateStorage

    public init(shape: [Int], storage: StateStorage) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not hold \(storage.count) values")
        self.shape = shape
        self.storage = storage
    }

    public var elementCount: Int { storage.count }

    /// The values when the tensor is floating point.
    public var floats: [Float]? {
        if case .float32(let values) = storage { return values }
        return nil
    }
}

/// An ordered map from PyTorch state-dict keys (`conv_trans_2.cnn_block.conv1.weight`) to tensors: what a model's
/// parameters and buffers are saved as and loaded from. Order is kept because it is the order PyTorch modules
/// register their parameters in, which optimiser state and reports follow.
public struct StateDict {
    public private(set) var keys: [String] = []
    private var tensors: [String: StateTensor] = [:]
    /// Where the state dict was loaded from, for error messages (nil when built in memory).
    public var source: String?

    public init() {}

    public var count: Int { keys.count }

    /// The number of floating-point values (parameters and float buffers such as running statistics).
    public var parameterCount: Int {
        tensors.values.reduce(0) { total, tensor in
            if case .float32(let values) = tensor.storage { return total + values.count }
            return total
        }
    }

    /// Reading gives the tensor or nil; assigning replaces in place, appends a new key, or removes with nil.
    public subscript(key: String) -> StateTensor? {
        get { tensors[key] }
        set {
            guard let tensor = newValue else {
                if tensors.removeValue(forKey: key) != nil { keys.removeAll { $0 == key } }
                return
            }
            insert(tensor, forKey: key)
        }
    }

    /// Sets `key` to `tensor`: an existing key keeps its position, a new key is appended.
    public mutating func insert(_ tensor: StateTensor, forKey key: String) {
        if tensors.updateValue(tensor, forKey: key) == nil { keys.append(key) }
    }

    /// The entries in order.
    public var entries: [(key: String, tensor: StateTensor)] {
        keys.compactMap { key in tensors[key].map { (key, $0) } }
    }
}

// MARK: - HDF5

extension StateDict {
    /// Saves to a new HDF5 file: one dataset per key at `<group>/<key>` (float32 or int64, the tensor's shape), the key
    /// order as the string dataset `<group>_keys` (HDF5 does not keep insertion order by default), the dtypes as
    /// `<group>_dtypes` (`HDF5File` reads any numeric type as the one asked for, so the loader must be told) and, while
    /// needed, the keys of scalars stored as shape [1] as `<group>_scalars`. `attributes` become string attributes of
    /// the file's root. The file is written under a temporary name and renamed, so a crash never leaves a
    /// half-written checkpoint under `path`.
    public func save(to path: String, group: String = "/model", attributes: [String: String] = [:]) throws {
        do {
            try HDF5File.writeAtomically(to: URL(fileURLWithPath: path)) { file in
                try write(into: file, group: group)
                for (name, value) in attributes.sorted(by: { $0.key < $1.key }) { try file.setAttribute(name, value) }
            }
        } catch let error as HDF5Error {
            throw HDF5Error(file: path, what: error.what)
        }
    }

    /// Writes the state dict into an open file (e.g. next to optimiser state in a training checkpoint).
    public func write(into file: HDF5File, group: String = "/model") throws {
        let group = Self.normalized(group)
        for key in keys where key.isEmpty || key.contains("/") || key == "." || key == ".." {
            throw HDF5Error(file: file.path, what: "state-dict key \"\(key)\" cannot be an HDF5 dataset name")
        }
        try file.createGroup(group)
        var scalarsStoredAsVectors: [String] = []
        for (key, tensor) in entries {
            let name = "\(group)/\(key)"
            do {
                try Self.writeDataset(tensor, name, shape: tensor.shape, into: file)
            } catch where tensor.shape.isEmpty {
                // `HDF5File.write` always chunks with a checksum, which HDF5 refuses for a scalar dataspace; until it
                // can write rank-0 datasets, scalars (`num_batches_tracked`) are stored as [1] and listed here.
                try Self.writeDataset(tensor, name, shape: [1], into: file)
                scalarsStoredAsVectors.append(key)
            }
        }
        try file.writeStrings("\(group)_keys", keys)
        try file.writeStrings("\(group)_dtypes", keys.compactMap { tensors[$0]?.storage.dtypeName })
        if !scalarsStoredAsVectors.isEmpty { try file.writeStrings("\(group)_scalars", scalarsStoredAsVectors) }
    }

    private static func writeDataset(_ tensor: StateTensor, _ name: String, shape: [Int], into file: HDF5File) throws {
        switch tensor.storage {
        case .float32(let values): try file.write(name, values, shape: shape)
        case .int64(let values): try file.write(name, values, shape: shape)
        }
    }

    /// Loads a state dict saved by `save(to:group:attributes:)`.
    public static func load(from path: String, group: String = "/model") throws -> StateDict {
        let file = try HDF5File.open(path)
        defer { file.close() }
        var result = try read(from: file, group: group)
        result.source = path
        return result
    }

    /// Reads the state dict stored under `group` of an open file.
    public static func read(from file: HDF5File, group: String = "/model") throws -> StateDict {
        let group = Self.normalized(group)
        guard file.exists("\(group)_keys") else {
            throw HDF5Error(file: file.path, what: "no state dict at \(group) (the key list \(group)_keys is missing)")
        }
        let keys = try file.readStrings("\(group)_keys")
        let dtypes = file.exists("\(group)_dtypes") ? try file.readStrings("\(group)_dtypes") : []
        guard dtypes.isEmpty || dtypes.count == keys.count else {
            throw HDF5Error(file: file.path, what: "\(group)_dtypes lists \(dtypes.count) types for \(keys.count) keys")
        }
        let scalars = Set(file.exists("\(group)_scalars") ? try file.readStrings("\(group)_scalars") : [])
        var result = StateDict()
        for (i, key) in keys.enumerated() {
            let name = "\(group)/\(key)"
            func shape(_ stored: [Int]) -> [Int] { scalars.contains(key) && stored == [1] ? [] : stored }
            switch dtypes.isEmpty ? "float32" : dtypes[i] {
            case "float32":
                let (values, stored) = try file.read(name, as: Float.self)
                result.insert(StateTensor(shape: shape(stored), storage: .float32(values)), forKey: key)
            case "int64":
                let (values, stored) = try file.read(name, as: Int64.self)
                result.insert(StateTensor(shape: shape(stored), storage: .int64(values)), forKey: key)
            case let other:
                throw HDF5Error(file: file.path, what: "unsupported dtype \(other) for \(name)")
            }
        }
        return result
    }

    private static func normalized(_ group: String) -> String {
        "/" + group.split(separator: "/").joined(separator: "/")
    }

    /// Loads a checkpoint of any supported format, by content: HDF5 (our own), a PyTorch `.pth` (zip or legacy), or an
    /// MXNet `.params` file (names as stored, `arg:`/`aux:` stripped; `ResNet38Weights.fromMXNet` renames them).
    public static func load(path: String) throws -> StateDict {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CheckpointError(file: path, what: FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        let head = (try? handle.read(upToCount: 8)) ?? Data()
        try? handle.close()
        let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        if Array(head) == hdf5Signature { return try load(from: path) }
        if head.withUnsafeBytes({ PthReader.looksLikePth($0) }) { return try PthReader.stateDict(path) }
        if head.withUnsafeBytes({ MXNetParams.looksLikeParams($0) }) { return try MXNetParams.stateDict(path) }
        throw CheckpointError(file: path, what: "not a checkpoint: neither HDF5, a PyTorch .pth nor an MXNet .params file")
    }
}

// MARK: - Matching against a model

/// How a state dict differs from what a model expects, by key name.
public struct StateDictReport: Equatable, CustomStringConvertible {
    /// A key present on both sides with different shapes.
    public struct ShapeMismatch: Equatable {
        public var key: String
        public var expected: [Int]
        public var found: [Int]
    }

    /// Expected keys the state dict lacks, in expected order.
    public var missing: [(key: String, shape: [Int])]
    /// Keys the state dict has but the model does not expect, in state-dict order.
    public var unexpected: [(key: String, shape: [Int])]
    public var misShaped: [ShapeMismatch]

    public var missingKeys: [String] { missing.map(\.key) }
    public var unexpectedKeys: [String] { unexpected.map(\.key) }
    public var misShapedKeys: [String] { misShaped.map(\.key) }

    /// Whether every expected key is present with its shape and nothing else is.
    public var isExactMatch: Bool { missing.isEmpty && unexpected.isEmpty && misShaped.isEmpty }

    /// One line: counts and the first few offending keys of each kind with their shapes.
    public var description: String {
        if isExactMatch { return "state dict matches" }
        func list<T>(_ items: [T], _ text: (T) -> String) -> String {
            let shown = items.prefix(3).map(text).joined(separator: ", ")
            return items.count > 3 ? "\(shown), … (\(items.count - 3) more)" : shown
        }
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing \(missing.count): \(list(missing) { "\($0.key) \($0.shape)" })") }
        if !unexpected.isEmpty { parts.append("unexpected \(unexpected.count): \(list(unexpected) { "\($0.key) \($0.shape)" })") }
        if !misShaped.isEmpty {
            parts.append("mis-shaped \(misShaped.count): \(list(misShaped) { "\($0.key) is \($0.found), expected \($0.expected)" })")
        }
        return parts.joined(separator: "; ")
    }

    public static func == (a: StateDictReport, b: StateDictReport) -> Bool {
        a.missingKeys == b.missingKeys && a.missing.map(\.shape) == b.missing.map(\.shape)
            && a.unexpectedKeys == b.unexpectedKeys && a.unexpected.map(\.shape) == b.unexpected.map(\.shape)
            && a.misShaped == b.misShaped
    }
}

extension StateDict {
    /// Compares the keys and shapes with what a model expects. A strict check throws when anything differs, with a
    /// one-line error naming `source` (default: the file the state dict was loaded from) and the first offending
    /// keys; a non-strict check only reports, so a caller can load what matches (fine-tuning, a changed head).
    @discardableResult
    public func check(against expected: [(key: String, shape: [Int])], strict: Bool, source: String? = nil) throws -> StateDictReport {
        var report = StateDictReport(missing: [], unexpected: [], misShaped: [])
        var expectedKeys = Set<String>()
        for (key, shape) in expected {
            expectedKeys.insert(key)
            guard let tensor = tensors[key] else {
                report.missing.append((key, shape))
                continue
            }
            if tensor.shape != shape { report.misShaped.append(.init(key: key, expected: shape, found: tensor.shape)) }
        }
        for (key, tensor) in entries where !expectedKeys.contains(key) { report.unexpected.append((key, tensor.shape)) }
        if strict && !report.isExactMatch {
            throw CheckpointError(file: source ?? self.source ?? "state dict", what: "state dict does not match the model: \(report)")
        }
        return report
    }
}
