import Formats
import Foundation
import NN
import Yams

/// A run's settings from an optional YAML file and command-line flags, resolved one key at a time.
///
/// The file is a flat mapping of `key: value` (numbers, booleans, strings, lists of them; `~`/`null` counts as not
/// set). A key is the flag's name without dashes, and `-` and `_` are the same in keys, so `--batch-size` and
/// `batch_size:` name one setting.
///
/// **Precedence, for every key: a flag given on the command line wins; else the file's value; else the default.**
/// For this the command declares such options optional, with the default in its help text rather than in the
/// declaration, so that "not given" can be told apart from "given the default":
///
///     @Option(help: "Learning rate (default 0.01).") var lr: Double?
///     ...
///     var config = try RunConfig.load(yaml: configPath.map { URL(fileURLWithPath: $0) })
///     let lr = try config.resolve("lr", flag: lr, default: 0.01)
///     let data = try config.require("data", flag: data)       // no default: flag or file must give it
///     try config.write(to: runDirectory.appendingPathComponent("config.yaml"))   // also rejects unknown keys
///
/// Keys the file sets that no `resolve` asked for are unknown keys (typos); `checkUnknownKeys()` — which `write(to:)`
/// calls — reports the first as `FILE:LINE: unknown key 'lrr'`. Every error is one line naming the file.
public struct RunConfig {
    /// The YAML file read, or nil when the run has none.
    public let file: URL?
    /// The file's entries by canonical key, with their YAML node (which carries its line).
    private var entries: [String: Node] = [:]
    /// The value each resolved key ended with, by the key as the command spelt it.
    public private(set) var resolved: [String: ConfigValue] = [:]
    /// Where each resolved value came from.
    public private(set) var origins: [String: Origin] = [:]
    private var used: Set<String> = []

    public enum Origin: String, Sendable { case flag, file, `default` }

    /// A configuration without a file: every key takes its flag or default.
    public init() { file = nil }

