import ArgumentParser

@main
struct PCSMPI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcs-mpi",
        abstract: "PCSformer weakly supervised semantic segmentation, trained data-parallel over MPI on CPUs.",
        discussion: """
        Every command runs as one process or under `mpirun -n N`. Set-up and the whole pipeline are in README.md.
        """,
        subcommands: [SynthCommand.self, IngestCommand.self, TrainPCCommand.self, InferCAMCommand.self, EvalCommand.self, ExtractFeaturesCommand.self, ClusterCommand.self, TrainSPCommand.self, CRFLabelsCommand.self, TrainAffCommand.self, InferAffCommand.self, CSECommand.self, TrainDeepLabCommand.self, InferDeepLabCommand.self, PipelineCommand.self, CRFCommand.self, ForwardCommand.self, ConvertCommand.self, BenchCommand.self])

    static func main() { CommandRunner.run(PCSMPI.self) }
}
