import ArgumentParser
import Benchmarks
import Foundation
import NN
import PCSformer

struct BenchConformerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformer",
        abstract: "The PC training step (512+224, loss, backward, AdamW) and CAM inference, against the sgemm peak.",
        discussion: """
        GFLOP/s counts convolutions and matrix products (forward and backward), so it is a lower bound. With \
        --torch FILE (from scripts/bench/bench_conformer_torch.py run on the same cores) prints the speed ratio. \
        Run from a release build.
        """)

    @Option(help: "Network (see `pcs-mpi help forward`).")
    var model: ModelVariant = .pc

    @Option(help: "Images per training step (2 per rank upstream).")
    var batch: Int = 2

    @Option(help: "Timed repetitions (best is reported), after one warm-up.")
    var steps: Int = 2

    @Flag(help: "Also profile one training step per op family (forward, backward, share inside oneDNN).")
    var profile = false

    @Flag(help: "Only inference (scale 1 and 2), so the peak memory printed is inference's.")
    var inferenceOnly = false

    @Option(help: "PyTorch results (JSON) to compare against.")
    var torch: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        _ = global.startWorld()
        var torchRows: [String: ConformerBenchmark.Result] = [:]
        if let torch {
            guard let data = FileManager.default.contents(atPath: torch),
                  let rows = try? JSONDecoder().decode([ConformerBenchmark.Result].self, from: data) else {
                throw ValidationError("--torch \(torch): not a results file from scripts/bench/bench_conformer_torch.py")
            }
            for row in rows { torchRows[row.what] = row }
        }
        let peaks = MachinePeaks.measure(sgemmSide: 2048)
        print("bench conformer: \(model.rawValue), \(ComputeThreads.current) thread(s)")
        print(peaks.description)
        for r in ConformerBenchmark(variant: model, batch: batch, steps: steps, inferenceOnly: inferenceOnly).run() {
            var line = r.what.padding(toLength: 38, withPad: " ", startingAt: 0)
            line += String(format: " %7.2f s %7.2f images/s %7.1f GFLOP/s (", r.seconds, r.imagesPerSecond, r.gflops)
                + peaks.share(r.gflops) + ")"
            if let t = torchRows[r.what] {
                line += String(format: "  %.2fx PyTorch", r.imagesPerSecond / t.imagesPerSecond)
                // The fractions above are only as good as the FLOP count: ours against torch.utils.flop_counter's.
                if let ours = r.flopsPerImage, let theirs = t.flopsPerImage, theirs > 0 {
                    line += String(format: "; FLOPs %.1f G, %.3f× PyTorch's count", ours / 1e9, ours / theirs)
                }
            }
            print(line)
        }
        print(String(format: "peak resident memory %.2f GiB (tensors at most %.2f GiB live)", PeakMemory.residentMiB().own / 1024,
                     Double(StoragePool.peakLiveBytes) / 1073741824))
        if profile && !inferenceOnly { printProfile() }
    }

    /// One profiled training step: each op family's forward and backward time, its share of the step and the
    /// share of its time inside oneDNN primitives; the rest is framework work (Swift loops, allocation, lookups).
    func printProfile() {
        let bench = ConformerBenchmark(variant: model, batch: batch, steps: steps, inferenceOnly: false)
        let (rows, optimizer, step) = bench.profileStep()
        let ms = { (ns: UInt64) in Double(ns) / 1e6 }
        print(String(format: "profile of one training step: %.0f ms (ops %.0f ms, AdamW %.0f ms, the rest %.0f ms)", ms(step),
                     ms(rows.reduce(0) { $0 + $1.totalNanoseconds }), ms(optimizer),
                     ms(step) - ms(rows.reduce(0) { $0 + $1.totalNanoseconds }) - ms(optimizer)))
        print("op family                                                  calls   fwd ms   bwd ms   share   in oneDNN   reorders")
        for r in rows where r.totalNanoseconds * 1000 >= step {
            print(r.family.padding(toLength: 58, withPad: " ", startingAt: 0)
                  + String(format: " %6d %8.1f %8.1f %6.1f%% %10.0f%% %10d", r.calls, ms(r.forwardNanoseconds), ms(r.backwardNanoseconds),
                           100 * Double(r.totalNanoseconds) / Double(step),
                           100 * Double(r.primitiveNanoseconds) / Double(max(r.totalNanoseconds, 1)), r.reorders))
        }
    }
}
