import Foundation

/// An error reading a PyTorch checkpoint (or matching a state dict against a model), naming the file. One line.
public struct CheckpointError: FileProblem {
    public let file: String
    public let what: String
    public init(file: String, what: String) {
        self.file = file
        self.what = what
    }
}

/// What a `.pth` file holds, as a small tree. Tensors are materialised as contiguous row-major `StateTensor`s
/// (floating types as Float32, integer and bool types as Int64).
public indirect enum PthValue: Equatable {
    /// One key/value pair of a dict, in insertion order.
    public struct Entry: Equatable {
        public var key: PthValue
        public var value: PthValue
    }

    case none
    case bool(Bool)
    case int(Int64)
    /// An integer beyond Int64, as little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([PthValue])
    case tuple([PthValue])
    /// A dict or `collections.OrderedDict`; sets are read as lists.
    case dict([Entry])
    case tensor(StateTensor)
    /// An instance of any other class (e.g. `argparse.Namespace`, a numpy scalar), or a bare class reference:
    /// the class's qualified name, its constructor arguments and the state BUILD gave it. Never instantiated.
    case object(type: String, arguments: [PthValue], state: PthValue?)

    /// The value stored under a string key, when this is a dict.
    public subscript(key: String) -> PthValue? {
        guard case .dict(let entries) = self else { return nil }
        return entries.first { $0.key == .string(key) }?.value
    }
}

/// Reads files written by `torch.save`, without Python.
///
/// Both container formats are supported:
/// - the zip format (PyTorch ≥ 1.6, the default): `<archive>/data.pkl` is the pickle and each storage is the raw
///   little-endian member `<archive>/data/<key>`; the archive folder name varies, so it is taken from the member
///   that ends in `/data.pkl`. A big-endian `byteorder` record is refused.
/// - the legacy format (`_use_new_zipfile_serialization=False`): a magic-number pickle, a protocol-version pickle, a
///   system-info pickle, the main pickle, a pickle listing the storage keys, then for each storage (in that order)
///   an 8-byte little-endian element count followed by the raw bytes.
///
/// Storages are referenced through persistent ids `('storage', torch.<Type>Storage, key, location, numel)` (legacy
/// ids carry a sixth element, an optional view `(view_key, offset, size)`), and tensors are rebuilt by name from
/// `torch._utils._rebuild_tensor_v2` / `_v3` / `_rebuild_tensor` and `_rebuild_parameter(_with_state)`,
/// honouring storage offsets and arbitrary (non-negative) strides. The file is memory-mapped, so a large
/// checkpoint is copied once, into the tensors that are actually materialised. See `Unpickler` for the opcodes.
public enum PthReader {
    /// Reads the whole object tree of a checkpoint, materialising every tensor.
    public static func read(_ path: String) throws -> PthValue {
        try withDecodedPickle(path) { root, materializer in try materializer.value(root) }
    }

    /// The state dict in a checkpoint: the file's top-level dict itself, or the dict under the first of `preferKeys`
    /// it has (checkpoints are often `{"model": state_dict, "epoch": ...}`). Only tensor entries with string keys are
    /// kept, in file order, and only they are materialised.
    public static func stateDict(_ path: String, preferKeys: [String] = ["model", "state_dict"]) throws -> StateDict {
        try withDecodedPickle(path) { root, materializer in
            guard case .dict(let top) = root else {
                throw CheckpointError(file: path, what: "the checkpoint's top-level object is not a dict, so it holds no state dict")
            }
            var chosen = top
            for name in preferKeys {
                if let entry = top.entries.first(where: { if case .string(name) = $0.key { return true } else { return false } }),
                   case .dict(let inner) = entry.value {
                    chosen = inner
                    break
                }
            }
            var result = StateDict()
            for case (.string(let key), .tensor(let recipe)) in chosen.entries {
                result.insert(try materializer.tensor(recipe, key: key), forKey: key)
            }
            guard result.count > 0 else {
                throw CheckpointError(file: path, what: "no tensors found in the checkpoint (looked for a state dict under \(preferKeys) or at the top level)")
            }
            result.source = path
            return result
        }
    }

    /// Whether `bytes` start like a `torch.save` file (zip archive or protocol-2+ pickle).
    static func looksLikePth(_ bytes: UnsafeRawBufferPointer) -> Bool {
        ZipDirectory.looksLikeZip(bytes) || bytes.first == PickleOpcode.PROTO.rawValue
    }

    // MARK: containers

