import Foundation

/// The pickle opcodes, by byte value (names as in CPython's `pickletools`), so errors can name an opcode.
enum PickleOpcode: UInt8, CaseIterable {
    case MARK = 0x28, STOP = 0x2E, POP = 0x30, POP_MARK = 0x31, DUP = 0x32, FLOAT = 0x46, INT = 0x49, BININT = 0x4A
    case BININT1 = 0x4B, LONG = 0x4C, BININT2 = 0x4D, NONE = 0x4E, PERSID = 0x50, BINPERSID = 0x51, REDUCE = 0x52
    case STRING = 0x53, BINSTRING = 0x54, SHORT_BINSTRING = 0x55, UNICODE = 0x56, BINUNICODE = 0x58, APPEND = 0x61
    case BUILD = 0x62, GLOBAL = 0x63, DICT = 0x64, EMPTY_DICT = 0x7D, APPENDS = 0x65, GET = 0x67, BINGET = 0x68
    case INST = 0x69, LONG_BINGET = 0x6A, LIST = 0x6C, EMPTY_LIST = 0x5D, OBJ = 0x6F, PUT = 0x70, BINPUT = 0x71
    case LONG_BINPUT = 0x72, SETITEM = 0x73, TUPLE = 0x74, EMPTY_TUPLE = 0x29, SETITEMS = 0x75, BINFLOAT = 0x47
    case PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85, TUPLE2 = 0x86
    case TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8A, LONG4 = 0x8B, BINBYTES = 0x42
    case SHORT_BINBYTES = 0x43, SHORT_BINUNICODE = 0x8C, BINUNICODE8 = 0x8D, BINBYTES8 = 0x8E, EMPTY_SET = 0x8F
    case ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95
    case BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98

    /// "0x69 (INST)", or "0x.. (not a pickle opcode)".
    static func describe(_ byte: UInt8) -> String {
        let hex = "0x" + String(byte, radix: 16, uppercase: false).leftPadded(to: 2)
        return "\(hex) (\(PickleOpcode(rawValue: byte).map { "\($0)" } ?? "not a pickle opcode"))"
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// A Python list under construction: a reference, because the memo and the stack share it while APPENDs fill it.
final class PickleList {
    var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A Python dict under construction, in insertion order; a reference for the same reason as `PickleList`.
final class PickleDict {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringKeyIndex: [String: Int] = [:]

    /// Python semantics: assigning an existing (string) key replaces the value in place.
    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let name) = key {
            if let i = stringKeyIndex[name] {
                entries[i].value = value
                return
            }
            stringKeyIndex[name] = entries.count
        }
        entries.append((key, value))
    }
}

/// An instance of a class the reader does not model (e.g. `argparse.Namespace` in a training checkpoint).
final class PickleInstance {
    let type: String
    let arguments: [PickleValue]
    var state: PickleValue?
    init(type: String, arguments: [PickleValue]) {
        self.type = type
        self.arguments = arguments
    }
}

/// A value on the unpickler's stack. Tensors and storages stay as recipes until the storage bytes are known
/// (in the legacy format they follow the pickle).
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer too large for Int64, as little-endian two's-complement bytes (e.g. the legacy magic number).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list(PickleList)
    case tuple([PickleValue])
    case dict(PickleDict)
    /// A class or function reference from GLOBAL / STACK_GLOBAL, "module.name".
    case global(String)
    case instance(PickleInstance)
    case storage(StorageRecipe)
    case tensor(TensorRecipe)
}

/// A pickle virtual machine for the subset of the pickle protocol (0–5 framing, opcodes of protocols 2 and 4)
/// that `torch.save` emits, with hooks for PyTorch's persistent storage ids and rebuild functions.
///
/// Supported: PROTO, FRAME (frames are only read-ahead hints, so they are skipped), STOP, MARK, POP, POP_MARK, DUP,
/// NONE, NEWTRUE, NEWFALSE, BININT, BININT1, BININT2, LONG1, LONG4, BINFLOAT, BINUNICODE, SHORT_BINUNICODE,
/// BINUNICODE8, BINSTRING, SHORT_BINSTRING, BINBYTES, SHORT_BINBYTES, BINBYTES8, EMPTY_TUPLE, TUPLE, TUPLE1–3,
/// EMPTY_LIST, LIST, APPEND, APPENDS, EMPTY_DICT, DICT, SETITEM, SETITEMS, EMPTY_SET, ADDITEMS, FROZENSET (sets
/// become lists), BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET, GLOBAL, STACK_GLOBAL, REDUCE, BUILD, NEWOBJ,
/// NEWOBJ_EX and BINPERSID. Text-protocol (0/1) opcodes such as INST, OBJ, INT and PUT, the extension registry
/// (EXT1/2/4) and out-of-band buffers are refused with an error naming the opcode: `torch.save` never writes them,
/// and a checkpoint is data, so nothing here ever runs code — a callable is only ever matched by name.
struct Unpickler {
    /// Turns a persistent id (the tuple PyTorch writes for a storage) into a value.
    typealias PersistentLoad = (_ id: PickleValue) throws -> PickleValue
    /// Applies a named callable to arguments; nil leaves the call as a generic `PickleInstance`.
    typealias Reduce = (_ callable: String, _ arguments: [PickleValue]) throws -> PickleValue?

