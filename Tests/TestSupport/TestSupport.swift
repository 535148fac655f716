import Foundation

/// Helpers the test targets share: finding the built executables, running them (alone or under `mpirun`) with
/// a time limit, and scratch folders.
public enum TestSupport {
    /// The folder holding the built products (the test bundle sits beside the executables).
    public static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The path of a built executable, e.g. `pcs-mpi` or `mpi-checks`.
    public static func binary(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }

    nonisolated(unsafe) private static var created: [URL] = []
    private static let removeAtExit: Void = {
        atexit { for url in TestSupport.created { try? FileManager.default.removeItem(at: url) } }
    }()

    /// A fresh empty folder under the system's temporary folder, removed when the test process exits.
    public static func scratchDirectory(_ label: String = #function) throws -> URL {
        _ = removeAtExit
        let name = "pcs-mpi-test-\(label.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        created.append(url)
        return url
    }

    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var timedOut: Bool
    }

    /// Runs a program with stdin from /dev/null, killing it after `timeout` seconds.
    public static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 300,
                           environment extra: [String: String] = [:]) throws -> Result {
        try start(executable, arguments, environment: extra).finish(timeout: timeout)
    }

    /// Starts a program with stdin from /dev/null and returns at once (for tests that act while it runs: kill a
    /// rank, cut a link); `finish` waits for it.
    public static func start(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Running {
        try Running(executable, arguments, environment: extra)
    }

    /// A program started by `start`. Output goes to files rather than pipes, so a chatty child can never block on
    /// a full pipe.
    public final class Running {
        let process = Process()
        let logs: URL
        let outURL: URL, errURL: URL
        let out: FileHandle, err: FileHandle

        init(_ executable: String, _ arguments: [String], environment extra: [String: String]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            // Open MPI refuses to run as root (CI runs as root) without these.
            environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            for (k, v) in extra { environment[k] = v }
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            logs = try scratchDirectory("run")
            outURL = logs.appendingPathComponent("stdout")
            errURL = logs.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            out = try FileHandle(forWritingTo: outURL)
            err = try FileHandle(forWritingTo: errURL)
            process.standardOutput = out
            process.standardError = err
            try process.run()
        }

        public var isRunning: Bool { process.isRunning }

        /// Waits for the program, killing it after `timeout` seconds, and returns what it printed.
        public func finish(timeout: TimeInterval) -> Result {
            let deadline = Date().addingTimeInterval(timeout)
            var timedOut = false
            while process.isRunning {
                if Date() > deadline {
                    timedOut = true
                    process.terminate()
                    kill(-process.processIdentifier, SIGKILL)
                    break
                }
                usleep(20_000)
            }
            process.waitUntilExit()
            try? out.close()
            try? err.close()
            defer { try? FileManager.default.removeItem(at: logs) }
            return Result(status: process.terminationStatus,
                          stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", timedOut: timedOut)
        }
    }

    /// Runs a built executable under `mpirun -n ranks` (one node, no core binding).
    public static func mpirun(_ ranks: Int, _ name: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try run("/usr/bin/env", ["mpirun", "-n", "\(ranks)", "--oversubscribe", "--bind-to", "none", binary(name)] + arguments,
                timeout: timeout)
    }

    /// Runs `pcs-mpi` as one process.
    public static func pcsMPI(_ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try run(binary("pcs-mpi"), arguments, timeout: timeout)
    }

    /// Debian's Python (with h5py, numpy and Pillow from apt), not a pyenv one that may lack them.
    public static let python = "/usr/bin/python3"
}
