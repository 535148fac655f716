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

    /// Loads the model strictly and returns the rest.
    public static func read(_ url: URL, into model: Module, parameterNames: [String]) throws -> Loaded {
        let file = try HDF5File.open(url.path)
        try model.load(try StateDict.read(from: file), strict: true, source: url.path)
        guard let positionText = try file.stringAttribute("position"), let ranksText = try file.stringAttribute("ranks"),
              let step = try file.numericAttribute("step", as: Int64.self)?.first else {
            throw HDF5Error(file: url.path, what: "not a training checkpoint (no step, position or rank state)")
        }
        return Loaded(step: Int(step),
                      position: try JSONDecoder().decode(DistributedSampler.Position.self, from: Data(positionText.utf8)),
                      ranks: try JSONDecoder().decode([RankRandomState].self, from: Data(ranksText.utf8)),
                      optimizer: try OptimizerState.read(from: file, group: "/optimizer", names: parameterNames, buffers: ["m", "v"]))
    }

    /// The newest checkpoint in a run folder (by step), for `--resume auto`.
    public static func newest(in directory: URL) -> URL? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasPrefix("checkpoint-") && $0.hasSuffix(".h5") }.sorted().last
            .map { directory.appendingPathComponent($0) }
    }
}