    private var input: ByteCursor
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private let persistentLoad: PersistentLoad
    private let reduce: Reduce

    /// An unpickler reading from `bytes` at `position`; `source` names the file in errors.
    init(bytes: UnsafeRawBufferPointer, position: Int = 0, source: String,
         persistentLoad: @escaping PersistentLoad, reduce: @escaping Reduce) {
        self.input = ByteCursor(bytes: bytes, source: source, position: position)
        self.persistentLoad = persistentLoad
        self.reduce = reduce
    }

    /// Where the next pickle starts once `load()` has returned (the legacy format concatenates several).
    var position: Int { input.position }

    private func failure(_ what: String) -> CheckpointError { input.failure(what) }

    /// Runs the machine up to STOP and returns the pickled object.
    mutating func load() throws -> PickleValue {
        stack.removeAll()
        marks.removeAll()
        memo.removeAll()
        while true {
            let at = input.position
            let byte: UInt8
            do { byte = try input.uint8() } catch { throw failure("truncated: the pickle ends at offset \(at) before its STOP opcode") }
            guard let opcode = PickleOpcode(rawValue: byte) else {
                throw failure("unsupported pickle opcode \(PickleOpcode.describe(byte)) at offset \(at)")
            }
            if opcode == .STOP { return try pop() }
            do {
                try execute(opcode)
            } catch let error as CheckpointError where error.what.hasPrefix("truncated") {
                throw failure("truncated: the pickle ends inside \(opcode) at offset \(at)")
            }
        }
    }

