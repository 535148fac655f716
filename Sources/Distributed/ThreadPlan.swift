import Foundation
import NN
import NN

/// How many compute threads each rank runs: the node's cores divided by the ranks on the node, unless the user says.
///
/// Open MPI binds every rank to one core by default (for up to two ranks), which would squeeze a rank's threads onto
/// a single core: the plan warns when the rank's CPU affinity holds fewer cores than it is asked to use, and the
/// README's commands pass `--bind-to none` (or `--map-by slot:PE=N`) to avoid it.
public enum ThreadPlan {
    /// Cores online on this node.
    public static var nodeCores: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Cores this process may run on: the `Cpus_allowed` mask Linux reports in /proc/self/status (which is what
    /// `mpirun`'s binding sets); the node's cores where that is unavailable.
    public static var allowedCores: Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return nodeCores }
        let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
        let count = mask.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
        return count > 0 ? count : nodeCores
    }

    /// The default: node cores divided by ranks on the node, at least 1.
    public static func defaultThreads(localSize: Int) -> Int {
        max(1, nodeCores / max(1, localSize))
    }

    /// Chooses the thread count (`requested` wins when given), tells oneDNN and OpenBLAS, and returns it.
    @discardableResult
    public static func apply(requested: Int?, localSize: Int) -> Int {
        let threads = requested ?? defaultThreads(localSize: localSize)
        ComputeThreads.configure(threads)
        let allowed = allowedCores
        if allowed < threads {
            Log.warning("this rank may run on \(allowed) core(s) but uses \(threads) threads; launch with `mpirun --bind-to none` or `--map-by slot:PE=\(threads)`")
        }
        Log.debug("compute threads: \(threads) (node cores \(nodeCores), ranks on node \(localSize), affinity \(allowed))")
        return threads
    }
}