    /// Maps the file, decodes its pickle and calls `body` while the mapping (and so the storage bytes) is alive.
    private static func withDecodedPickle<R>(_ path: String, _ body: (PickleValue, TensorMaterializer) throws -> R) throws -> R {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw CheckpointError(file: path, what: FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        return try data.withUnsafeBytes { bytes in
            if ZipDirectory.looksLikeZip(bytes) { return try decodeZip(bytes, path, body) }
            if bytes.first == PickleOpcode.PROTO.rawValue { return try decodeLegacy(bytes, path, body) }
            throw CheckpointError(file: path, what: bytes.isEmpty ? "empty file" : "not a PyTorch checkpoint (neither a zip archive nor a pickle)")
        }
    }

    private static func decodeZip<R>(_ bytes: UnsafeRawBufferPointer, _ path: String,
                                     _ body: (PickleValue, TensorMaterializer) throws -> R) throws -> R {
        let zip = try ZipDirectory(bytes: bytes, source: path)
        guard let pickleEntry = zip.entries.first(where: { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }) else {
            throw CheckpointError(file: path, what: "zip archive without a data.pkl member: not a torch.save checkpoint")
        }
        let prefix = String(pickleEntry.name.dropLast("data.pkl".count))
        if let order = zip.entry(named: prefix + "byteorder") {
            let range = try zip.contentRange(of: order, in: bytes)
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
            guard text.trimmingCharacters(in: .whitespacesAndNewlines) != "big" else {
                throw CheckpointError(file: path, what: "big-endian checkpoints are not supported")
            }
        }
        let pickle = UnsafeRawBufferPointer(rebasing: bytes[try zip.contentRange(of: pickleEntry, in: bytes)])
        var unpickler = Unpickler(bytes: pickle, source: path, persistentLoad: { .storage(try storageRecipe($0, path)) }, reduce: { try rebuild($0, $1, path) })
        let root = try unpickler.load()
        let materializer = TensorMaterializer(source: path) { storage in
            let name = prefix + "data/" + storage.key
            guard let entry = zip.entry(named: name) else { throw CheckpointError(file: path, what: "storage member \(name) is missing") }
            return UnsafeRawBufferPointer(rebasing: bytes[try zip.contentRange(of: entry, in: bytes)])
        }
        return try body(root, materializer)
    }

    /// The legacy magic number 0x1950a86a20f9469cfc6c, little-endian, as LONG1 writes it.
    private static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    private static func decodeLegacy<R>(_ bytes: UnsafeRawBufferPointer, _ path: String,
                                        _ body: (PickleValue, TensorMaterializer) throws -> R) throws -> R {
        let storageTypes = StorageTypeTable()
        var unpickler = Unpickler(bytes: bytes, source: path, persistentLoad: { id in
            let recipe = try storageRecipe(id, path)
            storageTypes.types[recipe.key] = recipe.dtype
            return .storage(recipe)
        }, reduce: { try rebuild($0, $1, path) })
        guard case .bigInt(legacyMagic) = try unpickler.load() else {
            throw CheckpointError(file: path, what: "not a PyTorch checkpoint: the legacy magic number is missing")
        }
        guard case .int(1001) = try unpickler.load() else {
            throw CheckpointError(file: path, what: "unsupported legacy serialization protocol version (expected 1001)")
        }
        guard case .dict(let systemInfo) = try unpickler.load() else { throw CheckpointError(file: path, what: "corrupt legacy header") }
        for case (.string("little_endian"), .bool(false)) in systemInfo.entries {
            throw CheckpointError(file: path, what: "big-endian checkpoints are not supported")
        }
        let root = try unpickler.load()
        guard case .list(let keyList) = try unpickler.load() else { throw CheckpointError(file: path, what: "corrupt legacy storage key list") }

        var cursor = ByteCursor(bytes: bytes, source: path, position: unpickler.position)
        var storages: [String: UnsafeRawBufferPointer] = [:]
        for case .string(let key) in keyList.items {
            guard let dtype = storageTypes.types[key] ?? nil else { throw CheckpointError(file: path, what: "storage \(key) has no known type") }
            let count = try cursor.offset(try cursor.uint64())
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow else { throw cursor.failure("corrupt size for storage \(key)") }
            do { storages[key] = try cursor.slice(byteCount) } catch {
                throw CheckpointError(file: path, what: "truncated: storage \(key) needs \(byteCount) bytes at offset \(cursor.position)")
            }
        }
        let materializer = TensorMaterializer(source: path) { storage in
            guard let bytes = storages[storage.key] else { throw CheckpointError(file: path, what: "storage \(storage.key) is missing") }
            return bytes
        }
        return try body(root, materializer)
    }

    /// The element types of the legacy format's storages, learnt while unpickling (their bytes come after the pickle).
    private final class StorageTypeTable {
        var types: [String: TorchDType?] = [:]
    }

    // MARK: PyTorch's pickle vocabulary

    /// Decodes a persistent id: ('storage', storage_type, key, location, numel[, view_metadata]).
    private static func storageRecipe(_ id: PickleValue, _ path: String) throws -> StorageRecipe {
        guard case .tuple(let parts) = id, parts.count >= 5, case .string("storage") = parts[0],
              case .global(let typeName) = parts[1], case .string(let key) = parts[2] else {
            throw CheckpointError(file: path, what: "unsupported persistent id (expected a ('storage', ...) tuple)")
        }
        let dtype: TorchDType?
        if typeName == "torch.UntypedStorage" {
            dtype = nil  // bytes; the dtype comes with _rebuild_tensor_v3
        } else if let known = TorchDType(storageType: typeName) {
            dtype = known
        } else {
            throw CheckpointError(file: path, what: "unsupported storage type \(typeName)")
        }
        var elementOffset = 0
        if parts.count >= 6, case .tuple(let view) = parts[5], view.count == 3, case .int(let offset) = view[1] {
            guard offset >= 0 else { throw CheckpointError(file: path, what: "negative storage view offset") }
            elementOffset = Int(offset)
        }
        return StorageRecipe(key: key, dtype: dtype, elementOffset: elementOffset)
    }

    /// Applies PyTorch's tensor rebuild functions; other callables are left to the unpickler.
    private static func rebuild(_ callable: String, _ args: [PickleValue], _ path: String) throws -> PickleValue? {
        switch callable {
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v3":
            guard args.count >= 4, case .storage(let storage) = args[0], case .int(let offset) = args[1],
                  let size = integers(args[2]), let stride = integers(args[3]), size.count == stride.count else {
                throw CheckpointError(file: path, what: "malformed arguments to \(callable)")
            }
            var dtype = storage.dtype
            if callable.hasSuffix("_v3") {
                guard args.count >= 7, case .global(let name) = args[6], let named = TorchDType(dtypeName: name) else {
                    throw CheckpointError(file: path, what: "unsupported tensor dtype in \(callable)")
                }
                dtype = named
            }
            guard let elementType = dtype else { throw CheckpointError(file: path, what: "tensor over an untyped storage without a dtype") }
            return .tensor(TensorRecipe(storage: storage, dtype: elementType, offset: Int(offset), size: size, stride: stride))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard case .tensor? = args.first else { throw CheckpointError(file: path, what: "malformed arguments to \(callable)") }
            return args[0]
        default:
            return nil
        }
    }

    private static func integers(_ value: PickleValue) -> [Int]? {
        let items: [PickleValue]
        switch value {
        case .tuple(let t): items = t
        case .list(let l): items = l.items
        default: return nil
        }
        var result: [Int] = []
        for case .int(let v) in items { result.append(Int(v)) }
        return result.count == items.count ? result : nil
    }
}

/// Turns decoded pickle values into `PthValue`s, copying each tensor's strided view of its storage into a
/// contiguous row-major array. Valid only while the storage bytes it reads (the mapped file) are.
struct TensorMaterializer {
    let source: String
    let storageBytes: (StorageRecipe) throws -> UnsafeRawBufferPointer
    /// Deep enough for any real checkpoint; a memo cycle in a corrupt pickle stops here instead of overflowing the stack.
    private static let maximumDepth = 200

