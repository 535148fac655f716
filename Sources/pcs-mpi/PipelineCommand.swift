import ArgumentParser
import Distributed
import Formats
import Foundation
import NN

/// `pcs-mpi pipeline`: the stages built so far, in order, each run in this process with the MPI world of the
/// pipeline (see `PipelineManifest` for when a stage is skipped).
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Run the whole pipeline from a YAML file: synth or ingest → train-pc → … → cse → train-deeplab → infer-deeplab → eval-final.",
        discussion: """
        The YAML file names the run folder (`run: DIR`) and gives each stage's options as a mapping, passed to \
        the stage's command as --key value (see configs/demo.yaml). Stages: \(PipelineCommand.stageNames.joined(separator: ", ")). \
        `synth` runs when the file has a synth section (`format: coco` writes and ingests COCO's layout); otherwise \
        `ingest` needs `root` and `lists` (VOC: comma-separated split lists) or `format: coco` with comma-separated \
        `images`, `annotations` and `names` (see configs/coco.yaml). The SP stages run when the file has a train-sp section; infer-cam-sp and eval-sp take the \
        infer-cam and eval sections' options unless they have their own. Outputs: RUN/synth, RUN/shards, \
        RUN/train-pc, RUN/cams-pc, RUN/eval-pc (eval.json, seeds/, contact-sheet.png), RUN/features, RUN/cluster, \
        RUN/train-sp, RUN/cams-sp, RUN/eval-sp, RUN/crf-labels (the la/ha maps), with a train-aff section RUN/train-aff, RUN/rw (random-walk labels), \
        RUN/pseudo-labels (CSE) and RUN/eval-labels, with a train-deeplab section RUN/train-deeplab, RUN/prediction \
        (DeepLab on the infer-deeplab split, default val, with and without the CRF) and RUN/eval-final (labels.json, \
        crf.json, contact-sheet.png), and RUN/manifest.json, which records each stage's commands and a stamp over them and \
        its inputs. A stage whose stamp is unchanged and whose outputs exist is skipped; an interrupted training \
        or inference stage resumes; --from STAGE redoes that stage and every later one. The run ends with a table \
        of every score the stages wrote.
        """)

    static let stageNames = ["synth", "ingest", "train-pc", "infer-cam", "eval",
                             "extract-features", "cluster", "train-sp", "infer-cam-sp", "eval-sp", "crf-labels",
                             "train-aff", "infer-aff", "cse", "eval-labels", "train-deeplab", "infer-deeplab", "eval-final"]

    @Option(help: "The pipeline's YAML file.")
    var config: String

    @Option(help: "Redo this stage and every later one, even if they are complete: \(PipelineCommand.stageNames.joined(separator: ", ")).")
    var from: String?

    @Option(help: "Stop after this stage.")
    var until: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        for (flag, stage) in [("--from", from), ("--until", until)] {
            if let stage, !Self.stageNames.contains(stage) {
                throw ValidationError("\(flag) must be one of \(Self.stageNames.joined(separator: ", ")); got '\(stage)'")
            }
        }
    }

    /// One stage: what it reads (earlier stages), what it writes (under the run folder), and its commands.
    struct Stage {
        var name: String
        var inputs: [String]
        var outputs: [String]
        /// An interrupted run of the same commands continues from its partial outputs instead of starting over.
        var resumable = false
        var commands: () throws -> [[String]]
    }

    /// The `ingest coco` commands when the data is in COCO's layout: a synth section with `format: coco` (its
    /// train and val instances files and saliency maps), or an ingest section with `format: coco` and
    /// comma-separated `images`, `annotations`, `names` and optionally `saliency` (one set each, e.g. train2014 and
    /// val2014 as train and val). Nil for VOC.
    func cocoIngest(_ file: PipelineConfig, synthetic: Bool, path: (String) -> String) throws -> [[String]]? {
        if synthetic {
            guard file.value("synth", "format") == "coco" else { return nil }
            return ["train", "val"].map { ["ingest", "coco", "--images", path("synth/images"), "--saliency", path("synth/saliency_map_DRS"),
                                           "--annotations", path("synth/annotations/instances_\($0).json"), "--name", $0] }
        }
        guard file.value("ingest", "format") == "coco" else { return nil }
        let lists = ["images", "annotations", "names"].map { (file.value("ingest", $0) ?? "").split(separator: ",").map(String.init) }
        let saliency = file.value("ingest", "saliency").map { $0.split(separator: ",").map(String.init) }
        guard !lists[0].isEmpty, lists.allSatisfy({ $0.count == lists[0].count }), (saliency?.count ?? lists[0].count) == lists[0].count else {
            throw ConfigError(file: file.file, line: nil,
                              "`ingest` with `format: coco` needs `images`, `annotations` and `names` (and `saliency`, if given), as many of each")
        }
        return lists[0].indices.map { i in
            ["ingest", "coco", "--images", lists[0][i], "--annotations", lists[1][i], "--name", lists[2][i]]
                + (saliency.map { ["--saliency", $0[i]] } ?? [])
        }
    }

    func stages(_ file: PipelineConfig, run: URL) -> [Stage] {
        let path = { (name: String) in run.appendingPathComponent(name).path }
        let split = split(file)
        let model = file.value("train-pc", "model") ?? "pc"
        let synthetic = file.sections["synth"] != nil
        func without(_ args: [String], _ keys: [String]) -> [String] {
            var out: [String] = [], skip = false
            for a in args {
                if skip { skip = false; continue }
                if keys.contains(where: { a == "--\($0)" }) { skip = true; continue }
                out.append(a)
            }
            return out
        }
        var list: [Stage] = []
        if synthetic {
            list.append(Stage(name: "synth", inputs: [], outputs: ["synth"]) {
                [["synth", "--out", path("synth")] + file.arguments("synth")]
            })
        }
        list.append(Stage(name: "ingest", inputs: synthetic ? ["synth"] : [], outputs: ["shards"]) {
            if let coco = try cocoIngest(file, synthetic: synthetic, path: path) {
                return coco.map { $0 + ["--out", path("shards")] + without(file.arguments("ingest"), ["format", "images", "annotations", "names", "saliency"]) }
            }
            let root = synthetic ? path("synth") : file.value("ingest", "root")
            let lists = synthetic
                ? ["train", "val"].map { path("synth/ImageSets/Segmentation/\($0).txt") }
                : (file.value("ingest", "lists") ?? "").split(separator: ",").map(String.init)
            guard let root, !lists.isEmpty else {
                throw ConfigError(file: file.file, line: nil, "without a synth section, `ingest` needs `root` and `lists`")
            }
            return lists.map { ["ingest", "voc", "--root", root, "--split", $0, "--out", path("shards")]
                + without(file.arguments("ingest"), ["root", "lists"]) }
        })
        list.append(Stage(name: "train-pc", inputs: ["ingest"], outputs: ["train-pc"], resumable: true) {
            [["train-pc", "--data", path("shards"), "--out", path("train-pc"), "--resume", "auto"] + file.arguments("train-pc")]
        })
        // CAM inference and evaluation, for the PC network and, with the SP stages, for the SP network.
        func inference(_ network: String, trained: String, model: String, extra: [String], section: String) -> Stage {
            let suffix = network == "pc" ? "" : "-\(network)"
            return Stage(name: "infer-cam\(suffix)", inputs: [trained], outputs: ["cams-\(network)"], resumable: true) {
                guard let weights = try TrainCheckpoint.newest(in: run.appendingPathComponent(trained)) else {
                    throw FileError(path: path(trained), what: "no checkpoint to run infer-cam with")
                }
                return [["infer-cam", "--data", path("shards"), "--split", split, "--out", path("cams-\(network)"), "--model", model,
                         "--weights", weights.path] + extra + without(file.arguments(section), ["split"])]
            }
        }
        func evaluation(_ network: String, section: String) -> Stage {
            let suffix = network == "pc" ? "" : "-\(network)"
            return Stage(name: "eval\(suffix)", inputs: ["infer-cam\(suffix)"], outputs: ["eval-\(network)"]) {
                [["eval", "--data", path("shards"), "--split", split, "--predictions", path("cams-\(network)"),
                  "--out", path("eval-\(network)/eval.json"), "--seeds", path("eval-\(network)/seeds"),
                  "--contact-sheet", path("eval-\(network)/contact-sheet.png")] + file.arguments(section)]
            }
        }
        list.append(inference("pc", trained: "train-pc", model: model, extra: [], section: "infer-cam"))
        list.append(evaluation("pc", section: "eval"))
        guard file.sections["train-sp"] != nil else { return list }

        let trainSplit = file.value("train-pc", "split") ?? "train"
        let k = file.value("cluster", "k") ?? "10"
        let spModel = file.value("train-sp", "model") ?? "sp"
        list.append(Stage(name: "extract-features", inputs: ["train-pc"], outputs: ["features"]) {
            guard let weights = try TrainCheckpoint.newest(in: run.appendingPathComponent("train-pc")) else {
                throw FileError(path: path("train-pc"), what: "no checkpoint to extract features with")
            }
            return [["extract-features", "--data", path("shards"), "--split", trainSplit, "--model", model, "--weights", weights.path,
                     "--out", path("features/features.h5")] + file.arguments("extract-features")]
        })
        list.append(Stage(name: "cluster", inputs: ["extract-features"], outputs: ["cluster"]) {
            [["cluster", "--data", path("shards"), "--split", trainSplit, "--features", path("features/features.h5"),
              "--out", path("cluster/sub_labels.h5")] + file.arguments("cluster")]
        })
        list.append(Stage(name: "train-sp", inputs: ["cluster"], outputs: ["train-sp"], resumable: true) {
            [["train-sp", "--data", path("shards"), "--split", trainSplit, "--labels", path("cluster/sub_labels.h5"),
              "--out", path("train-sp"), "--resume", "auto"] + file.arguments("train-sp")]
        })
        list.append(inference("sp", trained: "train-sp", model: spModel, extra: ["--k", k],
                              section: file.sections["infer-cam-sp"] != nil ? "infer-cam-sp" : "infer-cam"))
        list.append(evaluation("sp", section: file.sections["eval-sp"] != nil ? "eval-sp" : "eval"))
        // The la/ha maps AffinityNet trains on (spec §7.3), from the SP CAMs.
        list.append(Stage(name: "crf-labels", inputs: ["infer-cam-sp"], outputs: ["crf-labels"], resumable: true) {
            [["crf-labels", "--data", path("shards"), "--split", split, "--cams", path("cams-sp"), "--out", path("crf-labels")]
                + file.arguments("crf-labels")]
        })
        guard file.sections["train-aff"] != nil else { return list }

        // AffinityNet on the la/ha maps, its random walk from the SP CAMs, CSE, and the scores of both label sets.
        let affModel = file.value("train-aff", "model") ?? "aff"
        list.append(Stage(name: "train-aff", inputs: ["crf-labels"], outputs: ["train-aff"], resumable: true) {
            [["train-aff", "--data", path("shards"), "--split", split, "--labels", path("crf-labels"), "--out", path("train-aff"),
              "--resume", "auto"] + file.arguments("train-aff")]
        })
        list.append(Stage(name: "infer-aff", inputs: ["train-aff"], outputs: ["rw"], resumable: true) {
            guard let weights = try TrainCheckpoint.newest(in: run.appendingPathComponent("train-aff")) else {
                throw FileError(path: path("train-aff"), what: "no checkpoint to run infer-aff with")
            }
            return [["infer-aff", "--data", path("shards"), "--split", split, "--cams", path("cams-sp"), "--weights", weights.path,
                     "--model", affModel, "--out", path("rw")] + file.arguments("infer-aff")]
        })
        list.append(Stage(name: "cse", inputs: ["infer-aff"], outputs: ["pseudo-labels"], resumable: true) {
            [["cse", "--data", path("shards"), "--split", split, "--attention", path("cams-sp"), "--rw", path("rw"),
              "--out", path("pseudo-labels")] + file.arguments("cse")]
        })
        list.append(Stage(name: "eval-labels", inputs: ["cse"], outputs: ["eval-labels"]) {
            ["rw", "pseudo-labels"].map { set in
                ["eval", "--data", path("shards"), "--split", split, "--type", "labels", "--predictions", path(set),
                 "--out", path("eval-labels/\(set).json")]
            }
        })
        guard file.sections["train-deeplab"] != nil else { return list }

        // DeepLab-v2 on the CSE pseudo labels, then its predictions on the evaluation split (images no stage
        // trained on), scored without and with the CRF.
        let deepLabModel = file.value("train-deeplab", "model") ?? "deeplab"
        let evalSplit = file.value("infer-deeplab", "split") ?? "val"
        list.append(Stage(name: "train-deeplab", inputs: ["cse"], outputs: ["train-deeplab"], resumable: true) {
            [["train-deeplab", "--data", path("shards"), "--split", split, "--labels", path("pseudo-labels"),
              "--out", path("train-deeplab"), "--resume", "auto"] + file.arguments("train-deeplab")]
        })
        list.append(Stage(name: "infer-deeplab", inputs: ["train-deeplab"], outputs: ["prediction"], resumable: true) {
            guard let weights = try TrainCheckpoint.newest(in: run.appendingPathComponent("train-deeplab")) else {
                throw FileError(path: path("train-deeplab"), what: "no checkpoint to run infer-deeplab with")
            }
            return [["infer-deeplab", "--data", path("shards"), "--split", evalSplit, "--weights", weights.path, "--model", deepLabModel,
                     "--out", path("prediction"), "--crf"] + without(file.arguments("infer-deeplab"), ["split"])]
        })
        list.append(Stage(name: "eval-final", inputs: ["infer-deeplab"], outputs: ["eval-final"]) {
            [InferDeepLabCommand.labelsMap, InferDeepLabCommand.crfMap].map { map in
                ["eval", "--data", path("shards"), "--split", evalSplit, "--type", "labels", "--predictions", path("prediction"),
                 "--map", map, "--out", path("eval-final/\(map).json")] + (map == InferDeepLabCommand.crfMap
                    ? ["--contact-sheet", path("eval-final/contact-sheet.png")] : [])
            }
        })
        return list
    }

    func run() throws {
        let world = global.startWorld()
        let file = try PipelineConfig.load(config)
        let run = URL(fileURLWithPath: file.run)
        let known = Set(Self.stageNames)
        if let unknown = file.sections.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigError(file: config, line: nil, "unknown stage `\(unknown)`; stages are \(Self.stageNames.joined(separator: ", "))")
        }
        if world.isRoot { try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true) }
        world.barrier()
        // Rank 0 reads the manifest and the run folder and decides; the others follow its broadcast decision, so a
        // stale directory cache on a shared file system cannot make ranks disagree about what runs.
        var manifest = try PipelineManifest.read(run)
        manifest.config = (try? String(contentsOfFile: config, encoding: .utf8)) ?? ""
        let all = stages(file, run: run)
        for (flag, name) in [("--from", from), ("--until", until)] {
            if let name, !all.contains(where: { $0.name == name }) {
                throw ConfigError(file: config, line: nil, "\(flag) \(name): not a stage of this pipeline (\(all.map(\.name).joined(separator: ", ")))")
            }
        }
        let firstForced = from.flatMap { name in all.firstIndex { $0.name == name } } ?? all.count
        var stamps: [String: String] = [:]
        for (position, stage) in all.enumerated() {
            let decision: Decision = try world.broadcast(world.isRoot
                ? try decide(stage, forced: position >= firstForced, run: run, manifest: manifest, stamps: stamps)
                : Decision(commands: [], stamp: "", action: .skip))
            stamps[stage.name] = decision.stamp
            switch decision.action {
            case .skip:
                if world.isRoot { Log.info("pipeline: \(stage.name) is up to date (finished \(manifest.stages[stage.name]?.finished ?? "?")); skipped") }
            case .run, .resume:
                if world.isRoot {
                    if decision.action == .run {
                        for output in stage.outputs { try? FileManager.default.removeItem(at: run.appendingPathComponent(output)) }
                    }
                    manifest.stages[stage.name] = PipelineManifest.Entry(stamp: decision.stamp, commands: decision.commands,
                                                                         outputs: stage.outputs, finished: "")
                    try manifest.write(run)
                    Log.info("pipeline: \(stage.name)\(decision.action == .resume ? " (resuming)" : "")")
                }
                world.barrier()
                for arguments in decision.commands { try runStage(stage.name, arguments) }
                if world.isRoot {
                    manifest.stages[stage.name]?.finished = ISO8601DateFormatter().string(from: Date())
                    try manifest.write(run)
                }
                world.barrier()
            }
            if stage.name == until { break }
        }
        if world.isRoot, let table = Self.summary(run: run, trainSplit: split(file), evalSplit: file.value("infer-deeplab", "split") ?? "val") {
            print(table)
        }
    }

    private func split(_ file: PipelineConfig) -> String { file.value("infer-cam", "split") ?? "train" }

    /// The run's results as one table: every evaluation report the stages wrote (seeds, label sets, DeepLab on the
    /// evaluation split), mIoU in upstream's convention (all classes) and deeplab-pytorch's (classes present),
    /// and the share of pixels a label set leaves ignored. Nil when no stage has been scored yet.
    static func summary(run: URL, trainSplit: String, evalSplit: String) -> String? {
        let rows: [(String, String, String)] = [
            ("PC seeds", "eval-pc/eval.json", trainSplit), ("SP seeds", "eval-sp/eval.json", trainSplit),
            ("random-walk labels", "eval-labels/rw.json", trainSplit), ("CSE pseudo labels", "eval-labels/pseudo-labels.json", trainSplit),
            ("DeepLab", "eval-final/labels.json", evalSplit), ("DeepLab + CRF", "eval-final/crf.json", evalSplit),
        ]
        var lines = [String(format: "%-20@ %-6@ %9@ %14@ %8@", "result" as NSString, "split" as NSString, "mIoU" as NSString,
                            "mIoU (present)" as NSString, "ignored" as NSString)]
        for (name, file, split) in rows {
            guard let data = FileManager.default.contents(atPath: run.appendingPathComponent(file).path),
                  let report = try? JSONDecoder().decode(EvalSummary.self, from: data) else { continue }
            let present = report.result.deeplabMeanIoU.map { String(format: "%.2f%%", 100 * $0) } ?? "-"
            let ignored = report.ignoredShare.map { String(format: "%.1f%%", 100 * $0) } ?? "-"
            lines.append(String(format: "%-20@ %-6@ %8.2f%% %14@ %8@", name as NSString, split as NSString, 100 * report.result.meanIoU,
                                present as NSString, ignored as NSString))
        }
        return lines.count > 1 ? "pipeline results (\(run.path)):\n" + lines.joined(separator: "\n") : nil
    }

    /// What rank 0 decided for one stage.
    struct Decision: Codable {
        enum Action: String, Codable { case skip, run, resume }
        var commands: [[String]]
        var stamp: String
        var action: Action
    }

    /// The stage's commands and stamp, and whether it is skipped (stamp unchanged, finished, outputs present),
    /// resumed (an interrupted train or inference stage with the same stamp) or run afresh. The stamp covers the
    /// commands and, for each input stage, its stamp and when it finished: a stage that ran again (even with the
    /// same command, e.g. after its folder was deleted) makes everything after it run again.
    func decide(_ stage: Stage, forced: Bool, run: URL, manifest: PipelineManifest, stamps: [String: String]) throws -> Decision {
        let commands = try stage.commands()
        let stamp = PipelineManifest.stamp(commands: commands, inputs: stage.inputs.map {
            (stamps[$0] ?? "") + "@" + (manifest.stages[$0]?.finished ?? "")
        })
        let outputsExist = stage.outputs.allSatisfy { FileManager.default.fileExists(atPath: run.appendingPathComponent($0).path) }
        let previous = manifest.stages[stage.name]
        if !forced, let previous, previous.stamp == stamp, !previous.finished.isEmpty, outputsExist {
            return Decision(commands: commands, stamp: stamp, action: .skip)
        }
        let resume = !forced && stage.resumable && previous?.stamp == stamp
        return Decision(commands: commands, stamp: stamp, action: resume ? .resume : .run)
    }

    struct EvalSummary: Decodable {
        struct Result: Decodable { var meanIoU: Double; var deeplabMeanIoU: Double? }
        var threshold: Double?
        var result: Result
        var ignoredShare: Double?
    }

    /// Parses and runs one stage command in this process, with the pipeline's global options.
    private func runStage(_ name: String, _ arguments: [String]) throws {
        let globals = ["--log-level", global.logLevel.rawValue, "--conv-algorithm", global.convAlgorithm.rawValue] + (global.threads.map { ["--threads", String($0)] } ?? [])
        var command: ParsableCommand
        do {
            command = try PCSMPI.parseAsRoot(arguments + globals)
        } catch {
            throw ConfigError(file: config, line: nil, "stage \(name): " + PCSMPI.message(for: error)
                .split(whereSeparator: \.isNewline).joined(separator: "; "))
        }
        try command.run()
    }
}
