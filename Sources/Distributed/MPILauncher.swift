import Foundation

/// Starts a program under `mpirun` from inside a running pcs-mpi process (the benchmarks that compare rank
/// counts do this), and waits for it.
public enum MPILauncher {
    public struct LaunchError: Error, CustomStringConvertible, LocalizedError {
        public let description: String
        public var errorDescription: String? { description }
    }

    /// Runs `mpirun -n ranks executable arguments…` on this node (no core binding) and throws if it fails.
    /// `launcher` replaces `mpirun` and its options (e.g. `scripts/hosts/mpirun`, which spreads the ranks over the
    /// test hosts).
    public static func run(_ executable: String, ranks: Int, arguments: [String], launcher: [String]? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let mpirun = launcher ?? ["mpirun", "--oversubscribe", "--bind-to", "none"]
        process.arguments = mpirun + ["-n", "\(ranks)", executable] + arguments
        // The calling process is an MPI singleton: the variables Open MPI set for it would confuse a new mpirun.
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("OPAL_") || key.hasPrefix("ORTE_"))
        }
        if getuid() == 0 {
            environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw LaunchError(description: "\(URL(fileURLWithPath: executable).lastPathComponent) \(arguments.first ?? "") under mpirun -n \(ranks) exited with status \(process.terminationStatus)")
        }
    }

    /// The running executable's path (to launch more of itself).
    public static var currentExecutable: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }
}
