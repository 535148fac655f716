import Foundation

/// Reads MXNet's NDArray-list files (`mx.nd.save`, and the `.params` of `mx.model.save_checkpoint`, e.g. the
/// ImageNet ResNet-38 `ilsvrc-cls_rna-a1_cls1000_ep-0001.params`) without MXNet.
///
/// The layout is MXNet's `NDArray::Save`/`NDArray::Load` (src/ndarray/ndarray.cc) over dmlc-core's serializer, all
/// little-endian:
/// - `uint64 0x112` (kMXAPINDArrayListMagic), `uint64` reserved, then the arrays as a vector (`uint64` count), then
///   the names as a vector of strings (`uint64` count; per name `uint64` length and the bytes). The name count is 0
///   (a plain list) or the array count.
/// - Each array starts with a `uint32`: `0xF993FAC8` (V1: int64 shape), `0xF993FAC9` (V2: storage type first) or
///   `0xF993FACA` (V3: as V2, saved under np-shape semantics); anything else is the legacy header, where that word is
///   already `ndim` and the dims follow as `uint32`. A V1/V2/V3 shape is `int32 ndim` and `ndim × int64`
///   (`Tuple::Save`, include/mxnet/tuple.h). V2/V3: `int32` storage type (0 dense, 1 row_sparse, 2 csr); a sparse
///   array has its storage shape before the shape, its aux types and shapes after the dtype, and its aux data after
///   the values.
/// - An array without a shape (legacy/V1/V2: `ndim` 0; V3: `ndim` −1 or an unknown dim −1) stops there ("none").
///   Otherwise: context (`int32` dev_type, `int32` dev_id; ignored), `int32` dtype flag (mshadow's TypeFlag) and the
///   raw values, `element size × shape product` bytes.
///
/// Floating-point arrays become Float32 and integer ones Int64 (`StateStorage`'s rule). Only dense arrays can be
/// read: a sparse or shapeless array is an error naming it. Every length is checked against the bytes that remain,
/// so a truncated or garbled file is a one-line `CheckpointError` naming the file, never a crash or a huge allocation.
public enum MXNetParams {
    /// The array header a record was written with.
    public enum HeaderVersion: String, Sendable {
        case legacy, v1, v2, v3
    }

    /// One array of the file.
    public struct Entry {
        /// The name as stored, with any `arg:`/`aux:` prefix.
        public var name: String
        public var version: HeaderVersion
        /// The stored type, as numpy spells it ("float32", "float16", "int64", ...).
        public var dtype: String
        public var tensor: StateTensor

        /// The name without its `arg:`/`aux:` prefix.
        public var key: String { MXNetParams.strippingPrefix(name) }
    }

    static let listMagic: UInt64 = 0x112
    static let v1Magic: UInt32 = 0xF993_FAC8
    static let v2Magic: UInt32 = 0xF993_FAC9
    static let v3Magic: UInt32 = 0xF993_FACA
    /// More dimensions than any real array has; a larger ndim means the bytes are not a header.
    static let maxDimensions = 32

