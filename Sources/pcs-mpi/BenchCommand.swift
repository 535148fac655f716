import ArgumentParser

/// `pcs-mpi bench`: benchmarks (speed and memory are measured here, never in tests). Build with `-c release`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: throughput, fraction of the sgemm peak measured in the same run, peak memory.",
        subcommands: [BenchIOCommand.self, BenchKernelsCommand.self, BenchConformerCommand.self, BenchTrainCommand.self, BenchInferCommand.self, BenchCRFCommand.self, BenchAffCommand.self, BenchDeepLabCommand.self])
}
