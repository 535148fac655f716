import Foundation

/// How much a run says. Ordered: each level includes the ones before it.
public enum LogLevel: String, CaseIterable, Comparable, Sendable {
    case error, warning, info, debug

    public static func < (a: LogLevel, b: LogLevel) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// Human output of a run. Information is printed by rank 0 only (the others would repeat it); warnings and errors
/// from any rank, prefixed by the rank when the world has more than one.
public enum Log {
    nonisolated(unsafe) public static var level: LogLevel = .info
    nonisolated(unsafe) static var rank = 0
    nonisolated(unsafe) static var worldSize = 1

    private static var prefix: String { worldSize > 1 ? "pcs-mpi[\(rank)]" : "pcs-mpi" }

    /// A line on standard output from rank 0.
    public static func info(_ message: @autoclosure () -> String) {
        guard level >= .info, rank == 0 else { return }
        print(message())
        fflush(stdout)
    }

    /// A detail line on standard output from every rank, when `--log-level debug`.
    public static func debug(_ message: @autoclosure () -> String) {
        guard level >= .debug else { return }
        print("\(prefix) debug: \(message())")
        fflush(stdout)
    }

    /// A warning on standard error from any rank.
    public static func warning(_ message: @autoclosure () -> String) {
        guard level >= .warning else { return }
        writeStandardError("\(prefix) warning: \(message())\n")
    }

    /// An error line on standard error; always printed.
    public static func errorLine(_ message: String) {
        writeStandardError("\(prefix): error: \(message)\n")
    }

    static func writeStandardError(_ text: String) {
        FileHandle.standardError.write(text.data(using: .utf8)!)
    }
}
