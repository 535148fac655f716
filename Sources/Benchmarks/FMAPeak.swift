import CFMA
import Dispatch
import Foundation
import NN

/// The machine's real floating-point limit, measured in the same run as what a benchmark measures: one loop of
/// independent fused multiply-adds per thread on the widest vectors the CPU has (`cfma_loop`: AVX-512, else AVX2+FMA,
/// else SSE2 multiply and add). OpenBLAS's sgemm (`SgemmPeak`) is a reference, not the limit: this is.
public enum FMAPeak {
    /// The instruction set the loop runs here.
    public static var instructionSet: String { String(cString: cfma_isa()) }

    /// The CPU's model name from /proc/cpuinfo ("unknown" where there is none).
    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// The peak at `threads` threads, measured on first use in this process (for tables whose rows use different
    /// numbers of cores, e.g. RANKS × THREADS layouts).
    public static func atThreads(_ threads: Int) -> Double {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let known = cache[threads] { return known }
        let measured = measure(threads: threads)
        cache[threads] = measured
        return measured
    }

    nonisolated(unsafe) private static var cache: [Int: Double] = [:]
    private static let cacheLock = NSLock()

    /// GFLOP/s of `threads` loops running at once, the best of `repeats` rounds of about 0.1 s each.
    public static func measure(threads: Int, repeats: Int = 3) -> Double {
        let iterations: Int64 = 16_000_000
        var sinks = [Float](repeating: 0, count: threads)
        var best = 0.0
        _ = cfma_loop(iterations / 10, &sinks[0])      // warm-up: clocks up, code in cache
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            var flops = [Double](repeating: 0, count: threads)
            flops.withUnsafeMutableBufferPointer { f in
                sinks.withUnsafeMutableBufferPointer { s in
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        f[t] = cfma_loop(iterations, s.baseAddress! + t)
                    }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, flops.reduce(0, +) / seconds / 1e9)
        }
        return best
    }
}

/// The two yardsticks a benchmark prints its GFLOP/s against, measured at its thread count: the FMA-loop peak and
/// OpenBLAS's sgemm.
public struct MachinePeaks {
    public let threads: Int
    /// GFLOP/s of the FMA loop on `threads` threads.
    public let fma: Double
    /// GFLOP/s of a square sgemm with OpenBLAS's threads.
    public let sgemm: Double

    /// Measures both now (the FMA loop at `threads` threads; sgemm of side `sgemmSide`).
    public static func measure(threads: Int = ComputeThreads.current, sgemmSide: Int = 1024) -> MachinePeaks {
        MachinePeaks(threads: threads, fma: FMAPeak.atThreads(threads),
                     sgemm: SgemmPeak.measure(n: sgemmSide, repeats: 3))
    }

    /// One line: the CPU, the FMA peak and the sgemm figure (with a warning where OpenBLAS did not recognise a
    /// CPU that has wide vectors and fell back to its SSE3 kernels).
    public var description: String {
        let fallback = SgemmPeak.coreName == "Prescott" && FMAPeak.instructionSet != "sse2 (mul+add)"
        return String(format: "CPU %@; FMA peak %.0f GFLOP/s (%@, %d thread%@); OpenBLAS sgemm %.0f GFLOP/s (%@ kernels%@)",
                      FMAPeak.cpuModel, fma, FMAPeak.instructionSet, threads, threads == 1 ? "" : "s", sgemm,
                      SgemmPeak.coreName,
                      fallback ? ": OpenBLAS did not recognise this CPU; OPENBLAS_CORETYPE=SkylakeX or Haswell picks its kernels" : "")
    }

    /// `gflops` as a percentage of the FMA peak and of sgemm: "41 % FMA, 96 % sgemm".
    public func share(_ gflops: Double) -> String {
        String(format: "%3.0f %% FMA, %3.0f %% sgemm", 100 * gflops / fma, 100 * gflops / sgemm)
    }
}
