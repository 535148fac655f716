import Formats
import Foundation
import NN

/// The machine-readable record of a run, written by rank 0: one JSON object per line in `metrics.jsonl`.
///
/// Each line holds `step` (an integer), `wall_time` (seconds since 1970) and the scalars of that step, keys sorted,
/// e.g. `{"loss":0.6931,"lr":0.01,"step":100,"wall_time":1716000000.25}`. Non-finite values (a NaN loss) are written
/// as `null`, so every line is strict JSON. The file is opened for appending, so a resumed run continues it; each
/// line goes to the file in one `write`, so a killed run loses nothing it logged. Reading it back:
/// `pandas.read_json("metrics.jsonl", lines=True)` or `[json.loads(l) for l in open(...)]`.
///
/// Writing never throws: a failed write is reported once as a warning and later lines are dropped.
public final class MetricsLog {
    /// The file the lines go to.
    public let url: URL
    private var fd: Int32
    private var failed = false

    /// The keys every line has; scalars may not use them.
    public static let reservedKeys: Set<String> = ["step", "wall_time"]

    /// Opens (creating it and its folder if needed) `directory/fileName` for appending.
    public init(directory: URL, fileName: String = "metrics.jsonl") throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        url = directory.appendingPathComponent(fileName)
        fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(path: url.path, what: "cannot open for appending: \(String(cString: strerror(errno)))") }
    }

    deinit { close() }

    /// Drops the lines of steps after `step` from `directory/fileName` (a resumed run repeats them; without this
    /// the file would hold the steps between the checkpoint and the interruption twice). Rewritten atomically.
    public static func truncate(directory: URL, fileName: String = "metrics.jsonl", after step: Int) throws {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { return }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        let kept = lines.filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let lineStep = object["step"] as? Int else { return false } // a line cut by a kill is dropped too
            return lineStep <= step
        }
        guard kept.count != lines.count else { return }
        try AtomicFile.write(Data(kept.map { $0 + "\n" }.joined().utf8), to: url)
    }

    /// Appends the line for `step` with `scalars` (names like "train/loss"; not "step" or "wall_time").
    public func append(step: Int, _ scalars: [String: Double], wallTime: Date = Date()) {
        guard fd >= 0, !failed else { return }
        let line = Self.line(step: step, scalars: scalars, wallTime: wallTime.timeIntervalSince1970)
        let error = writeFully(fd, Data(line.utf8))
        if error != 0 {
            failed = true
            Log.warning("\(url.path): cannot append metrics (\(String(cString: strerror(error)))); no more lines are written there")
        }
    }

    /// Closes the file; later appends do nothing.
    public func close() {
        guard fd >= 0 else { return }
        Foundation.close(fd)
        fd = -1
    }

    /// One JSON line, keys sorted, ending in a newline.
    static func line(step: Int, scalars: [String: Double], wallTime: Double) -> String {
        precondition(reservedKeys.isDisjoint(with: scalars.keys), "metrics may not be named \(reservedKeys.sorted())")
        var fields: [(String, String)] = scalars.map { ($0.key, number($0.value)) }
        fields.append(("step", String(step)))
        fields.append(("wall_time", number(wallTime)))
        fields.sort { $0.0 < $1.0 }
        return "{" + fields.map { "\(quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}\n"
    }

    /// A JSON number: Swift's shortest round-tripping form (valid JSON, e.g. `0.1`, `1e-05`), `null` if not finite.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// A JSON string literal.
    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
