import Formats
import Foundation
import NN

/// Averages gradients over the ranks while backward is still running, as PyTorch's DDP reducer does.
///
/// Design (the note the training loop points to):
/// - Only trainable parameters are registered (a frozen one gets no gradient, no bucket and no optimiser state).
///   They are grouped into buckets of about `bucketBytes`, in reverse order of registration, because backward
///   produces gradients roughly in reverse order of the forward pass.
/// - A parameter is ready when every backward closure recorded for it has delivered its gradient
///   (`GradSlot.pendingUses`, counted as the forward pass records ops). A parameter the forward pass did not use
///   at all is ready as soon as backward starts (`backwardWillStart`), and when the loss has no graph (a batch
///   whose every pixel is ignored) every parameter is.
/// - **Buckets are launched in one fixed order on every rank**: bucket i's non-blocking allreduce starts only
///   when it is full *and* buckets 0..<i have started. MPI requires every rank to issue collectives on a
///   communicator in the same order; readiness order can differ between ranks (different graphs, an empty batch),
///   index order cannot. Later buckets drive MPI's progress with `MPI_Test` as they fill.
/// - Each bucket carries one flag per parameter beside the gradients: 1 where this rank has a gradient. After the
///   reduction a parameter gets the mean gradient if any rank had one, and `grad = nil` if none had (so the
///   optimiser neither moves nor decays it, spec §12.3); every rank decides alike, so every rank takes the same
///   optimiser step. A rank without a gradient contributes zeros, as DDP's.
/// - With gradient accumulation the reducer sits out all micro-batches but the last (`prepareForStep(sync:
///   false)`, DDP's `no_sync`): gradients add up locally and are reduced once per update.
/// - With `compression: .fp16` a bucket travels as half-precision means (`GradientCompression`): half the bytes
///   for slow links; a flag stays above zero exactly where some rank had a gradient.
/// - `finish()` starts whatever has not started (in order), waits for every bucket and unpacks the means.
public final class GradientReducer {
    final class Bucket {
        let parameters: [Tensor]
        let offsets: [Int]
        /// Packed gradients, then one has-gradient flag per parameter; raw memory because MPI reads and writes it
        /// after the call that starts the reduction.
        let buffer: UnsafeMutableBufferPointer<Float>
        let flagsOffset: Int
        var ready = 0
        var pending: PendingAllreduce<Float>?
        /// The half-precision copy that travels instead of `buffer` with `--grad-compression fp16`.
        let wire: UnsafeMutableBufferPointer<UInt16>?
        var started = false
        /// The gradient tensors packed (to catch a gradient delivered after its bucket was sent).
        var packed: [Tensor?] = []

        init(_ parameters: [Tensor], compression: GradientCompression) {
            self.parameters = parameters
            var offsets: [Int] = []
            var total = 0
            for p in parameters {
                offsets.append(total)
                total += p.elementCount
            }
            self.offsets = offsets
            flagsOffset = total
            buffer = .allocate(capacity: total + parameters.count)
            wire = compression == .fp16 ? .allocate(capacity: total + parameters.count) : nil
        }

        var isFull: Bool { ready == parameters.count }

        deinit {
            buffer.deallocate()
            wire?.deallocate()
        }
    }

    public let world: Communicator
    let buckets: [Bucket]
    /// The next bucket to launch (all before it have started).
    private var nextBucket = 0
    private var syncing = true
    /// Buckets whose allreduce started before backward ended (overlapped with computation), last update.
    public private(set) var overlappedBuckets = 0
    /// Seconds `finish()` spent waiting for communication that backward did not hide, last update.
    public private(set) var exposedSeconds = 0.0

    /// How gradients travel (see `GradientCompression`).
    public let compression: GradientCompression

    public init(parameters: [Tensor], world: Communicator, bucketBytes: Int = 25 << 20, compression: GradientCompression = .none) {
        precondition(parameters.allSatisfy(\.requiresGrad), "GradientReducer: register trainable parameters only (frozen ones get no bucket)")
        self.world = world
        self.compression = compression
        var buckets: [Bucket] = []
        var current: [Tensor] = []
        var bytes = 0
        for p in parameters.reversed() {
            current.append(p)
            bytes += 4 * p.elementCount
            if bytes >= bucketBytes {
                buckets.append(Bucket(current, compression: compression))
                current = []
                bytes = 0
            }
        }
        if !current.isEmpty { buckets.append(Bucket(current, compression: compression)) }
        self.buckets = buckets
        for bucket in buckets {
            for p in bucket.parameters {
                p.slot.onGradientReady = { [unowned self, unowned bucket] in self.parameterReady(in: bucket) }
            }
        }
    }

