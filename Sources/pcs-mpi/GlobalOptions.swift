import ArgumentParser
import Distributed

extension LogLevel: ExpressibleByArgument {}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Compute threads per rank (oneDNN and OpenBLAS). Default: the node's cores divided by the ranks on the node.")
    var threads: Int?

    @Option(help: "How much to print: error, warning, info or debug.")
    var logLevel: LogLevel = .info

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// Sets the log level and the thread count, for commands that do not join an MPI world.
    func apply() {
        Log.level = logLevel
        ThreadPlan.apply(requested: threads, localSize: 1)
    }

    /// Sets the log level, joins the MPI world and sets the thread count; returns the world.
    func startWorld() -> Communicator {
        Log.level = logLevel
        let world = Communicator.world()
        ThreadPlan.apply(requested: threads, localSize: world.localSize)
        return world
    }
}
