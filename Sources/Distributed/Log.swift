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

    /// The progress bar on the terminal's last line, if one is drawn: a log line clears it, is printed, and the bar
    /// is drawn again below it (instead of the line being written onto the bar).
    nonisolated(unsafe) static weak var bar: ProgressReporter?

    /// Writes one log line around the progress bar.
    private static func aroundBar(_ write: () -> Void) {
        guard let bar else { return write() }
        writeStandardError("\r\u{1B}[K")
        write()
        bar.redraw()
    }

    /// A line on standard output from rank 0.
    public static func info(_ message: @autoclosure () -> String) {
        guard level >= .info, rank == 0 else { return }
        let text = message()
        aroundBar {
            print(text)
            fflush(stdout)
        }
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
        let text = "\(prefix) warning: \(message())\n"
        aroundBar { writeStandardError(text) }
    }

    /// An error line on standard error; always printed.
    public static func errorLine(_ message: String) {
        if bar != nil { writeStandardError("\r\u{1B}[K") }
        writeStandardError("\(prefix): error: \(message)\n")
    }

    static func writeStandardError(_ text: String) {
        FileHandle.standardError.write(text.data(using: .utf8)!)
    }
}