    /// Reads `yaml` (nil: no file). A missing or malformed file, a top level that is not a mapping, a nested mapping or
    /// a repeated key is a `ConfigError` naming the file and line.
    public static func load(yaml: URL?) throws -> RunConfig {
        guard let yaml else { return RunConfig() }
        let path = yaml.path
        guard let text = try? String(contentsOf: yaml, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, FileManager.default.fileExists(atPath: path) ? "cannot read as UTF-8 text" : "no such file")
        }
        return try load(text: text, file: yaml)
    }

    /// Parses YAML `text` as if read from `file` (which names it in errors).
    public static func load(text: String, file: URL) throws -> RunConfig {
        let path = file.path
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(yaml: error, file: path)
        }
        var config = RunConfig(file: file)
        guard let root, !isNull(root) else { return config }
        guard case let .mapping(mapping) = root else {
            throw ConfigError(file: path, line: root.mark?.line, "the top level must be a mapping of `key: value` lines")
        }
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw ConfigError(file: path, line: keyNode.mark?.line, "keys must be plain names")
            }
            let canonical = canonicalKey(key)
            if config.entries[canonical] != nil { throw ConfigError(file: path, line: keyNode.mark?.line, "key '\(key)' is set twice") }
            if case .mapping = value {
                throw ConfigError(file: path, line: keyNode.mark?.line, "key '\(key)' holds a mapping; settings are flat `key: value` lines")
            }
            config.entries[canonical] = value
        }
        return config
    }

    private init(file: URL) { self.file = file }

    /// A plain `~`, `null` or empty value: not set.
    static func isNull(_ node: Node) -> Bool {
        guard let s = node.scalar, s.style == .plain || s.style == .any else { return false }
        return NSNull.construct(from: s) != nil
    }

    /// `--batch-size` and `batch_size` are one key.
    static func canonicalKey(_ key: String) -> String { key.replacingOccurrences(of: "-", with: "_") }

    /// The value of `key`: `flag` if given, else the file's value, else `defaultValue`. A file value of the wrong type
    /// is an error naming the file, line and key.
    public mutating func resolve<T: ConfigRepresentable>(_ key: String, flag: T?, default defaultValue: T) throws -> T {
        if let value = try resolveOptional(key, flag: flag) { return value }
        return record(key, defaultValue, .default)
    }

    /// Like `resolve`, for a setting without a default: nil when neither the flag nor the file gives it.
    public mutating func resolveOptional<T: ConfigRepresentable>(_ key: String, flag: T?) throws -> T? {
        let canonical = Self.canonicalKey(key)
        used.insert(canonical)
        if let flag { return record(key, flag, .flag) }
        guard let node = entries[canonical], !Self.isNull(node) else { return nil }
        guard let value = T(yaml: node) else {
            throw ConfigError(file: file?.path ?? "-", line: node.mark?.line,
                              "key '\(key)' must be \(T.configTypeDescription), got '\(node.scalar?.string ?? "a list")'")
        }
        return record(key, value, .file)
    }

    /// Like `resolve`, for a setting that must be given: an error naming the flag and the file when neither gives it.
    public mutating func require<T: ConfigRepresentable>(_ key: String, flag: T?) throws -> T {
        guard let value = try resolveOptional(key, flag: flag) else {
            throw ConfigError(file: file?.path ?? "-", line: nil, "no value for '\(key)': give --\(key.replacingOccurrences(of: "_", with: "-")) or set \(key): in the config file")
        }
        return value
    }

    private mutating func record<T: ConfigRepresentable>(_ key: String, _ value: T, _ origin: Origin) -> T {
        resolved[key] = value.configValue
        origins[key] = origin
        return value
    }

    /// Throws for the first key (by line) that the file sets and no `resolve` asked for.
    public func checkUnknownKeys() throws {
        let unknown = entries.filter { !used.contains($0.key) }.sorted { ($0.value.mark?.line ?? 0) < ($1.value.mark?.line ?? 0) }
        guard let (key, node) = unknown.first else { return }
        // Keys are compared in underscore form; they are shown as the options and config.yaml spell them.
        let known = used.sorted().map { $0.replacingOccurrences(of: "_", with: "-") }.joined(separator: ", ")
        throw ConfigError(file: file?.path ?? "-", line: node.mark?.line, "unknown key '\(key)' (known keys: \(known))")
    }

    /// The resolved settings as YAML, keys sorted; `load` reads it back to the same values.
    public func yamlText(header: String? = nil) throws -> String {
        let pairs = resolved.keys.sorted().map { (Node($0), resolved[$0]!.node) }
        var text = try Yams.serialize(node: Node(pairs), width: -1)
        if let header { text = header.split(separator: "\n", omittingEmptySubsequences: false).map { "# \($0)\n" }.joined() + text }
        return text
    }

    /// Checks for unknown keys, then writes the resolved settings as YAML to `url` (atomically), to keep beside the
    /// checkpoints and to rerun with `--config`.
    public func write(to url: URL, header: String? = nil) throws {
        try checkUnknownKeys()
        try AtomicFile.write(Data(try yamlText(header: header).utf8), to: url)
    }
}

/// A resolved setting, as written back to YAML.
public enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case bool(Bool), int(Int), double(Double), string(String), list([ConfigValue])

    public var description: String {
        switch self {
        case let .bool(b): return String(b)
        case let .int(i): return String(i)
        case let .double(d): return Self.yamlNumber(d)
        case let .string(s): return s
        case let .list(items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        }
    }

    /// A YAML 1.1 float: always with a `.` (so it reads back as a float), `.nan`, `.inf`, `-.inf`.
    static func yamlNumber(_ d: Double) -> String {
        if d.isNaN { return ".nan" }
        if d.isInfinite { return d < 0 ? "-.inf" : ".inf" }
        var s = "\(d)"
        if !s.contains(".") {
            if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) { s.insert(contentsOf: ".0", at: e) } else { s += ".0" }
        }
        return s
    }

    var node: Node {
        switch self {
        case .bool, .int, .double: return Node(description, .implicit, .plain)
        case let .string(s): return Node(s, Tag(.str), .doubleQuoted)
        case let .list(items): return Node(items.map(\.node), .implicit, .flow)
        }
    }
}