    init(source: String, storageBytes: @escaping (StorageRecipe) throws -> UnsafeRawBufferPointer) {
        self.source = source
        self.storageBytes = storageBytes
    }

    private func failure(_ what: String) -> CheckpointError { CheckpointError(file: source, what: what) }

    func value(_ value: PickleValue, depth: Int = 0) throws -> PthValue {
        guard depth < Self.maximumDepth else { throw failure("objects nested more than \(Self.maximumDepth) deep (a cycle?)") }
        let inner = { (v: PickleValue) in try self.value(v, depth: depth + 1) }
        switch value {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .bigInt(let bytes): return .bigInt(bytes)
        case .float(let f): return .float(f)
        case .string(let s): return .string(s)
        case .bytes(let b): return .bytes(b)
        case .list(let list): return .list(try list.items.map(inner))
        case .tuple(let items): return .tuple(try items.map(inner))
        case .dict(let dict): return .dict(try dict.entries.map { PthValue.Entry(key: try inner($0.key), value: try inner($0.value)) })
        case .global(let name): return .object(type: name, arguments: [], state: nil)
        case .instance(let object):
            return .object(type: object.type, arguments: try object.arguments.map(inner), state: try object.state.map(inner))
        case .storage(let storage): return .object(type: "torch.storage", arguments: [.string(storage.key)], state: nil)
        case .tensor(let recipe): return .tensor(try tensor(recipe))
        }
    }