    private mutating func execute(_ opcode: PickleOpcode) throws {
        switch opcode {
        case .PROTO:
            let version = try input.uint8()
            guard version <= 5 else { throw failure("unsupported pickle protocol \(version)") }
        case .FRAME: _ = try input.uint64()
        case .MARK: marks.append(stack.count)
        case .POP: _ = try pop()
        case .POP_MARK: _ = try popMark()
        case .DUP: stack.append(try top())
        case .NONE: stack.append(.none)
        case .NEWTRUE: stack.append(.bool(true))
        case .NEWFALSE: stack.append(.bool(false))
        case .BININT: stack.append(.int(Int64(Int32(bitPattern: try input.uint32()))))
        case .BININT1: stack.append(.int(Int64(try input.uint8())))
        case .BININT2: stack.append(.int(Int64(try input.uint16())))
        case .LONG1: stack.append(Self.integer(littleEndian: Array(try input.slice(Int(try input.uint8())))))
        case .LONG4: stack.append(Self.integer(littleEndian: Array(try input.slice(try length(UInt64(try input.uint32()))))))
        case .BINFLOAT:
            // The one big-endian field in the pickle format.
            stack.append(.float(Double(bitPattern: UInt64(bigEndian: try input.slice(8).loadUnaligned(as: UInt64.self)))))
        case .BINUNICODE, .BINSTRING: stack.append(.string(try input.string(count: try length(UInt64(try input.uint32())))))
        case .SHORT_BINUNICODE, .SHORT_BINSTRING: stack.append(.string(try input.string(count: Int(try input.uint8()))))
        case .BINUNICODE8: stack.append(.string(try input.string(count: try length(try input.uint64()))))
        case .BINBYTES: stack.append(.bytes(Array(try input.slice(try length(UInt64(try input.uint32()))))))
        case .SHORT_BINBYTES: stack.append(.bytes(Array(try input.slice(Int(try input.uint8())))))
        case .BINBYTES8: stack.append(.bytes(Array(try input.slice(try length(try input.uint64())))))
        case .EMPTY_TUPLE: stack.append(.tuple([]))
        case .TUPLE: stack.append(.tuple(try popMark()))
        case .TUPLE1: stack.append(.tuple(try pop(1)))
        case .TUPLE2: stack.append(.tuple(try pop(2)))
        case .TUPLE3: stack.append(.tuple(try pop(3)))
        case .EMPTY_LIST: stack.append(.list(PickleList()))
        case .LIST: stack.append(.list(PickleList(try popMark())))
        case .APPEND:
            let item = try pop()
            try list(try top()).items.append(item)
        case .APPENDS, .ADDITEMS:
            let items = try popMark()
            try list(try top()).items.append(contentsOf: items)
        case .EMPTY_SET: stack.append(.list(PickleList()))
        case .FROZENSET: stack.append(.list(PickleList(try popMark())))
        case .EMPTY_DICT: stack.append(.dict(PickleDict()))
        case .DICT:
            let dict = PickleDict()
            try setItems(dict, try popMark())
            stack.append(.dict(dict))
        case .SETITEM:
            let items = try pop(2)
            try setItems(try dictionary(try top()), items)
        case .SETITEMS:
            let items = try popMark()
            try setItems(try dictionary(try top()), items)
        case .BINPUT: memo[Int(try input.uint8())] = try top()
        case .LONG_BINPUT: memo[Int(try input.uint32())] = try top()
        case .MEMOIZE: memo[memo.count] = try top()
        case .BINGET: stack.append(try memoized(Int(try input.uint8())))
        case .LONG_BINGET: stack.append(try memoized(Int(try input.uint32())))
        case .GLOBAL:
            let module = try line(), name = try line()
            stack.append(.global("\(module).\(name)"))
        case .STACK_GLOBAL:
            let parts = try pop(2)
            guard case .string(let module) = parts[0], case .string(let name) = parts[1] else {
                throw failure("STACK_GLOBAL expects two strings")
            }
            stack.append(.global("\(module).\(name)"))
        case .REDUCE, .NEWOBJ:
            let arguments = try pop()
            let callable = try pop()
            stack.append(try call(callable, arguments))
        case .NEWOBJ_EX:
            let parts = try pop(3)  // class, args, kwargs (keyword arguments are not modelled)
            stack.append(try call(parts[0], parts[1]))
        case .BUILD:
            let state = try pop()
            // Dicts (OrderedDict `_metadata`) and tensors (parameter state) ignore their state; other objects keep it.
            if case .instance(let object) = try top() { object.state = state }
        case .BINPERSID:
            stack.append(try persistentLoad(try pop()))
        default:
            throw failure("unsupported pickle opcode \(PickleOpcode.describe(opcode.rawValue)) at offset \(input.position - 1)")
        }
    }

    // MARK: calls

    private func call(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
        guard case .global(let name) = callable else { throw failure("REDUCE of a value that is not a class or function") }
        guard case .tuple(let args) = arguments else { throw failure("REDUCE of \(name) without an argument tuple") }
        if let value = try reduce(name, args) { return value }
        switch name {
        case "collections.OrderedDict", "builtins.dict":
            let dict = PickleDict()
            if case .list(let pairs)? = args.first {
                for case .tuple(let pair) in pairs.items where pair.count == 2 { dict.set(pair[0], pair[1]) }
            }
            return .dict(dict)
        case "builtins.set", "builtins.frozenset", "builtins.list":
            if case .list(let items)? = args.first { return .list(PickleList(items.items)) }
            return .list(PickleList())
        case "torch.Size", "builtins.tuple":
            if case .tuple(let items)? = args.first { return .tuple(items) }
            if case .list(let items)? = args.first { return .tuple(items.items) }
        case "_codecs.encode":
            // Protocol 2 has no bytes opcodes; Python 3 pickles `bytes` as _codecs.encode(text, "latin1").
            if case .string(let text)? = args.first {
                return .bytes(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
            }
        default: break
        }
        return .instance(PickleInstance(type: name, arguments: args))
    }

    // MARK: stack helpers

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else { throw failure("corrupt pickle: stack underflow") }
        return value
    }

    private mutating func pop(_ count: Int) throws -> [PickleValue] {
        guard stack.count - count >= (marks.last ?? 0) else { throw failure("corrupt pickle: stack underflow") }
        defer { stack.removeLast(count) }
        return Array(stack.suffix(count))
    }

    private func top() throws -> PickleValue {
        guard let value = stack.last, stack.count > (marks.last ?? 0) else { throw failure("corrupt pickle: empty stack") }
        return value
    }

