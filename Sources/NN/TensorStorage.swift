import Foundation

/// A 64-byte-aligned buffer of bytes that returns to `StoragePool` when its last tensor lets go of it.
public final class TensorStorage {
    public let data: UnsafeMutableRawPointer
    public let byteCount: Int
    let bucket: Int

    init(byteCount: Int) {
        self.byteCount = byteCount
        let (pointer, bucket) = StoragePool.take(byteCount)
        data = pointer
        self.bucket = bucket
    }

    deinit { StoragePool.give(data, bucket: bucket) }

    public var floats: UnsafeMutablePointer<Float> { data.assumingMemoryBound(to: Float.self) }
}

/// Keeps released buffers by size class so that a training step, which frees and allocates the same sizes every
/// iteration, allocates nothing after the first. Size classes are powers of two up to 1 MiB, then multiples of
/// 1 MiB, so at most ~1/2 (small) or 1 MiB (large) is wasted per buffer. Buffers beyond `limitBytes` of idle
/// memory are returned to the system. The limit is half the machine's memory: a training step frees most of its
/// activations at the end of backward and needs them again at the next forward; returning them to the system
/// would make the kernel zero every page again (measured: a quarter of a Conformer step's time).
public enum StoragePool {
    /// Buffers are taken and given back from any thread (a background batch loader may build tensors too).
    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) private static var idleBytes = 0
    nonisolated(unsafe) public static var limitBytes = Int(ProcessInfo.processInfo.physicalMemory / 2)
    nonisolated(unsafe) public private(set) static var liveBytes = 0
    nonisolated(unsafe) public private(set) static var peakLiveBytes = 0

    static func bucket(for byteCount: Int) -> Int {
        let n = max(byteCount, 64)
        if n <= 1 << 20 { return 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount) }
        return ((n + (1 << 20) - 1) >> 20) << 20
    }

    static func take(_ byteCount: Int) -> (UnsafeMutableRawPointer, Int) {
        let b = bucket(for: byteCount)
        lock.lock()
        defer { lock.unlock() }
        liveBytes += b
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        if var list = free[b], let pointer = list.popLast() {
            free[b] = list
            idleBytes -= b
            return (pointer, b)
        }
        return (UnsafeMutableRawPointer.allocate(byteCount: b, alignment: 64), b)
    }

    /// Debugging aid (`PCS_POOL_POISON=1`): released buffers are filled with NaN and never reused, so code that
    /// reads a tensor after its last owner let go produces NaN instead of plausible stale numbers.
    static let poison = ProcessInfo.processInfo.environment["PCS_POOL_POISON"] == "1"

    static func give(_ pointer: UnsafeMutableRawPointer, bucket b: Int) {
        lock.lock()
        defer { lock.unlock() }
        liveBytes -= b
        if poison {
            pointer.initializeMemory(as: UInt8.self, repeating: 0xFF, count: b)
            return
        }
        if idleBytes + b > limitBytes {
            pointer.deallocate()
            return
        }
        free[b, default: []].append(pointer)
        idleBytes += b
    }

    /// Starts a new peak measurement from the current live size.
    public static func resetPeak() { peakLiveBytes = liveBytes }
}
