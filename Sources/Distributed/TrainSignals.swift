import Foundation

/// SIGTERM and SIGUSR1 — what Slurm sends before it preempts a job (`#SBATCH --signal=USR1@120`) — only set a
/// flag; the training loop sees it after the current step, writes a checkpoint on every rank's behalf and exits 0.
public enum TrainSignals {
    nonisolated(unsafe) private static var raised: sig_atomic_t = 0
    nonisolated(unsafe) private static var installed = false

    public static func install() {
        guard !installed else { return }
        installed = true
        for s in [SIGTERM, SIGUSR1] {
            signal(s) { _ in TrainSignals.raised = 1 }
        }
    }

    /// Whether a stop was requested on this process.
    public static var stopRequested: Bool { raised != 0 }

    /// Clears a request once a run has stopped for it, so a later run in the same process starts afresh.
    public static func acknowledge() { raised = 0 }
}
