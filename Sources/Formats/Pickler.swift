import Foundation

/// Writes pickle protocol 2, the protocol `torch.save` uses, restricted to the opcodes that PyTorch's
/// `weights_only=True` unpickler (the default of `torch.load` since PyTorch 2.6) accepts: PROTO, GLOBAL, MARK,
/// EMPTY_TUPLE, TUPLE, TUPLE1–3, EMPTY_DICT, SETITEM, SETITEMS, REDUCE, BINPERSID, BININT, BININT1, BININT2,
/// LONG1, BINUNICODE, NEWFALSE, NEWTRUE and STOP. Nothing is memoised (no BINPUT/BINGET): every object is
/// written once, which is all a state dict needs.
///
/// The caller drives a stack machine, exactly as the unpickler will replay it: push the values, then the opcode
/// that combines them (`global` + arguments + `reduce()` is a call).
struct Pickler {
    private(set) var bytes: [UInt8]

    /// A pickle of `protocol` (2 for PyTorch's checkpoints, 3 for numpy's `np.save` of objects).
    init(protocol: UInt8 = 2) { bytes = [PickleOpcode.PROTO.rawValue, `protocol`] }

    private mutating func emit(_ opcode: PickleOpcode) { bytes.append(opcode.rawValue) }

    private mutating func emitUInt32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A class or function, by module and name (`collections`, `OrderedDict`): GLOBAL's text operands.
    mutating func global(_ module: String, _ name: String) {
        precondition(!module.contains("\n") && !name.contains("\n"), "a GLOBAL name cannot contain a newline")
        emit(.GLOBAL)
        bytes.append(contentsOf: Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A])
    }

    /// A `str`, as BINUNICODE (UTF-8 with a 32-bit length; the short forms are not accepted by `weights_only`).
    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        precondition(utf8.count <= Int(UInt32.max), "a string of \(utf8.count) bytes is too long for BINUNICODE")
        emit(.BINUNICODE)
        emitUInt32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// An `int`: the shortest of BININT1, BININT2, BININT and LONG1, as CPython's pickler chooses.
    mutating func integer(_ value: Int64) {
        switch value {
        case 0...0xFF:
            emit(.BININT1)
            bytes.append(UInt8(value))
        case 0...0xFFFF:
            emit(.BININT2)
            withUnsafeBytes(of: UInt16(value).littleEndian) { bytes.append(contentsOf: $0) }
        case Int64(Int32.min)...Int64(Int32.max):
            emit(.BININT)
            emitUInt32(UInt32(bitPattern: Int32(value)))
        default:
            emit(.LONG1)
            let operand = Self.longOperand(value)
            bytes.append(UInt8(operand.count))
            bytes.append(contentsOf: operand)
        }
    }

    /// LONG1's operand: little-endian two's complement, without the redundant sign bytes (CPython's `encode_long`).
    static func longOperand(_ value: Int64) -> [UInt8] {
        guard value != 0 else { return [] }
        var result = withUnsafeBytes(of: value.littleEndian) { Array($0) }
        // Drop a top byte while the byte below it already carries the same sign.
        while result.count > 1 {
            let top = result[result.count - 1], below = result[result.count - 2]
            guard (top == 0x00 && below & 0x80 == 0) || (top == 0xFF && below & 0x80 != 0) else { break }
            result.removeLast()
        }
        return result
    }

    mutating func bool(_ value: Bool) { emit(value ? .NEWTRUE : .NEWFALSE) }
    mutating func none() { emit(.NONE) }

    /// A `bytes` object, as BINBYTES (protocol 3).
    mutating func binaryBytes(_ data: UnsafeRawBufferPointer) {
        precondition(data.count <= Int(UInt32.max), "\(data.count) bytes are too many for BINBYTES")
        emit(.BINBYTES)
        emitUInt32(UInt32(data.count))
        bytes.append(contentsOf: data)
    }

    /// A tuple of integers (a tensor's size or stride).
    mutating func tuple(_ values: [Int]) {
        if values.count > 3 { mark() }
        for value in values { integer(Int64(value)) }
        endTuple(count: values.count)
    }

    /// Closes a tuple of the last `count` values; for more than three, `mark()` must have come before them.
    mutating func endTuple(count: Int) {
        switch count {
        case 0: emit(.EMPTY_TUPLE)
        case 1: emit(.TUPLE1)
        case 2: emit(.TUPLE2)
        case 3: emit(.TUPLE3)
        default: emit(.TUPLE)
        }
    }

    mutating func mark() { emit(.MARK) }
    mutating func emptyList() { emit(.EMPTY_LIST) }
    /// Appends the value on top to the list below it.
    mutating func append() { emit(.APPEND) }
    /// Sets the state (on top) of the object below it (`__setstate__`).
    mutating func build() { emit(.BUILD) }
    mutating func emptyDict() { emit(.EMPTY_DICT) }
    /// Calls the callable below the argument tuple on top of the stack.
    mutating func reduce() { emit(.REDUCE) }
    /// Sets one key/value pair (the two values on top) in the dict below them.
    mutating func setItem() { emit(.SETITEM) }
    /// Sets the key/value pairs pushed since the last `mark()` in the dict below the mark.
    mutating func setItems() { emit(.SETITEMS) }
    /// Replaces the value on top (a persistent id) with what the loader's `persistent_load` makes of it.
    mutating func persistentID() { emit(.BINPERSID) }

    /// Ends the pickle; the bytes are complete after this.
    mutating func stop() { emit(.STOP) }
}

// MARK: - PyTorch's vocabulary

extension Pickler {
    /// An empty `collections.OrderedDict()`, as `torch.save` writes one (REDUCE of the class with no arguments).
    mutating func orderedDict() {
        global("collections", "OrderedDict")
        endTuple(count: 0)
        reduce()
    }

    /// A contiguous tensor over a whole storage: `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
    /// OrderedDict())`, where the storage is the persistent id `('storage', torch.<storageType>, key, 'cpu', numel)`
    /// that `torch.load` resolves to the archive member `data/<key>`.
    mutating func tensor(storageType: String, key: String, shape: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark()
        string("storage")
        global("torch", storageType)
        string(key)
        string("cpu")
        integer(Int64(shape.reduce(1, *)))
        endTuple(count: 5)
        persistentID()
        integer(0)
        tuple(shape)
        tuple(Self.contiguousStrides(shape))
        bool(false)  // requires_grad
        orderedDict()  // backward hooks
        endTuple(count: 6)
        reduce()
    }

    /// Row-major strides as PyTorch computes them: a dimension of size 0 counts as 1 (`torch.empty(2, 0, 3)` has
    /// strides (3, 3, 1)).
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for d in shape.indices.reversed() {
            strides[d] = step
            step *= max(shape[d], 1)
        }
        return strides
    }
}