    /// Whether `bytes` start with the NDArray-list magic (0x112 as a little-endian uint64).
    public static func looksLikeParams(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 8 && UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)) == listMagic
    }

    /// Whether the file at `path` starts like an MXNet `.params` file.
    public static func isParamsFile(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 8)) ?? Data()
        return head.withUnsafeBytes { looksLikeParams($0) }
    }

    /// `name` without a leading `arg:` or `aux:`.
    public static func strippingPrefix(_ name: String) -> String {
        name.hasPrefix("arg:") || name.hasPrefix("aux:") ? String(name.dropFirst(4)) : name
    }

    /// The named arrays of the file, in file order.
    public static func read(_ path: String) throws -> [Entry] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw CheckpointError(file: path, what: FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        return try data.withUnsafeBytes { try parse($0, path: path) }
    }

    /// The file as a state dict: prefixes stripped, file order, `source` set to `path`.
    public static func stateDict(_ path: String) throws -> StateDict {
        var result = StateDict()
        var stored: [String: String] = [:]
        for entry in try read(path) {
            if let other = stored[entry.key] {
                throw CheckpointError(file: path, what: "MXNet arrays \"\(other)\" and \"\(entry.name)\" both become \"\(entry.key)\"")
            }
            stored[entry.key] = entry.name
            result.insert(entry.tensor, forKey: entry.key)
        }
        result.source = path
        return result
    }

    // MARK: parsing

    /// What one array record held, before the names are known.
    private enum Record {
        case dense(HeaderVersion, DType, StateTensor)
        case sparse(HeaderVersion, Int32)
        case none(HeaderVersion)
    }

    /// mshadow's TypeFlag values (3rdparty/mshadow/mshadow/base.h), except uint64 (11), which Int64 cannot hold.
    enum DType: Int32 {
        case float32 = 0, float64 = 1, float16 = 2, uint8 = 3, int32 = 4, int8 = 5, int64 = 6, bool = 7
        case int16 = 8, uint16 = 9, uint32 = 10, bfloat16 = 12

        var size: Int {
            switch self {
            case .uint8, .int8, .bool: return 1
            case .float16, .bfloat16, .int16, .uint16: return 2
            case .float32, .int32, .uint32: return 4
            case .float64, .int64: return 8
            }
        }

        var name: String { "\(self)" }
    }

    /// A bounds-checked little-endian reader over the file's bytes.
    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var offset = 0

        var remaining: Int { bytes.count - offset }

        func failure(_ what: String) -> CheckpointError { CheckpointError(file: path, what: what) }

        mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
            guard count >= 0, count <= remaining else {
                throw failure("truncated at offset \(offset): reading \(what()) needs \(count) bytes, \(remaining) remain")
            }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        }

        mutating func uint32(_ what: @autoclosure () -> String) throws -> UInt32 {
            UInt32(littleEndian: try take(4, what()).loadUnaligned(as: UInt32.self))
        }

        mutating func int32(_ what: @autoclosure () -> String) throws -> Int32 { Int32(bitPattern: try uint32(what())) }

        mutating func uint64(_ what: @autoclosure () -> String) throws -> UInt64 {
            UInt64(littleEndian: try take(8, what()).loadUnaligned(as: UInt64.self))
        }

        mutating func int64(_ what: @autoclosure () -> String) throws -> Int64 { Int64(bitPattern: try uint64(what())) }

        /// A `Tuple<int64>` as `Tuple::Save` writes it: `int32 ndim`, then the dims. nil for an unknown shape
        /// (ndim −1, or a dim −1, which only np-shape semantics write).
        mutating func shape(_ what: String) throws -> [Int]? {
            let ndim = try int32("the ndim of \(what)")
            if ndim == -1 { return nil }
            guard ndim >= 0, ndim <= maxDimensions else { throw failure("\(what) has an impossible ndim \(ndim) (offset \(offset - 4))") }
            var dims: [Int] = []
            var unknown = false
            for axis in 0..<Int(ndim) {
                let dim = try int64("dim \(axis) of \(what)")
                if dim == -1 { unknown = true; continue }
                guard dim >= 0 else { throw failure("\(what) has an impossible dim \(dim)") }
                dims.append(Int(dim))
            }
            return unknown ? nil : dims
        }

        /// The number of elements and bytes of `shape` in `dtype`, refusing overflow.
        func byteCount(_ shape: [Int], _ size: Int, _ what: String) throws -> (elements: Int, bytes: Int) {
            var elements = 1
            for dim in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else { throw failure("\(what) of shape \(shape) is too large") }
                elements = product
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow else { throw failure("\(what) of shape \(shape) is too large") }
            return (elements, bytes)
        }
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [Entry] {
        var cursor = Cursor(bytes: bytes, path: path)
        guard bytes.count >= 8 else {
            throw cursor.failure(bytes.isEmpty ? "empty file" : "not an MXNet .params file (only \(bytes.count) bytes)")
        }
        let magic = try cursor.uint64("the list magic")
        guard magic == listMagic else {
            throw cursor.failure("not an MXNet .params file (starts with 0x\(String(magic, radix: 16)), not the NDArray-list magic 0x112)")
        }
        _ = try cursor.uint64("the reserved word")
        let arrayCount = try cursor.uint64("the array count")
        // Every record takes at least 4 bytes, so a larger count is garbage, not a reason to allocate.
        guard arrayCount <= UInt64(cursor.remaining / 4) else {
            throw cursor.failure("the file claims \(arrayCount) arrays but only \(cursor.remaining) bytes follow")
        }
        let count = Int(arrayCount)
        var records: [Record] = []
        records.reserveCapacity(count)
        for index in 0..<count {
            records.append(try record(&cursor, "array \(index + 1) of \(count)"))
        }
        let nameCount = try cursor.uint64("the name count")
        guard nameCount == arrayCount else {
            throw cursor.failure(nameCount == 0
                ? "the file holds \(count) unnamed arrays (saved as a list, not a dict), so it is no state dict"
                : "the file holds \(count) arrays but \(nameCount) names")
        }
        var names: [String] = []
        for index in 0..<count {
            let what = "name \(index + 1) of \(count)"
            let length = try cursor.uint64("the length of \(what)")
            guard length <= UInt64(cursor.remaining) else {
                throw cursor.failure("truncated: \(what) is \(length) bytes long, but only \(cursor.remaining) remain")
            }
            guard let name = String(bytes: try cursor.take(Int(length), what), encoding: .utf8) else {
                throw cursor.failure("\(what) is not UTF-8")
            }
            names.append(name)
        }
        // Bytes after the names are ignored, as NDArray::Load does.
        return try zip(names, records).map { name, record in
            switch record {
            case .dense(let version, let dtype, let tensor):
                return Entry(name: name, version: version, dtype: dtype.name, tensor: tensor)
            case .sparse(let version, let storage):
                throw cursor.failure("MXNet array \"\(name)\" (\(version.rawValue) header) has \(storage == 1 ? "row_sparse" : "csr") storage; only dense arrays can be read")
            case .none(let version):
                throw cursor.failure("MXNet array \"\(name)\" (\(version.rawValue) header) is empty: it was saved without a shape")
            }
        }
    }

    private static func record(_ cursor: inout Cursor, _ what: String) throws -> Record {
        let first = try cursor.uint32("the header of \(what)")
        let version: HeaderVersion
        switch first {
        case v1Magic: version = .v1
        case v2Magic: version = .v2
        case v3Magic: version = .v3
        default: version = .legacy
        }
        var storage: Int32 = 0
        var storageShape: [Int]?
        let shape: [Int]?
        switch version {
        case .legacy:
            // LegacyTShapeLoad: the word read as the magic is ndim; the dims are uint32.
            guard first <= UInt32(maxDimensions) else {
                throw cursor.failure("\(what) at offset \(cursor.offset - 4) starts with 0x\(String(first, radix: 16)): neither an NDArray magic nor a plausible ndim")
            }
            var dims: [Int] = []
            for axis in 0..<Int(first) { dims.append(Int(try cursor.uint32("dim \(axis) of \(what)"))) }
            shape = dims.isEmpty ? nil : dims
        case .v1:
            let dims = try cursor.shape(what)
            shape = dims?.isEmpty == true ? nil : dims
        case .v2, .v3:
            storage = try cursor.int32("the storage type of \(what)")
            guard (0...2).contains(storage) else { throw cursor.failure("\(what) has an unknown storage type \(storage)") }
            if storage != 0 {
                guard let dims = try cursor.shape("the storage shape of \(what)") else {
                    throw cursor.failure("\(what) has an unknown storage shape")
                }
                storageShape = dims
            }
            let dims = try cursor.shape(what)
            // Without np-shape semantics (V2) ndim 0 means "no shape"; with them (V3) it is a scalar.
            shape = version == .v2 && dims?.isEmpty == true ? nil : dims
        }
        guard let shape else { return .none(version) }
        _ = try cursor.int32("the context of \(what)")
        _ = try cursor.int32("the context of \(what)")
        let flag = try cursor.int32("the dtype of \(what)")
        guard let dtype = DType(rawValue: flag) else {
            throw cursor.failure("\(what) has an unsupported dtype flag \(flag)\(flag == 11 ? " (uint64)" : "")")
        }
        if let storageShape {
            // Skip a sparse array whole, so that the error can name it once the names are read.
            let auxCount = storage == 1 ? 1 : 2
            var auxBytes: [Int] = []
            for aux in 0..<auxCount {
                let auxFlag = try cursor.int32("aux type \(aux) of \(what)")
                guard let auxType = DType(rawValue: auxFlag) else { throw cursor.failure("\(what) has an unsupported aux dtype flag \(auxFlag)") }
                guard let auxShape = try cursor.shape("aux shape \(aux) of \(what)") else { throw cursor.failure("\(what) has an unknown aux shape") }
                auxBytes.append(try cursor.byteCount(auxShape, auxType.size, "aux \(aux) of \(what)").bytes)
            }
            _ = try cursor.take(try cursor.byteCount(storageShape, dtype.size, what).bytes, "the values of \(what)")
            for (aux, count) in auxBytes.enumerated() { _ = try cursor.take(count, "aux data \(aux) of \(what)") }
            return .sparse(version, storage)
        }
        let (count, byteCount) = try cursor.byteCount(shape, dtype.size, what)
        let raw = try cursor.take(byteCount, "the \(shape) \(dtype.name) values of \(what)")
        return .dense(version, dtype, StateTensor(shape: shape, storage: values(raw, dtype, count)))
    }

    /// Little-endian values of `dtype` as Float32 (floating types) or Int64 (integer and bool types).
    private static func values(_ raw: UnsafeRawBufferPointer, _ dtype: DType, _ count: Int) -> StateStorage {
        func floats(_ value: (Int) -> Float) -> StateStorage { .float32((0..<count).map(value)) }
        func integers(_ value: (Int) -> Int64) -> StateStorage { .int64((0..<count).map(value)) }
        func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T { T(littleEndian: raw.loadUnaligned(fromByteOffset: i * T.bitWidth / 8, as: T.self)) }
        switch dtype {
        case .float32:
            if 1.littleEndian == 1 {
                return .float32([Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                    initialized = count
                })
            }
            return floats { Float(bitPattern: load($0, UInt32.self)) }
        case .float64: return floats { Float(Double(bitPattern: load($0, UInt64.self))) }
        case .float16: return floats { TensorMaterializer.float(half: load($0, UInt16.self)) }
        case .bfloat16: return floats { Float(bitPattern: UInt32(load($0, UInt16.self)) << 16) }
        case .uint8, .bool: return integers { Int64(raw[$0]) }
        case .int8: return integers { Int64(Int8(bitPattern: raw[$0])) }
        case .int16: return integers { Int64(load($0, Int16.self)) }
        case .uint16: return integers { Int64(load($0, UInt16.self)) }
        case .int32: return integers { Int64(load($0, Int32.self)) }
        case .uint32: return integers { Int64(load($0, UInt32.self)) }
        case .int64: return integers { load($0, Int64.self) }
        }
    }
}
