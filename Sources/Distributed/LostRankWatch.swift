import CMPI
import Foundation

/// Names a rank that died without a word (SIGKILL, the out-of-memory killer, a crash) in one line from a survivor,
/// with what is kept and how to go on; without it the only words would be Open MPI's.
///
/// Why a watcher and not an MPI error handler (measured here with Open MPI 4.1.4, 2 ranks on one node): when a rank
/// dies, the survivors' MPI calls never fail (no fault tolerance; with `MPI_ERRORS_RETURN` a collective still
/// waits for ever), and nothing in their environment names the dead rank. What does happen: the node's ORTE daemon
/// reaps the dead rank, then sends each remaining rank SIGCONT (within ~5 ms), SIGTERM 1 s later and SIGKILL 1 s
/// after that. So at start every rank learns the pids of the ranks on its node, and on SIGCONT a watcher thread
/// looks which of them are gone. The lowest surviving rank of that node prints the line and ends its process at
/// once (status 1, before the daemon's SIGKILL, so the line names what is on disk at that moment).
///
/// Never a false alarm: a rank that stopped on an error it printed calls `MPI_Abort` and is still alive when the
/// SIGCONT comes; a SIGCONT after a stop (Ctrl-Z, `fg`) finds every rank alive. Limit: a rank lost on another node
/// (or a whole node) is not seen by these survivors; then only Open MPI names it.
public enum LostRankWatch {
    /// What the line adds about the files: what is kept and how to go on. Called on the watcher thread while the
    /// main thread may be anywhere, so it must not touch HDF5 (not thread-safe) or MPI; listing a folder is fine.
    nonisolated(unsafe) public static var recovery: @Sendable () -> String = {
        "the outputs already complete are kept (each is written whole or not at all): run the same command again to go on"
    }

    /// The ranks on this node (with this one), by world rank.
    nonisolated(unsafe) private static var peers: [(rank: Int, pid: pid_t)] = []
    nonisolated(unsafe) private static var me = 0
    /// The signal handler's only work: one byte into this pipe (async-signal-safe); the watcher thread reads it.
    nonisolated(unsafe) private static var wake: Int32 = -1

    /// Collective over the world: learns the node's pids, installs the SIGCONT handler and starts the watcher.
    static func start(world: Communicator) {
        guard world.size > 1, wake < 0 else { return }
        var local: MPI_Comm? = cmpi_comm_null()
        MPI_Comm_split_type(world.handle, cmpi_comm_type_shared(), Int32(world.rank), cmpi_info_null(), &local)
        guard local != nil, local != cmpi_comm_null() else { return }
        var size: Int32 = 0
        MPI_Comm_size(local, &size)
        var mine: [Int64] = [Int64(world.rank), Int64(getpid())]
        var all = [Int64](repeating: 0, count: 2 * Int(size))
        MPI_Allgather(&mine, 2, cmpi_int64(), &all, 2, cmpi_int64(), local)
        MPI_Comm_free(&local)
        peers = stride(from: 0, to: all.count, by: 2).map { (Int(all[$0]), pid_t(all[$0 + 1])) }
        me = world.rank
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return }
        wake = ends[1]
        signal(SIGCONT) { _ in
            var byte: UInt8 = 1
            _ = write(LostRankWatch.wake, &byte, 1)
        }
        let readEnd = ends[0]
        Thread.detachNewThread {
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) >= 0 { check() }
        }
    }

    /// Set by a rank that ends on an error it printed (`Communicator.abort`): the other ranks' ends are then that
    /// error's doing, not a loss to report (seen under a wrapper such as `/usr/bin/time`, where a rank that printed
    /// its error can be gone before the daemon's SIGCONT reaches another rank that is aborting too).
    nonisolated(unsafe) static var standingDown = false

    /// After a SIGCONT: reports the node's dead ranks if this is the lowest rank still alive there, and exits.
    private static func check() {
        guard !standingDown else { return }
        let lost = peers.filter { $0.rank != me && !isAlive($0.pid) }
        guard !lost.isEmpty, peers.filter({ isAlive($0.pid) }).map(\.rank).min() == me else { return }
        Log.errorLine(message(lost: lost.map(\.rank), recovery: recovery()))
        _exit(1)
    }

    /// The line (after the `pcs-mpi[R]: error: ` prefix), e.g. `rank 0 was lost (killed, out of memory or a crash:
    /// it ended without a word); train-pc: resume with --resume auto from checkpoint-00000004.h5 in runs/pc, …`.
    static func message(lost ranks: [Int], recovery: String) -> String {
        let who = ranks.count == 1 ? "rank \(ranks[0]) was" : "ranks \(ranks.map(String.init).joined(separator: ", ")) were"
        return "\(who) lost (killed, out of memory or a crash: it ended without a word); \(recovery)"
    }

    /// Whether `pid` is a running process (a zombie is not: it has ended and waits only to be reaped).
    private static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.range(of: ") ", options: .backwards) else { return true }
        return stat[close.upperBound...].first != "Z"
    }
}
