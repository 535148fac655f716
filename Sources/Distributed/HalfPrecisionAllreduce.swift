import CHalf
import CMPI

/// How the gradient reducer sends gradients (`--grad-compression`).
///
/// `fp16` halves the bytes on the wire for slow links, as PyTorch DDP's `fp16_compress_hook`: each rank divides its
/// gradients by the rank count, rounds them to IEEE half precision and the ranks sum those; every partial sum is
/// formed in float32 and rounded back to half once per reduction step; the mean comes back as float32, and the
/// optimiser, its state and the parameters stay float32. The price: about 3 significant digits per gradient, and
/// values below 6e-8 (after the division) flush to zero or above 65,504 become infinite (the loop's finite-state
/// check then stops the run naming the tensor).
public enum GradientCompression: String, CaseIterable, Codable, Sendable {
    case none, fp16
}

extension Communicator {
    /// Starts a non-blocking mean of `values` over the ranks with half precision on the wire (see
    /// `GradientCompression.fp16`); `wire` (one element per value) is the caller's to keep alive until `wait()`,
    /// which writes the mean back into `values`.
    public func startHalfPrecisionMean(_ values: UnsafeMutableBufferPointer<Float>, wire: UnsafeMutableBufferPointer<UInt16>) -> PendingAllreduce<Float> {
        precondition(wire.count >= values.count, "startHalfPrecisionMean: wire holds \(wire.count) halves for \(values.count) values")
        guard size > 1, values.count > 0 else { return PendingAllreduce(buffer: values, requests: [], divisor: nil) }
        chalf_encode(values.baseAddress!, wire.baseAddress!, values.count, 1 / Float(size))
        var requests: [MPI_Request?] = []
        var offset = 0
        while offset < values.count {
            let n = min(1 << 30, values.count - offset)
            var request: MPI_Request? = cmpi_request_null()
            MPI_Iallreduce(cmpi_in_place(), wire.baseAddress! + offset, Int32(n), cmpi_uint16(), halfPrecisionSum, handle, &request)
            requests.append(request)
            offset += n
        }
        return PendingAllreduce(buffer: values, requests: requests, divisor: nil) {
            chalf_decode(wire.baseAddress!, values.baseAddress!, values.count)
        }
    }
}

/// MPI's sum for half-precision bit patterns: each pair added in float32 and rounded once. Created on first use
/// (after MPI_Init) and kept for the process's life.
private let halfPrecisionSum: MPI_Op? = {
    var op: MPI_Op? = nil
    MPI_Op_create({ input, accumulated, count, _ in
        guard let input, let accumulated, let count else { return }
        chalf_sum(input.assumingMemoryBound(to: UInt16.self), accumulated.assumingMemoryBound(to: UInt16.self), Int(count.pointee))
    }, 1, &op)
    return op
}()