    public var bucketCount: Int { buckets.count }
    /// Parameters registered (the trainable ones).
    public var parameterCount: Int { buckets.reduce(0) { $0 + $1.parameters.count } }

    /// Call before each forward pass. `sync`: whether this backward's gradients are reduced (false for all
    /// micro-batches of an accumulated update but the last).
    public func prepareForStep(sync: Bool = true) {
        syncing = sync
        nextBucket = 0
        for bucket in buckets {
            bucket.ready = 0
            bucket.started = false
            bucket.packed = []
            for p in bucket.parameters { p.slot.pendingUses = 0 }
        }
        overlappedBuckets = 0
    }

    /// Call between the forward pass and backward. Parameters the forward pass did not use get no gradient from
    /// this backward, so they are ready now; with `graph` false (the loss was computed without a graph, and no
    /// backward will run) every parameter is.
    public func backwardWillStart(graph: Bool) {
        guard syncing else { return }
        for bucket in buckets {
            for p in bucket.parameters where !graph || p.slot.pendingUses == 0 {
                p.slot.pendingUses = 0
                bucket.ready += 1
            }
        }
        launchReadyBuckets()
    }

    private func parameterReady(in bucket: Bucket) {
        guard syncing else { return }
        bucket.ready += 1
        if bucket.isFull { launchReadyBuckets() }
        // Non-blocking collectives progress only inside MPI calls: poke the ones in flight.
        for b in buckets where b.started { _ = b.pending?.test() }
    }

    /// Starts the full buckets at the head of the fixed order.
    private func launchReadyBuckets() {
        while nextBucket < buckets.count, buckets[nextBucket].isFull {
            start(buckets[nextBucket])
            overlappedBuckets += 1
            nextBucket += 1
        }
    }

    private func start(_ bucket: Bucket) {
        precondition(!bucket.started, "GradientReducer: bucket started twice")
        bucket.started = true
        bucket.packed = bucket.parameters.map(\.grad)
        let base = bucket.buffer.baseAddress!
        for (i, (p, offset)) in zip(bucket.parameters, bucket.offsets).enumerated() {
            if let g = p.grad?.plain() {
                (base + offset).update(from: g.storage.floats, count: p.elementCount)
                base[bucket.flagsOffset + i] = 1
            } else {
                (base + offset).update(repeating: 0, count: p.elementCount)
                base[bucket.flagsOffset + i] = 0
            }
        }
        if let wire = bucket.wire {
            bucket.pending = world.startHalfPrecisionMean(bucket.buffer, wire: wire)
        } else {
            bucket.pending = world.startAllreduce(bucket.buffer, mean: true)
        }
        // The lost-rank tests kill one rank here (`PCS_MPI_CRASH_AT=allreduce:N:rank-R-`): its bucket is on its way
        // and the other ranks wait in the allreduce for the rest.
        CrashPoint.reach("allreduce", file: "rank-\(world.rank)-")
    }

    /// Completes the reduction: every parameter that has a gradient on some rank now holds the mean over all
    /// ranks (zeros counted for the ranks without one), the others `grad = nil`, alike on every rank.
    public func finish() {
        precondition(syncing, "GradientReducer.finish() after prepareForStep(sync: false)")
        let start = DispatchTime.now().uptimeNanoseconds
        while nextBucket < buckets.count {
            self.start(buckets[nextBucket])
            nextBucket += 1
        }
        for bucket in buckets {
            bucket.pending?.wait()
            bucket.pending = nil
            let base = bucket.buffer.baseAddress!
            for (i, (p, offset)) in zip(bucket.parameters, bucket.offsets).enumerated() {
                precondition(p.grad === bucket.packed[i],
                             "GradientReducer: a gradient of \(p.shape) arrived after its bucket was sent (an op that did not count its use)")
                guard base[bucket.flagsOffset + i] > 0 else {
                    p.grad = nil
                    continue
                }
                let mean = Tensor(shape: p.shape)
                mean.storage.floats.update(from: base + offset, count: p.elementCount)
                p.grad = mean
            }
            bucket.packed = []
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
