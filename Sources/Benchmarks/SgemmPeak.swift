import COpenBLAS
import Foundation

/// Measures what `cblas_sgemm` reaches on this machine right now, the reference every benchmark reports against.
///
/// The machines are virtual and noisy, so a benchmark measures the peak in the same run as the thing it measures
/// and reports a fraction of it rather than an absolute number alone.
public enum SgemmPeak {
    /// The kernel family OpenBLAS chose for this CPU (e.g. "SkylakeX"). A CPU its detection does not know falls
    /// back to "Prescott", several times slower: then `OPENBLAS_CORETYPE` (e.g. SkylakeX) sets the right one.
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// GFLOP/s of a square single-precision GEMM of side `n`, best of `repeats` runs after one warm-up.
    public static func measure(n: Int = 1024, repeats: Int = 5) -> Double {
        let a = [Float](repeating: 0.5, count: n * n)
        let b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let nn = Int32(n)
        func run() {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nn, nn, nn, 1, a, nn, b, nn, 0, &c, nn)
        }
        run()
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            run()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }
}
