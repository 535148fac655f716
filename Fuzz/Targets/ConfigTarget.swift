import Distributed
import Foundation

extension FuzzTarget {
    /// A run's YAML settings (Yams' parser and composer, then the typed look-ups every `--config` goes through).
    static let yaml = FuzzTarget(name: "yaml", fileExtension: "yaml") { bytes, path in
        var config = try RunConfig.load(text: String(decoding: bytes, as: UTF8.self), file: URL(fileURLWithPath: path))
        _ = try config.resolve("lr", flag: nil as Double?, default: 0.01)
        _ = try config.resolve("epochs", flag: nil as Int?, default: 1)
        _ = try config.resolve("flip", flag: nil as Bool?, default: false)
        _ = try config.resolve("model", flag: nil as String?, default: "tiny-pc")
        _ = try config.resolve("scales", flag: nil as [Double]?, default: [1])
        _ = try config.yamlText()
        try config.checkUnknownKeys()
    }
}