    /// Copies a tensor out of its storage; `key` only improves error messages.
    func tensor(_ recipe: TensorRecipe, key: String? = nil) throws -> StateTensor {
        let name = key.map { "tensor \($0)" } ?? "a tensor"
        let bytes = try storageBytes(recipe.storage)
        let available = bytes.count / recipe.dtype.byteSize
        guard recipe.size.allSatisfy({ $0 >= 0 }), recipe.stride.allSatisfy({ $0 >= 0 }), recipe.offset >= 0 else {
            throw failure("\(name) has a negative size, stride or offset")
        }
        var count = 1, last = recipe.storage.elementOffset, overflow = false
        (last, overflow) = last.addingReportingOverflow(recipe.offset)
        for (size, stride) in zip(recipe.size, recipe.stride) where !overflow {
            var step = false, add = false
            (count, overflow) = count.multipliedReportingOverflow(by: size)
            let span: Int
            (span, step) = max(size - 1, 0).multipliedReportingOverflow(by: stride)
            (last, add) = last.addingReportingOverflow(span)
            overflow = overflow || step || add
        }
        guard !overflow, count == 0 || last < available else {
            throw failure("\(name) of shape \(recipe.size) reaches past the end of storage \(recipe.storage.key) (\(available) elements)")
        }
        // Zero strides (expanded views) let a small storage describe a huge tensor; a corrupt shape must not become
        // an allocation that takes the machine down.
        guard count <= available || UInt64(count) * 8 <= ProcessInfo.processInfo.physicalMemory / 2 else {
            throw failure("\(name) of shape \(recipe.size) would not fit in memory")
        }
        let first = recipe.storage.elementOffset + recipe.offset
        let indices = ElementIndices(size: recipe.size, stride: recipe.stride, first: first, count: count)
        let shape = recipe.size
        switch recipe.dtype {
        case .float32:
            if indices.isContiguous, 1.littleEndian == 1 {
                let range = (first * 4)..<((first + count) * 4)
                return StateTensor(shape: shape, storage: .float32([Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[range]))
                    initialized = count
                }))
            }
            return StateTensor(shape: shape, storage: .float32(indices.gather { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }))
        case .float16:
            return StateTensor(shape: shape, storage: .float32(indices.gather { Self.float(half: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }))
        case .bfloat16:
            return StateTensor(shape: shape, storage: .float32(indices.gather { Float(bitPattern: UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16) }))
        case .float64:
            return StateTensor(shape: shape, storage: .float32(indices.gather { Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }))
        case .int64:
            return StateTensor(shape: shape, storage: .int64(indices.gather { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }))
        case .int32:
            return StateTensor(shape: shape, storage: .int64(indices.gather { Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }))
        case .int16:
            return StateTensor(shape: shape, storage: .int64(indices.gather { Int64(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self))) }))
        case .int8:
            return StateTensor(shape: shape, storage: .int64(indices.gather { Int64(Int8(bitPattern: bytes[$0])) }))
        case .uint8, .bool:
            return StateTensor(shape: shape, storage: .int64(indices.gather { Int64(bytes[$0]) }))
        }
    }

    /// IEEE binary16 → binary32, exactly (every half is representable as a float).
    static func float(half bits: UInt16) -> Float {
        let sign: Float = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F), mantissa = UInt32(bits & 0x3FF)
        switch exponent {
        case 0: return sign * Float(mantissa) * 0x1p-24  // zero and subnormals
        case 31: return Float(bitPattern: (bits & 0x8000 != 0 ? 0x8000_0000 : 0) | 0x7F80_0000 | mantissa << 13)  // inf, NaN
        default: return Float(bitPattern: (bits & 0x8000 != 0 ? 0x8000_0000 : 0) | UInt32(exponent + 112) << 23 | mantissa << 13)
        }
    }
}

/// The storage element indices of a strided view, in row-major order of the view.
struct ElementIndices {
    let size: [Int], stride: [Int], first: Int, count: Int

    /// Whether the view is one run of consecutive elements (dimensions of size 1 may have any stride).
    var isContiguous: Bool {
        var expected = 1
        for (size, stride) in zip(size, stride).reversed() where size != 1 {
            guard stride == expected else { return false }
            expected *= size
        }
        return true
    }

    /// Reads every element of the view through `element` (given a storage index), in row-major order.
    func gather<T>(_ element: (Int) -> T) -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        guard count > 0 else { return result }
        if isContiguous {
            for i in first..<(first + count) { result.append(element(i)) }
            return result
        }
        // An odometer over the outer dimensions, with the innermost dimension as a tight loop.
        let rank = size.count
        let innerSize = size[rank - 1], innerStride = stride[rank - 1]
        var counter = [Int](repeating: 0, count: rank - 1)
        var base = first
        while true {
            for j in 0..<innerSize { result.append(element(base + j * innerStride)) }
            var d = rank - 2
            while d >= 0 {
                counter[d] += 1
                base += stride[d]
                if counter[d] < size[d] { break }
                base -= stride[d] * size[d]
                counter[d] = 0
                d -= 1
            }
            if d < 0 { return result }
        }
    }
}
