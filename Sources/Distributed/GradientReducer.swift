import Foundation
import NN

/// Averages gradients over the ranks while backward is still running, as PyTorch's DDP reducer does.
///
/// Design (the note the training loop points to):
/// - Parameters are grouped into buckets of about `bucketBytes`, in reverse order of registration, because
///   backward produces gradients roughly in reverse order of the forward pass.
/// - A parameter is ready when every backward closure recorded for it has delivered its gradient
///   (`GradSlot.pendingUses`, counted as the forward pass records ops). When the last parameter of a bucket is
///   ready, the bucket's gradients are packed into one buffer and a non-blocking allreduce (mean) starts at once;
///   later buckets drive MPI's progress with `MPI_Test` as they fill.
/// - `finish()` starts whatever did not become ready (a parameter whose use count could not be known, e.g. a
///   frozen BatchNorm's), waits for every bucket and unpacks the means into each parameter's `.grad`.
/// - A parameter with no gradient on this rank contributes zeros and keeps `grad = nil` (every rank runs the same
///   graph, so all ranks agree), which keeps AdamW from decaying it (spec §12.3).
public final class GradientReducer {
    final class Bucket {
        let parameters: [Tensor]
        let offsets: [Int]
        /// Packed gradients; raw memory because MPI reads and writes it after the call that starts the reduction.
        let buffer: UnsafeMutableBufferPointer<Float>
        var ready = 0
        var pending: PendingAllreduce<Float>?
        var started = false

        init(_ parameters: [Tensor]) {
            self.parameters = parameters
            var offsets: [Int] = []
            var total = 0
            for p in parameters {
                offsets.append(total)
                total += p.elementCount
            }
            self.offsets = offsets
            buffer = .allocate(capacity: max(total, 1))
        }

        deinit { buffer.deallocate() }
    }

    public let world: Communicator
    let buckets: [Bucket]
    /// Buckets whose allreduce started before backward ended (overlapped with computation), last step.
    public private(set) var overlappedBuckets = 0
    /// Seconds `finish()` spent waiting for communication that backward did not hide, last step.
    public private(set) var exposedSeconds = 0.0

    public init(parameters: [Tensor], world: Communicator, bucketBytes: Int = 25 << 20) {
        self.world = world
        var buckets: [Bucket] = []
        var current: [Tensor] = []
        var bytes = 0
        for p in parameters.reversed() {
            current.append(p)
            bytes += 4 * p.elementCount
            if bytes >= bucketBytes {
                buckets.append(Bucket(current))
                current = []
                bytes = 0
            }
        }
        if !current.isEmpty { buckets.append(Bucket(current)) }
        self.buckets = buckets
        for bucket in buckets {
            for p in bucket.parameters {
                p.slot.onGradientReady = { [unowned self, unowned bucket] in self.parameterReady(in: bucket) }
            }
        }
    }

    public var bucketCount: Int { buckets.count }

    /// Call before each forward pass: clears the readiness counts of the previous step.
    public func prepareForStep() {
        for bucket in buckets {
            bucket.ready = 0
            bucket.started = false
            for p in bucket.parameters { p.slot.pendingUses = 0 }
        }
        overlappedBuckets = 0
    }

    private func parameterReady(in bucket: Bucket) {
        bucket.ready += 1
        if bucket.ready == bucket.parameters.count {
            start(bucket)
            overlappedBuckets += 1
        }
        // Non-blocking collectives progress only inside MPI calls: poke the ones in flight.
        for b in buckets where b.started { _ = b.pending?.test() }
    }

    private func start(_ bucket: Bucket) {
        guard !bucket.started else { return }
        bucket.started = true
        for (p, offset) in zip(bucket.parameters, bucket.offsets) {
            let destination = bucket.buffer.baseAddress! + offset
            if let g = p.grad?.plain() {
                destination.update(from: g.storage.floats, count: p.elementCount)
            } else {
                destination.update(repeating: 0, count: p.elementCount)
            }
        }
        bucket.pending = world.startAllreduce(bucket.buffer, mean: true)
    }

    /// Completes the reduction: every parameter that has a gradient now holds the mean over all ranks.
    public func finish() {
        let start = DispatchTime.now().uptimeNanoseconds
        for bucket in buckets where !bucket.started { self.start(bucket) }
        for bucket in buckets {
            bucket.pending?.wait()
            bucket.pending = nil
            for (p, offset) in zip(bucket.parameters, bucket.offsets) where p.grad != nil {
                let mean = Tensor(shape: p.shape)
                mean.storage.floats.update(from: bucket.buffer.baseAddress! + offset, count: p.elementCount)
                p.grad = mean
            }
        }
        exposedSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Whether every rank holds bit-identical parameters (a checksum compared across ranks): `--check-sync`.
    public func parametersInSync() -> Bool {
        var sum = 0.0, weighted = 0.0
        var index = 0.0
        for bucket in buckets {
            for p in bucket.parameters {
                let values = p.plain().storage.floats
                for i in 0..<p.elementCount {
                    index += 1
                    sum += Double(values[i])
                    weighted += Double(values[i]) * index.truncatingRemainder(dividingBy: 1009)
                }
            }
        }
        let checksum = [sum, weighted]
        var low = checksum, high = checksum
        world.allreduce(&low, op: .min)
        world.allreduce(&high, op: .max)
        return low == high
    }
}