/// A type a setting can have. Int, Double, Float, String, Bool, arrays of these, and string-backed enums (declare
/// `extension MyEnum: ConfigRepresentable {}`) conform.
public protocol ConfigRepresentable {
    /// The value of a YAML node, or nil when the node does not hold one.
    init?(yaml: Node)
    var configValue: ConfigValue { get }
    /// For errors: "an integer", "a number", ...
    static var configTypeDescription: String { get }
}

extension Int: ConfigRepresentable {
    public init?(yaml: Node) { guard let s = yaml.scalar, let v = Int.construct(from: s) else { return nil }; self = v }
    public var configValue: ConfigValue { .int(self) }
    public static var configTypeDescription: String { "an integer" }
}

extension Double: ConfigRepresentable {
    public init?(yaml: Node) { guard let s = yaml.scalar, let v = Double.construct(from: s) else { return nil }; self = v }
    public var configValue: ConfigValue { .double(self) }
    public static var configTypeDescription: String { "a number" }
}

extension Float: ConfigRepresentable {
    public init?(yaml: Node) { guard let v = Double(yaml: yaml) else { return nil }; self = Float(v) }
    /// Through the shortest decimal form, so 0.9 is written `0.9`, not `0.8999999761581421`.
    public var configValue: ConfigValue { .double(Double("\(self)") ?? Double(self)) }
    public static var configTypeDescription: String { "a number" }
}

extension Bool: ConfigRepresentable {
    public init?(yaml: Node) { guard let s = yaml.scalar, let v = Bool.construct(from: s) else { return nil }; self = v }
    public var configValue: ConfigValue { .bool(self) }
    public static var configTypeDescription: String { "true or false" }
}

extension String: ConfigRepresentable {
    public init?(yaml: Node) { guard let s = yaml.scalar else { return nil }; self = s.string }
    public var configValue: ConfigValue { .string(self) }
    public static var configTypeDescription: String { "a string" }
}

extension Array: ConfigRepresentable where Element: ConfigRepresentable {
    public init?(yaml: Node) {
        guard case let .sequence(items) = yaml else { return nil }
        var out: [Element] = []
        for item in items {
            guard let v = Element(yaml: item) else { return nil }
            out.append(v)
        }
        self = out
    }
    public var configValue: ConfigValue { .list(map(\.configValue)) }
    public static var configTypeDescription: String { "a list of \(Element.configTypeDescription.replacingOccurrences(of: "an ", with: "").replacingOccurrences(of: "a ", with: ""))s" }
}

extension ConfigRepresentable where Self: RawRepresentable, RawValue == String {
    public init?(yaml: Node) { guard let s = yaml.scalar, let v = Self(rawValue: s.string) else { return nil }; self = v }
    public var configValue: ConfigValue { .string(rawValue) }
    public static var configTypeDescription: String { "a valid name" }
}

extension ConfigRepresentable where Self: RawRepresentable & CaseIterable, RawValue == String {
    public static var configTypeDescription: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A configuration error: one line, `FILE:LINE: what` (or `FILE: what`).
public struct ConfigError: Error, CustomStringConvertible, LocalizedError {
    public let file: String
    public let line: Int?
    public let what: String

    public init(file: String, line: Int?, _ what: String) {
        self.file = file
        self.line = line
        self.what = what
    }

    /// A Yams parse error as one line: its position and problem, without the snippet Yams appends.
    init(yaml error: YamlError, file: String) {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let context = context.map { "\($0.text) (line \($0.mark.line)): " } ?? ""
            self.init(file: file, line: mark.line, "malformed YAML: \(context)\(problem)")
        default:
            self.init(file: file, line: nil, "malformed YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
    }

    /// One line even when `what` quotes a value holding a newline (found by fuzzing: `flip: "0.01\n…"`).
    public var description: String { line.map { "\(file):\($0): \(oneLine(what))" } ?? "\(file): \(oneLine(what))" }
    public var errorDescription: String? { description }
}
