import Foundation

/// Deterministic crashes for the tests that prove nothing is lost: with `PCS_MPI_CRASH_AT=NAME:N[:MATCH]` in the
/// environment, the N-th time this process reaches the point NAME (counting only files whose name contains MATCH,
/// if given) it kills itself with SIGKILL, the way an out-of-memory kill or a node failure ends it: no clean-up,
/// no deferred code. `commit` is reached by every atomic write after its temporary file is complete and before
/// the rename; `allreduce` by the gradient reducer after it sent a bucket, with `rank-R-` as the name to match (so
/// one chosen rank dies while the others wait for it). Without the variable a point costs one dictionary lookup.
public enum CrashPoint {
    private static let plan: (name: String, count: Int, match: String?)? = {
        guard let text = ProcessInfo.processInfo.environment["PCS_MPI_CRASH_AT"] else { return nil }
        let parts = text.split(separator: ":", maxSplits: 2).map(String.init)
        guard parts.count >= 2, let count = Int(parts[1]), count >= 1 else { return nil }
        return (parts[0], count, parts.count == 3 ? parts[2] : nil)
    }()
    nonisolated(unsafe) private static var reached = 0

    public static func reach(_ name: String, file: String) {
        guard let plan, plan.name == name, plan.match.map({ file.contains($0) }) ?? true else { return }
        reached += 1
        if reached == plan.count { kill(getpid(), SIGKILL) }
    }
}