    /// Pops everything above the most recent MARK, and the mark.
    private mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw failure("corrupt pickle: no MARK") }
        defer { stack.removeLast(stack.count - mark) }
        return Array(stack[mark...])
    }

    private func memoized(_ index: Int) throws -> PickleValue {
        guard let value = memo[index] else { throw failure("corrupt pickle: memo entry \(index) is missing") }
        return value
    }

    private func list(_ value: PickleValue) throws -> PickleList {
        guard case .list(let list) = value else { throw failure("corrupt pickle: APPEND to something that is not a list") }
        return list
    }

    private func dictionary(_ value: PickleValue) throws -> PickleDict {
        guard case .dict(let dict) = value else { throw failure("corrupt pickle: SETITEM on something that is not a dict") }
        return dict
    }

    private func setItems(_ dict: PickleDict, _ flat: [PickleValue]) throws {
        guard flat.count % 2 == 0 else { throw failure("corrupt pickle: odd number of dict items") }
        for i in stride(from: 0, to: flat.count, by: 2) { dict.set(flat[i], flat[i + 1]) }
    }

    /// A length field, checked against what is left of the input before anything is allocated for it.
    private func length(_ value: UInt64) throws -> Int {
        guard value <= UInt64(input.bytes.count - input.position) else {
            throw failure("truncated: a \(value)-byte field at offset \(input.position) runs past the end of the file")
        }
        return Int(value)
    }

    /// A newline-terminated ASCII line (GLOBAL's operands).
    private mutating func line() throws -> String {
        var scalars: [UInt8] = []
        while true {
            let byte = try input.uint8()
            if byte == 0x0A { return String(decoding: scalars, as: UTF8.self) }
            guard scalars.count < 4096 else { throw failure("corrupt pickle: GLOBAL name is too long") }
            scalars.append(byte)
        }
    }

    /// LONG1/LONG4 operands: little-endian two's complement of any length.
    static func integer(littleEndian bytes: [UInt8]) -> PickleValue {
        guard bytes.count <= 8 else { return .bigInt(bytes) }
        guard let last = bytes.last else { return .int(0) }
        var value: UInt64 = last & 0x80 != 0 ? .max : 0  // sign extension
        for (i, byte) in bytes.enumerated() {
            value &= ~(UInt64(0xFF) << (8 * UInt64(i)))
            value |= UInt64(byte) << (8 * UInt64(i))
        }
        return .int(Int64(bitPattern: value))
    }
}

// MARK: PyTorch storage and tensor references, as the unpickler records them

/// Where a storage's bytes are and what they hold.
struct StorageRecipe {
    var key: String
    /// nil for an untyped (byte) storage.
    var dtype: TorchDType?
    /// Start of a legacy storage view within its root storage, in elements.
    var elementOffset: Int
}

/// A tensor as PyTorch describes it: a strided view of a storage.
struct TensorRecipe {
    var storage: StorageRecipe
    var dtype: TorchDType
    /// In elements, from the start of the storage (view).
    var offset: Int
    var size: [Int]
    var stride: [Int]
}

/// The element types a PyTorch storage can hold that this reader converts.
enum TorchDType {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// From a typed-storage class such as `torch.FloatStorage`.
    init?(storageType: String) {
        let table: [String: TorchDType] = [
            "torch.FloatStorage": .float32, "torch.HalfStorage": .float16, "torch.BFloat16Storage": .bfloat16,
            "torch.DoubleStorage": .float64, "torch.LongStorage": .int64, "torch.IntStorage": .int32,
            "torch.ShortStorage": .int16, "torch.CharStorage": .int8, "torch.ByteStorage": .uint8, "torch.BoolStorage": .bool,
        ]
        guard let dtype = table[storageType] else { return nil }
        self = dtype
    }

    /// From a dtype object such as `torch.float32` (used by `_rebuild_tensor_v3`).
    init?(dtypeName: String) {
        let table: [String: TorchDType] = [
            "torch.float32": .float32, "torch.float": .float32, "torch.float16": .float16, "torch.half": .float16,
            "torch.bfloat16": .bfloat16, "torch.float64": .float64, "torch.double": .float64, "torch.int64": .int64,
            "torch.long": .int64, "torch.int32": .int32, "torch.int": .int32, "torch.int16": .int16, "torch.short": .int16,
            "torch.int8": .int8, "torch.uint8": .uint8, "torch.bool": .bool,
        ]
        guard let dtype = table[dtypeName] else { return nil }
        self = dtype
    }
}
