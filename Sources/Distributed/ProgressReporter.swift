import Foundation

/// Progress of a long loop on rank 0: a redrawn bar with rate and ETA on a terminal, plain lines otherwise
/// (every 10 % or 30 s, so batch logs stay readable).
public final class ProgressReporter {
    private let label: String
    private let total: Int
    private let unit: String
    private let enabled: Bool
    private let isTerminal: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastPlainDecile = -1
    private(set) public var done = 0
    /// Work already done before this run started (a resumed run): counted in `done`, not in the rate.
    private var skipped = 0

    /// - Parameters:
    ///   - label: what is being done, e.g. "ingest".
    ///   - total: the count at which the work is complete.
    ///   - unit: what is counted, e.g. "images".
    ///   - enabled: false on ranks other than 0.
    public init(_ label: String, total: Int, unit: String = "items", enabled: Bool = true) {
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.enabled = enabled && Log.level >= .info
        self.isTerminal = isatty(STDERR_FILENO) != 0
    }

    /// Items finished per second so far.
    public var rate: Double {
        let elapsed = Date().timeIntervalSince(start)
        return elapsed > 0 ? Double(done - skipped) / elapsed : 0
    }

    /// Marks `n` items as done by an earlier run (a resume): the count starts there, the rate does not include them.
    public func resume(at n: Int) {
        done = n
        skipped = n
    }

    public func advance(by n: Int = 1) {
        done += n
        guard enabled else { return }
        let now = Date()
        if isTerminal {
            if now.timeIntervalSince(lastDraw) >= 0.1 || done >= total {
                lastDraw = now
                drawBar()
            }
        } else {
            let decile = total > 0 ? done * 10 / total : 10
            if decile > lastPlainDecile || now.timeIntervalSince(lastDraw) >= 30 {
                lastPlainDecile = decile
                lastDraw = now
                print("\(label): \(done)/\(total) \(unit) (\(String(format: "%.1f", rate)) \(unit)/s)")
                fflush(stdout)
            }
        }
    }

    /// Draws the bar again (after `Log` printed a line over it).
    func redraw() { if enabled && isTerminal { drawBar() } }

    /// Ends the bar with a summary line.
    public func finish() {
        guard enabled else { return }
        if Log.bar === self { Log.bar = nil }
        let elapsed = Date().timeIntervalSince(start)
        if isTerminal { Log.writeStandardError("\r\u{1B}[K") }
        print("\(label): \(done) \(unit) in \(String(format: "%.1f", elapsed)) s (\(String(format: "%.1f", rate)) \(unit)/s)")
        fflush(stdout)
    }

    private func drawBar() {
        Log.bar = self
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let r = rate
        let eta = r > 0 ? Double(total - done) / r : 0
        let line = String(format: "\r%@ %@ %d/%d %@ %.1f/s ETA %@", label, bar, done, total, unit, r, Self.clock(eta))
        Log.writeStandardError(line)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
