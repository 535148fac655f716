import ArgumentParser
import Benchmarks
import Distributed
import Formats
import Foundation
import NN

extension KernelBenchmark.Layers: ExpressibleByArgument {}

struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Conformer-S's layers at 512x512, batch 2 (or the 3x3 layers of ResNet-38d and DeepLab), forward and backward, against the FMA and sgemm peaks.",
        discussion: """
        Compute-bound layers: GFLOP/s and % of cblas_sgemm measured in the same run (backward counts 2x the \
        forward FLOPs: data and weight gradients). Memory-bound layers: GB/s against memcpy. `reorders` counts the \
        activation layout conversions one step needed; in-oneDNN is the share of the time spent inside oneDNN \
        primitives (the rest is the framework's own work). With --torch FILE (from scripts/bench/bench_kernels_torch.py \
        run on the same cores), prints the ratio to PyTorch. Run from a release build.
        """)

    @Option(help: "Timed repetitions per layer (best is reported).")
    var repeats: Int = 5

    @Option(help: "Batch size (Conformer-S's layers).")
    var batch: Int = 2

    @Option(help: "Which layers: conformer (Conformer-S at 512x512), or dilated (the 3x3 layers of ResNet-38d at crop 448, batch 2, and DeepLab-v2 at crop 321, batch 5, dilated ones included; compare with --conv-algorithm direct).")
    var layers: KernelBenchmark.Layers = .conformer

    @Option(help: "PyTorch results (JSON from scripts/bench/bench_kernels_torch.py) to compare against.")
    var torch: String?

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1; got \(repeats)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1; got \(batch)") }
    }

    func run() throws {
        _ = global.startWorld()
        var torchRows: [String: KernelBenchmark.Result] = [:]
        if let torch {
            guard let data = FileManager.default.contents(atPath: torch),
                  let rows = try? JSONDecoder().decode([KernelBenchmark.Result].self, from: data) else {
                throw ValidationError("--torch \(torch): not a results file from scripts/bench/bench_kernels_torch.py")
            }
            for row in rows { torchRows[row.layer] = row }
        }
        let peaks = MachinePeaks.measure(sgemmSide: 2048)
        let copy = KernelBenchmark.memcpyRate()
        print("bench kernels: \(ComputeThreads.current) thread(s), oneDNN \(ComputeThreads.oneDNNVersion), batch \(batch)")
        print(peaks.description + String(format: "; memcpy %.1f GB/s", copy))
        print("layer                              fwd ms   bwd ms   fwd rate  %FMA %sgemm   bwd rate  %FMA %sgemm reorders in-oneDNN"
              + (torch != nil ? "  vs torch fwd/bwd  FLOP count / torch's fwd/bwd" : ""))
        StoragePool.resetPeak()
        let results = KernelBenchmark(repeats: repeats, batch: batch, layers: layers).run { r in
            // Memory-bound layers (GB/s) are put against memcpy, in the %sgemm column.
            let (fma, sgemm) = r.unit == "GFLOP/s" ? (peaks.fma, peaks.sgemm) : (.nan, copy)
            var line = r.layer.padding(toLength: 33, withPad: " ", startingAt: 0)
            func percent(_ rate: Double, _ of: Double) -> String { of.isNaN ? "    -" : String(format: "%4.0f%%", 100 * rate / of) }
            line += String(format: " %8.2f %8.2f %8.1f ", r.forwardMs, r.backwardMs, r.forwardRate) + percent(r.forwardRate, fma)
                + String(format: " %5.0f%% %9.1f ", 100 * r.forwardRate / sgemm, r.backwardRate) + percent(r.backwardRate, fma)
                + String(format: " %5.0f%% %8d %8.0f%%", 100 * r.backwardRate / sgemm, r.reorders, 100 * r.primitiveShare)
            line += " " + (r.unit == "GFLOP/s" ? "" : "(GB/s)")
            if let t = torchRows[r.layer] {
                line += String(format: "  %.2fx / %.2fx", t.forwardMs / r.forwardMs, t.backwardMs / r.backwardMs)
                // The GFLOP/s are only as good as the FLOP count: ours against torch.utils.flop_counter's.
                if let f = r.forwardFlops, let b = r.backwardFlops, let tf = t.forwardFlops, let tb = t.backwardFlops, tf > 0, tb > 0 {
                    line += String(format: "  %.3f / %.3f", f / tf, b / tb)
                }
            }
            print(line)
        }
        print(String(format: "peak tensor memory %.0f MiB, peak resident %.0f MiB", Double(StoragePool.peakLiveBytes) / 1048576, PeakMemory.residentMiB().own))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted]
            try AtomicFile.write(try encoder.encode(results), to: URL(fileURLWithPath: json))
        }
    }
}
