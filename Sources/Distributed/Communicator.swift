import CMPI
import Foundation

/// The MPI world a rank lives in.
///
/// `Communicator.world()` initialises MPI once per process with `MPI_THREAD_FUNNELED`: only the main thread calls MPI,
/// while oneDNN's and OpenBLAS's worker threads compute beside it. That is all the gradient reducer needs, because
/// backward runs on the main thread and starts its non-blocking allreduces from there. MPI is finalised at exit.
///
/// The same binary started without `mpirun` becomes a world of size 1 (Open MPI's singleton mode).
public final class Communicator: @unchecked Sendable {
    /// The world's communicator handle.
    public let handle: MPI_Comm
    /// This process's rank in the world, 0 ..< size.
    public let rank: Int
    /// Number of ranks in the world.
    public let size: Int
    /// Rank among the processes that share this node (0 ..< localSize), from `MPI_Comm_split_type(SHARED)`.
    public let localRank: Int
    /// Number of ranks on this node.
    public let localSize: Int
    /// The thread level MPI granted (at least FUNNELED, or `world()` fails).
    public let threadLevel: Int32

    public var isRoot: Bool { rank == 0 }

    nonisolated(unsafe) private static var shared: Communicator?

    /// The world communicator, initialising MPI on first use.
    public static func world() -> Communicator {
        if let shared { return shared }
        var provided: Int32 = 0
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided)
            atexit { Communicator.finalize() }
        } else {
            MPI_Query_thread(&provided)
        }
        let comm = Communicator(handle: cmpi_comm_world(), threadLevel: provided)
        if provided < cmpi_thread_funneled() {
            comm.abort("MPI granted thread level \(provided), below MPI_THREAD_FUNNELED; rebuild Open MPI with thread support")
        }
        shared = comm
        Log.rank = comm.rank
        Log.worldSize = comm.size
        LostRankWatch.start(world: comm)
        return comm
    }

    /// This process alone as a one-rank communicator (`MPI_COMM_SELF`), initialising MPI through `world()`: for
    /// work a rank does by itself with code written for a communicator, e.g. the one-rank reference a multi-rank
    /// test compares with.
    public static func selfOnly() -> Communicator {
        let world = world()
        return Communicator(handle: cmpi_comm_self(), threadLevel: world.threadLevel)
    }

    /// Whether `world()` has been called in this process.
    public static var isInitialized: Bool { shared != nil }

    private init(handle: MPI_Comm, threadLevel: Int32) {
        self.handle = handle
        self.threadLevel = threadLevel
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(handle, &r)
        MPI_Comm_size(handle, &s)
        rank = Int(r)
        size = Int(s)
        var local: MPI_Comm? = cmpi_comm_null()
        MPI_Comm_split_type(handle, cmpi_comm_type_shared(), r, cmpi_info_null(), &local)
        var lr: Int32 = 0, ls: Int32 = 1
        if local != nil, local != cmpi_comm_null() {
            MPI_Comm_rank(local, &lr)
            MPI_Comm_size(local, &ls)
            MPI_Comm_free(&local)
        }
        localRank = Int(lr)
        localSize = Int(ls)
    }

    private static func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    /// Blocks until every rank has reached it.
    public func barrier() {
        MPI_Barrier(handle)
    }

    /// Prints `message` as one line on standard error and ends every rank of the world with exit status 1.
    ///
    /// Use it when this rank cannot go on and the others would otherwise wait for it forever in a collective.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        LostRankWatch.standingDown = true
        Log.errorLine(message)
        if size > 1 {
            MPI_Abort(handle, code)
        }
        exit(code)
    }
}

extension Communicator {
    /// This rank's items of 0 ..< count, round-robin (rank, rank + size, …): the split every per-image loop uses, so
    /// the items of all ranks together are each item exactly once.
    public func share(_ count: Int) -> StrideTo<Int> { stride(from: rank, to: count, by: size) }
}
