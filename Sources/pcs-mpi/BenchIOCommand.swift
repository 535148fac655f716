import ArgumentParser
import Benchmarks
import Distributed
import Foundation
import NN
import Segmentation

struct BenchIOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "Image decode, ingest at 1 and 2 ranks (through mpirun), and shard read against raw disk read.",
        discussion: "Run it as one process (it launches mpirun itself), from a release build.")

    @Option(help: "Images in the generated benchmark dataset.")
    var images: Int = 1000

    @Option(help: "Image size as WIDTHxHEIGHT (VOC's images are about 500x375).")
    var size: String = "500x375"

    @Option(help: "Scratch folder (default: a new folder under the system's temporary folder, removed afterwards).")
    var dir: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard images >= 2 else { throw ValidationError("--images must be at least 2; got \(images)") }
        let parts = size.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 >= 32 }) else { throw ValidationError("--size must be WIDTHxHEIGHT, sides ≥ 32; got '\(size)'") }
    }

    func run() throws {
        let world = global.startWorld()
        guard world.size == 1 else { throw ValidationError("bench io launches mpirun itself; run it without mpirun") }
        let parts = size.split(separator: "x").compactMap { Int($0) }
        let scratch = dir.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("pcs-mpi-bench-io-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: scratch) } }
        let executable = MPILauncher.currentExecutable
        let peaks = MachinePeaks.measure()
        let bench = IOBenchmark(images: images, width: parts[0], height: parts[1], directory: scratch, executable: executable)
        let rows = try bench.run(world: world)
        print("bench io: \(images) images of \(size), \(ComputeThreads.current) thread(s) (I/O does no arithmetic to speak of)")
        print(peaks.description)
        for row in rows {
            let what = row.what.padding(toLength: 36, withPad: " ", startingAt: 0)
            let unit = row.unit.padding(toLength: 9, withPad: " ", startingAt: 0)
            print("  \(what) \(String(format: "%10.1f", row.rate)) \(unit) \(row.note)")
        }
        let memory = PeakMemory.residentMiB()
        print(String(format: "  peak memory: %.0f MiB (this process), %.0f MiB (largest mpirun child)", memory.own, memory.children))
    }
}
