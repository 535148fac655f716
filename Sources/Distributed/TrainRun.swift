import Formats
import Foundation

/// One training run of any stage, as the `train-*` commands start it: the run folder, its resolved settings
/// (saved as `config.yaml` and inside every checkpoint), the metrics and TensorBoard reporter on rank 0, and the
/// choice of the checkpoint to resume from. The commands parse and validate their options, build the stage, and
/// hand both to `run`; everything else a trainer needs happens here, where tests can drive it without the binary.
public struct TrainRun {
    /// The run folder: checkpoints, metrics.jsonl, TensorBoard events, config.yaml.
    public var directory: URL
    /// The resolved settings; written as `config.yaml` and recorded in every checkpoint.
    public var settings: RunConfig
    /// A checkpoint path, `auto` for the newest complete one in `directory` (none: start fresh), or nil.
    public var resume: String?
    /// The command's name, for the log lines and the `config.yaml` header.
    public var command: String

    public init(directory: URL, settings: RunConfig, resume: String?, command: String) {
        self.directory = directory
        self.settings = settings
        self.resume = resume
        self.command = command
    }

    /// The checkpoint to resume from, the same on every rank. Collective. For `auto`, rank 0 looks and broadcasts
    /// its choice, so a stale directory cache on a shared file system cannot make ranks resume from different
    /// steps; a run folder it cannot read stops every rank (starting fresh would overwrite its checkpoints).
    public func resumePoint(world: Communicator) throws -> URL? {
        guard let resume else { return nil }
        guard resume == "auto" else { return URL(fileURLWithPath: resume) }
        var choice = ""
        if world.isRoot {
            do { choice = "path:" + (try TrainCheckpoint.newestComplete(in: directory)?.path ?? "") }
            catch { choice = "error:\(error)" }
        }
        choice = try world.broadcast(choice)
        if choice.hasPrefix("error:") {
            throw TrainingError(description: "--resume auto: " + choice.dropFirst("error:".count))
        }
        let path = String(choice.dropFirst("path:".count))
        return path.isEmpty ? nil : URL(fileURLWithPath: path)
    }

    /// Trains `stage` with the shared loop (`TrainLoop`) to the end, or to a stop request. Collective.
    @discardableResult
    public func run<Stage: TrainingStage>(_ stage: Stage, loop config: TrainLoopConfig, world: Communicator) throws -> TrainOutcome {
        let (directory, command) = (directory, command)
        LostRankWatch.recovery = {
            // Names only: a checkpoint with its final name is complete (written, synced, renamed), and the watcher
            // may not open HDF5 beside the loader thread; --resume auto verifies it before it is used.
            guard let newest = try? TrainCheckpoint.newest(in: directory) else {
                return "\(command): no checkpoint was written yet in \(directory.path): run it again to start afresh"
            }
            return "\(command): resume with --resume auto from \(newest.lastPathComponent) in \(directory.path), the newest complete checkpoint"
        }
        let loop = TrainLoop(stage: stage, config: config, world: world, runDirectory: directory)
        loop.configRecord = try settings.yamlText()
        let resume = try resumePoint(world: world)
        if world.isRoot {
            // Checkpoints and settings an interrupted run left half-written were never complete.
            let stale = AtomicFile.removeStaleTemporaries(in: directory) { TrainCheckpoint.step(ofFileName: $0) != nil || $0 == "config.yaml" }
            if stale > 0 { Log.info("\(command): removed \(stale) unfinished file(s) of an interrupted run in \(directory.path)") }
            do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
            catch { throw FileError(path: directory.path, what: "cannot create the run folder (\(error.localizedDescription))") }
            try settings.write(to: directory.appendingPathComponent("config.yaml"), header: "pcs-mpi \(command), resolved settings")
        }
        if world.isRoot, let resume, let step = TrainCheckpoint.step(ofFileName: resume.lastPathComponent) {
            try MetricsLog.truncate(directory: directory, after: step)
        }
        let reporter = world.isRoot ? try TrainReporter(directory: directory) : nil
        loop.report = { reporter?.record($0) }
        let outcome = try loop.run(resume: resume)
        reporter?.close()
        if case let .finished(steps) = outcome { Log.info("\(command): \(steps) steps done; checkpoints in \(directory.path)") }
        return outcome
    }
}
