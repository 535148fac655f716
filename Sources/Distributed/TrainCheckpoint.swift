import Formats
import Foundation
import NN

/// What each rank keeps in a checkpoint besides the shared model and optimiser: its random streams.
public struct RankRandomState: Codable, Equatable {
    /// The augmentation stream, as it was before the next batch to train was loaded.
    public var augmentation: SeededRandom
    /// The model's stream (drop path).
    public var model: SeededRandom
}

/// A training checkpoint in HDF5: `/model/<key>` (the state dict, readable by `StateDict.load` and `convert`),
/// `/optimizer/...`, and root attributes `step`, `epoch`, `position` (JSON), `ranks` (every rank's random
/// streams, JSON) and `config` (JSON). Rank 0 writes it under a temporary name and renames it.
public enum TrainCheckpoint {
    public static func fileName(step: Int) -> String { String(format: "checkpoint-%08d.h5", step) }

    public static func write(to url: URL, model: Module, optimizer: OptimizerState, step: Int,
                             position: DistributedSampler.Position, ranks: [RankRandomState], config: String) throws {
        try HDF5File.writeAtomically(to: url) { file in
            try model.stateDict().write(into: file)
            try optimizer.write(into: file, group: "/optimizer")
            try file.setAttribute("step", [Int64(step)])
            try file.setAttribute("epoch", [Int64(position.epoch)])
            try file.setAttribute("position", String(decoding: try JSONEncoder().encode(position), as: UTF8.self))
            try file.setAttribute("ranks", String(decoding: try JSONEncoder().encode(ranks), as: UTF8.self))
            try file.setAttribute("config", config)
        }
    }

    public struct Loaded {
        public var step: Int
        public var position: DistributedSampler.Position
        public var ranks: [RankRandomState]
        public var optimizer: OptimizerState
    }

    /// Loads the model strictly and returns the rest; the optimiser state must be `optimizer`'s kind.
    public static func read(_ url: URL, into model: Module, parameterNames: [String], optimizer: Optimizer.Type) throws -> Loaded {
        let file = try HDF5File.open(url.path)
        try model.load(try StateDict.read(from: file), strict: true, source: url.path)
        guard let positionText = try file.stringAttribute("position"), let ranksText = try file.stringAttribute("ranks"),
              let step = try file.numericAttribute("step", as: Int64.self)?.first else {
            throw HDF5Error(file: url.path, what: "not a training checkpoint (no step, position or rank state)")
        }
        return Loaded(step: Int(step),
                      position: try JSONDecoder().decode(DistributedSampler.Position.self, from: Data(positionText.utf8)),
                      ranks: try JSONDecoder().decode([RankRandomState].self, from: Data(ranksText.utf8)),
                      optimizer: try OptimizerState.read(from: file, group: "/optimizer", names: parameterNames, kind: optimizer.kind,
                                                                   buffers: optimizer.bufferNames))
    }

    /// The step of a checkpoint file name, or nil for any other file.
    static func step(ofFileName name: String) -> Int? {
        guard name.hasPrefix("checkpoint-"), name.hasSuffix(".h5") else { return nil }
        return Int(name.dropFirst("checkpoint-".count).dropLast(".h5".count))
    }

    /// The checkpoints of a run folder, oldest first. A folder that does not exist has none; one that cannot be
    /// read is an error (starting fresh there would overwrite its checkpoints).
    public static func all(in directory: URL) throws -> [URL] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { throw FileError(path: directory.path, what: "the run folder is a file") }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) }
        catch { throw FileError(path: directory.path, what: "cannot read the run folder (\(error.localizedDescription))") }
        return names.compactMap { name in step(ofFileName: name).map { ($0, name) } }.sorted { $0.0 < $1.0 }
            .map { directory.appendingPathComponent($0.1) }
    }

    /// The newest checkpoint in a run folder (by step).
    public static func newest(in directory: URL) throws -> URL? { try all(in: directory).last }

    /// Checks that `url` opens as a training checkpoint with its model, optimiser and resume state (what a crash
    /// or a disk fault during or after writing would break).
    public static func verify(_ url: URL) throws {
        let file = try HDF5File.open(url.path)
        guard file.exists("/model"), file.exists("/optimizer"), try file.stringAttribute("position") != nil,
              try file.stringAttribute("ranks") != nil, try file.numericAttribute("step", as: Int64.self)?.first != nil else {
            throw HDF5Error(file: url.path, what: "not a complete training checkpoint")
        }
    }

    /// For `--resume auto`: the newest checkpoint that verifies. Newer damaged ones are named in a warning and
    /// skipped; when every checkpoint is damaged the first problem is thrown (starting fresh would overwrite them).
    public static func newestComplete(in directory: URL) throws -> URL? {
        let candidates = try all(in: directory)
        var firstProblem: Error?
        for url in candidates.reversed() {
            do {
                try verify(url)
                if firstProblem != nil { Log.warning("resume: falling back to \(url.lastPathComponent), the newest complete checkpoint") }
                return url
            } catch {
                Log.warning("resume: \(error); skipping it")
                firstProblem = firstProblem ?? error
            }
        }
        if let firstProblem { throw firstProblem }
        return nil
    }

    /// Removes all but the `keep` newest checkpoints, never `final` (the run's last one) and not counting it.
    /// Called only after the newest checkpoint is complete, so a crash never leaves fewer than before.
    public static func prune(in directory: URL, keep: Int, except final: URL? = nil) throws {
        let candidates = try all(in: directory).filter { $0.lastPathComponent != final?.lastPathComponent }
        for old in candidates.dropLast(keep) {
            do { try FileManager.default.removeItem(at: old) }
            catch { throw FileError(path: old.path, what: "cannot remove an old checkpoint (--keep): \(error.localizedDescription)") }
        }
    }
}
