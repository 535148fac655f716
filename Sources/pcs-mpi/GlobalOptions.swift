import ArgumentParser
import Foundation
import Distributed
import NN

extension LogLevel: ExpressibleByArgument {}
extension ConvAlgorithm: ExpressibleByArgument {}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Compute threads per rank (oneDNN and OpenBLAS). Default: the node's cores divided by the ranks on the node.")
    var threads: Int?

    @Option(help: "How much to print: error, warning, info or debug.")
    var logLevel: LogLevel = .info

    @Option(help: "How training's 3x3 convolutions run: winograd (faster; rounding differs from the direct sum by ~1e-6 relative; dilated ones run on their sub-grids) or direct (bit for bit the earlier releases). Inference always runs direct.")
    var convAlgorithm: ConvAlgorithm = .winograd

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// Sets the log level, the convolution algorithm and the thread count, for commands that do not join an MPI world.
    func apply() {
        Log.level = logLevel
        ConvAlgorithm.preferred = convAlgorithm
        ThreadPlan.apply(requested: threads, localSize: 1)
    }

    /// Sets the log level and the convolution algorithm, joins the MPI world and sets the thread count; returns the world.
    func startWorld() -> Communicator {
        Log.level = logLevel
        ConvAlgorithm.preferred = convAlgorithm
        let world = Communicator.world()
        ThreadPlan.apply(requested: threads, localSize: world.localSize)
        return world
    }
}

/// A path option that must name an existing file: a parse-time error naming the flag (exit status 2).
func requireFile(_ path: String, flag: String) throws {
    guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(flag) \(path): no such file") }
}
