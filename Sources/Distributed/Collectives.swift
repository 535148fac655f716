import CMPI
import Foundation

/// Element types that MPI reduces and sends.
public protocol MPIScalar: Numeric, Sendable {
    static var mpiDatatype: MPI_Datatype { get }
}
extension Float: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_float() } }
extension Double: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_double() } }
extension Int64: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_int64() } }
extension Int32: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_int32() } }
extension UInt8: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_byte() } }

/// The reductions the project uses.
public enum ReduceOp {
    case sum, max, min
    var mpiOp: MPI_Op {
        switch self {
        case .sum: return cmpi_op_sum()
        case .max: return cmpi_op_max()
        case .min: return cmpi_op_min()
        }
    }
}

/// MPI counts are 32-bit; buffers longer than this are reduced in pieces.
private let maxCount = 1 << 30

extension Communicator {
    // MARK: allreduce

    /// Reduces `buffer` element-wise over all ranks, in place; every rank ends with the result.
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum) {
        guard let base = buffer.baseAddress, size > 1 else { return }
        var offset = 0
        while offset < buffer.count {
            let n = min(maxCount, buffer.count - offset)
            MPI_Allreduce(cmpi_in_place(), base + offset, Int32(n), T.mpiDatatype, op.mpiOp, handle)
            offset += n
        }
    }

    /// Reduces an array in place over all ranks.
    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp = .sum) {
        array.withUnsafeMutableBufferPointer { allreduce($0, op: op) }
    }

    /// Replaces every element by its mean over the ranks.
    public func allreduceMean<T: MPIScalar & FloatingPoint>(_ array: inout [T]) {
        allreduce(&array, op: .sum)
        let scale = T(size)
        for i in array.indices { array[i] /= scale }
    }

    /// Reduces one value over all ranks.
    public func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp = .sum) -> T {
        var a = [value]
        allreduce(&a, op: op)
        return a[0]
    }

    /// Starts a non-blocking in-place allreduce of `buffer` and returns at once.
    ///
    /// The caller keeps `buffer` alive and untouched until `wait()` on the returned handle; with `mean: true` the
    /// handle divides by the rank count when it completes. This is what the gradient reducer overlaps with backward.
    public func startAllreduce<T: MPIScalar & FloatingPoint>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum, mean: Bool = false
    ) -> PendingAllreduce<T> {
        var requests: [MPI_Request?] = []
        if let base = buffer.baseAddress, size > 1 {
            var offset = 0
            while offset < buffer.count {
                let n = min(maxCount, buffer.count - offset)
                var request: MPI_Request? = cmpi_request_null()
                MPI_Iallreduce(cmpi_in_place(), base + offset, Int32(n), T.mpiDatatype, op.mpiOp, handle, &request)
                requests.append(request)
                offset += n
            }
        }
        return PendingAllreduce(buffer: buffer, requests: requests, divisor: mean ? T(size) : nil)
    }

    // MARK: broadcast

    /// Sends `array` from `root` to every rank; other ranks' arrays are replaced (their length may differ).
    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int = 0) {
        guard size > 1 else { return }
        var count = Int64(array.count)
        MPI_Bcast(&count, 1, cmpi_int64(), Int32(root), handle)
        if rank != root { array = [T](repeating: 0, count: Int(count)) }
        array.withUnsafeMutableBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = min(maxCount, buffer.count - offset)
                MPI_Bcast(buffer.baseAddress! + offset, Int32(n), T.mpiDatatype, Int32(root), handle)
                offset += n
            }
        }
    }

    /// Sends a `Codable` value from `root` to every rank (JSON on the wire); every rank returns root's value.
    public func broadcast<V: Codable>(_ value: V, root: Int = 0) throws -> V {
        guard size > 1 else { return value }
        var bytes: [UInt8] = rank == root ? Array(try JSONEncoder().encode(value)) : []
        broadcast(&bytes, root: root)
        return try JSONDecoder().decode(V.self, from: Data(bytes))
    }

    // MARK: gather

    /// Collects one `Codable` value from every rank on rank 0, in rank order; other ranks get `nil`.
    public func gather<V: Codable>(_ value: V) throws -> [V]? {
        let mine = Array(try JSONEncoder().encode(value))
        guard size > 1 else { return [value] }
        var myCount = Int32(mine.count)
        var counts = [Int32](repeating: 0, count: size)
        MPI_Gather(&myCount, 1, cmpi_int32(), &counts, 1, cmpi_int32(), 0, handle)
        var displacements = [Int32](repeating: 0, count: size)
        var total = 0
        for r in 0..<size {
            displacements[r] = Int32(total)
            total += Int(counts[r])
        }
        precondition(total < Int(Int32.max), "gathered payload of \(total) bytes exceeds MPI's 2 GiB limit")
        var all = [UInt8](repeating: 0, count: isRoot ? max(total, 1) : 1)
        mine.withUnsafeBufferPointer { send in
            _ = MPI_Gatherv(send.baseAddress, myCount, cmpi_byte(), &all, &counts, &displacements, cmpi_byte(), 0, handle)
        }
        guard isRoot else { return nil }
        let decoder = JSONDecoder()
        return try (0..<size).map { r in
            let start = Int(displacements[r])
            return try decoder.decode(V.self, from: Data(all[start..<start + Int(counts[r])]))
        }
    }

    /// `gather` followed by a broadcast of the whole list: every rank gets every rank's value.
    public func allGather<V: Codable>(_ value: V) throws -> [V] {
        let gathered = try gather(value)
        return try broadcast(gathered ?? [], root: 0)
    }
}

/// A non-blocking allreduce in flight. `wait()` must be called exactly once before the buffer is used again.
public struct PendingAllreduce<T: MPIScalar & FloatingPoint> {
    let buffer: UnsafeMutableBufferPointer<T>
    var requests: [MPI_Request?]
    let divisor: T?
    /// Run once the reduction is complete (the half-precision mean decodes its wire buffer here).
    var completion: (() -> Void)? = nil

    /// Whether every piece has completed, without blocking (drives MPI's progress engine).
    public mutating func test() -> Bool {
        var done = true
        for i in requests.indices where requests[i] != cmpi_request_null() {
            var flag: Int32 = 0
            MPI_Test(&requests[i], &flag, cmpi_status_ignore())
            if flag == 0 { done = false }
        }
        return done
    }

    /// Blocks until the reduction is complete, then applies the mean if one was asked for.
    public mutating func wait() {
        for i in requests.indices {
            MPI_Wait(&requests[i], cmpi_status_ignore())
        }
        requests.removeAll()
        if let divisor {
            for i in buffer.indices { buffer[i] /= divisor }
        }
        completion?()
        completion = nil
    }
}
