import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starts a program under `mpirun` from inside a running pcs-mpi process (the benchmarks that compare rank
/// counts do this), and waits for it.
public enum MPILauncher {
    public struct LaunchError: Error, CustomStringConvertible, LocalizedError {
        public let description: String
        public var errorDescription: String? { description }
    }

    /// Runs `mpirun -n ranks executable arguments…` on this node (no core binding), waits for it and throws if it
    /// fails. `launcher` replaces `mpirun` and its options (e.g. `scripts/hosts/mpirun`, which spreads the ranks over
    /// the test hosts). Returns the largest peak resident memory (MiB) of the launcher and the processes of this node
    /// it waited for (mpirun's local ranks): `wait4`'s figure for this one job, where `getrusage(RUSAGE_CHILDREN)`
    /// keeps one maximum over every child so far.
    @discardableResult
    public static func run(_ executable: String, ranks: Int, arguments: [String], launcher: [String]? = nil) throws -> Double {
        let mpirun = launcher ?? ["mpirun", "--oversubscribe", "--bind-to", "none"]
        let argv = mpirun + ["-n", "\(ranks)", executable] + arguments
        // The calling process is an MPI singleton: the variables Open MPI set for it would confuse a new mpirun.
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("OPAL_") || key.hasPrefix("ORTE_"))
        }
        if getuid() == 0 {
            environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        let name = "\(URL(fileURLWithPath: executable).lastPathComponent) \(arguments.first ?? "") under mpirun -n \(ranks)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArguments + cEnvironment).forEach { free($0) } }
        var pid = pid_t()
        // posix_spawnp looks a bare name up on the PATH and takes one with a slash as a path.
        let spawned = posix_spawnp(&pid, argv[0], &actions, nil, cArguments, cEnvironment)
        guard spawned == 0 else { throw LaunchError(description: "\(name): cannot start \(argv[0]) (\(String(cString: strerror(spawned))))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw LaunchError(description: "\(name): lost track of \(argv[0]) (\(String(cString: strerror(errno))))") }
        }
        // The <sys/wait.h> macros: the low 7 bits are the terminating signal (0: exited), the next 8 the exit status.
        let signal = status & 0x7f, exitStatus = (status >> 8) & 0xff
        guard signal == 0, exitStatus == 0 else {
            throw LaunchError(description: "\(name) \(signal == 0 ? "exited with status \(exitStatus)" : "was killed by signal \(signal)")")
        }
        return Double(usage.ru_maxrss) / 1024
    }

    /// The running executable's path (to launch more of itself).
    public static var currentExecutable: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }
}
