import Distributed
import Formats
import Foundation
import NN
import Yams

/// The pipeline's YAML: a `run` folder and one mapping of command-line options per stage, e.g.
///
///     run: runs/demo
///     synth: {images: 400, size: 160x120, classes: 5}
///     train-pc: {model: tiny-pc, epochs: 30}
///
/// Values are passed to the stage's command as `--key value` (`true` for a flag).
struct PipelineConfig {
    var run: String
    var sections: [String: [(key: String, value: String)]]
    let file: String

    static func load(_ path: String) throws -> PipelineConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, FileManager.default.fileExists(atPath: path) ? "cannot read as UTF-8 text" : "no such file")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw ConfigError(file: path, line: nil, "not valid YAML: \(error)") }
        guard let root = node?.mapping else { throw ConfigError(file: path, line: nil, "the top level must be a mapping of stage names") }
        var run: String?
        var sections: [String: [(key: String, value: String)]] = [:]
        for (keyNode, value) in root {
            guard let key = keyNode.string else { continue }
            let line = keyNode.mark.map { $0.line }
            if key == "run" {
                guard let folder = value.string else { throw ConfigError(file: path, line: line, "`run` must be a folder name") }
                run = folder
                continue
            }
            guard let mapping = value.mapping else { throw ConfigError(file: path, line: line, "`\(key)` must be a mapping of options") }
            sections[key] = try mapping.map { option, setting in
                guard let name = option.string, let scalar = setting.scalar?.string else {
                    throw ConfigError(file: path, line: option.mark.map { $0.line }, "`\(key)` options must be plain `name: value` pairs")
                }
                return (name, scalar)
            }
        }
        guard let run else { throw ConfigError(file: path, line: nil, "missing `run: FOLDER`") }
        return PipelineConfig(run: run, sections: sections, file: path)
    }

    /// `--key value` arguments of a section (flags: `key: true`), in the file's order.
    func arguments(_ section: String) -> [String] {
        (sections[section] ?? []).flatMap { entry -> [String] in
            switch entry.value.lowercased() {
            case "true": return ["--\(entry.key)"]
            case "false": return []
            default: return ["--\(entry.key)", entry.value]
            }
        }
    }

    /// A section's option value, if set.
    func value(_ section: String, _ key: String) -> String? {
        sections[section]?.first { $0.key == key }?.value
    }
}

/// `RUN/manifest.json`: for each finished stage, the commands that made its outputs and a stamp over those commands
/// and the stamps of the stages it read. A stage whose stamp is unchanged and whose outputs exist is skipped.
struct PipelineManifest: Codable {
    struct Entry: Codable {
        var stamp: String
        var commands: [[String]]
        var outputs: [String]
        var finished: String
    }

    var config: String = ""
    var stages: [String: Entry] = [:]

    static func url(_ run: URL) -> URL { run.appendingPathComponent("manifest.json") }

    /// The run's manifest; an empty one for a new run. One that exists but cannot be read is an error: treating it
    /// as empty would silently re-run every stage.
    static func read(_ run: URL) throws -> PipelineManifest {
        let path = url(run).path
        guard FileManager.default.fileExists(atPath: path) else { return PipelineManifest() }
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError(path: path, what: "cannot read the pipeline manifest") }
        do { return try JSONDecoder().decode(PipelineManifest.self, from: data) }
        catch { throw FileError(path: path, what: "not a pipeline manifest (corrupt JSON); remove it to re-run every stage") }
    }

    func write(_ run: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.url(run))
    }

    /// FNV-1a over the commands and the input stamps, as hex.
    static func stamp(commands: [[String]], inputs: [String]) -> String {
        var hash = FNV1a()
        for text in commands.map({ $0.joined(separator: "\u{1F}") }) + inputs { hash.mix(text) }
        return hash.hex
    }
}
