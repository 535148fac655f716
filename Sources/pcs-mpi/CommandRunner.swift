import ArgumentParser
import Distributed
import Foundation

/// Runs the command line with the project's exit rules, instead of swift-argument-parser's defaults:
/// - `--help` and `--version` print and exit 0;
/// - an unknown flag or a bad value prints one line naming it and exits 2;
/// - a failure while running prints one line and exits 1; under `mpirun` it ends every rank (see
///   `Communicator.abort`), so the others never wait for it in a collective.
enum CommandRunner {
    static func run(_ root: PCSMPI.Type) {
        useSleepingOpenMPThreads()
        var command: ParsableCommand
        do {
            command = try root.parseAsRoot()
        } catch {
            exitForParserError(error, root)
        }
        do {
            try command.run()
        } catch let exitCode as ExitCode {
            exit(exitCode.rawValue)
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // `pcs-mpi help CMD` and `CMD --help` reach here through the parser's built-in help command.
            exitForParserError(error, root)
        } catch {
            let message = error.localizedDescription
            if Communicator.isInitialized {
                Communicator.world().abort(message)
            }
            Log.errorLine(message)
            exit(1)
        }
    }

    private static func exitForParserError(_ error: Error, _ root: PCSMPI.Type) -> Never {
        if root.exitCode(for: error) == .success {
            print(root.fullMessage(for: error))
            exit(0)
        }
        let message = root.message(for: error)
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
        Log.errorLine("\(message) (see `pcs-mpi help`)")
        exit(2)
    }

    /// GNU OpenMP (oneDNN's thread pool here) spin-waits between parallel regions by default. Beside the batch
    /// loader's thread, or other ranks and jobs on the same cores, the spinning threads starve the ones with work:
    /// measured here, a training step went from 0.11 s to 25 s. libgomp reads `OMP_WAIT_POLICY` only when it
    /// loads, so the process starts itself again with `passive` unless the user chose a policy.
    private static func useSleepingOpenMPThreads() {
        guard ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] == nil else { return }
        setenv("OMP_WAIT_POLICY", "passive", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returns only if it failed; carry on with the default policy.
    }
}
