import CDNNL
import Dispatch
import COpenBLAS

/// The one place that sets how many threads a rank computes with.
///
/// oneDNN (Debian's build runs on GNU OpenMP) and OpenBLAS each keep their own pool; both are told the same
/// number so that a rank never runs more hot threads than the cores it was given (see DESIGN.md, "Numbers").
public enum ComputeThreads {
    nonisolated(unsafe) private static var configured = 0

    /// Sets the thread count of oneDNN's OpenMP pool and of OpenBLAS.
    public static func configure(_ threads: Int) {
        precondition(threads >= 1, "thread count must be at least 1, got \(threads)")
        omp_set_num_threads(Int32(threads))
        openblas_set_num_threads(Int32(threads))
        configured = threads
    }

    /// The count set by `configure`, or OpenMP's default if it was never called.
    public static var current: Int { configured > 0 ? configured : Int(omp_get_max_threads()) }

    /// oneDNN's version, e.g. "2.6.3", for benchmark headers.
    public static var oneDNNVersion: String {
        guard let v = dnnl_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// Runs `body` over `count` items split into contiguous ranges, one per compute thread (on GCD's pool, between
    /// oneDNN's parallel regions), for the memory-bound loops outside oneDNN. Each item is handled exactly as in a
    /// serial loop, so results do not depend on the thread count. Small counts run inline.
    public static func parallelRanges(_ count: Int, minimumPerThread: Int = 1 << 16, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(current, count / max(minimumPerThread, 1)))
        guard parts > 1 else { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            body((p * count / parts)..<((p + 1) * count / parts))
        }
    }
}
