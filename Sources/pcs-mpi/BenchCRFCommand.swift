import ArgumentParser
import Benchmarks
import Foundation
import NN
import Segmentation

/// `pcs-mpi bench crf`: dense-CRF images/s per preset and thread count, beside pydensecrf's.
struct BenchCRFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf",
        abstract: "Dense CRF images/s (500x375, 21 labels, 10 iterations) for each preset at each thread count, against pydensecrf.",
        discussion: """
        Each call is what the pipeline does per image: the model, the unary, the Gaussian and bilateral kernels, \
        10 mean-field iterations, the argmax. For the same inputs on both sides run \
        `python scripts/bench/bench_crf_pydensecrf.py --save-inputs DIR --json PY.json` first and pass \
        --inputs DIR --pydensecrf PY.json: the ratio per core (1 thread against 1 process) and per machine (2 threads \
        against 2 processes) is printed. Each row also splits the time per image into the phases: building the two \
        lattices (with D^{−½}), the unary, the mean-field iterations, the argmax. The filtering is memory-bound: the \
        memcpy rate measured here is the yardstick.
        """)

    @Option(help: "Timed calls per preset and thread count (after one untimed call).")
    var images: Int = 4

    @Option(help: "Thread counts, comma-separated.")
    var threadCounts: String = "1,2"

    @Option(help: "Inputs saved by bench_crf_pydensecrf.py --save-inputs (default: a generated scene).")
    var inputs: String?

    @Option(help: "pydensecrf's results (JSON from bench_crf_pydensecrf.py --json) to compare against.")
    var pydensecrf: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard images >= 1 else { throw ValidationError("--images must be at least 1") }
        guard !parsedThreads.isEmpty, parsedThreads.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--thread-counts must be positive integers, e.g. 1,2; got '\(threadCounts)'")
        }
    }

    var parsedThreads: [Int] { threadCounts.split(separator: ",").compactMap { Int($0) } }

    struct PyResult: Codable {
        var preset: String
        var processes: Int
        var images_per_s: Double
    }

    func run() throws {
        global.apply()
        var reference: [String: Double] = [:]
        if let pydensecrf {
            guard let data = FileManager.default.contents(atPath: pydensecrf),
                  let rows = try? JSONDecoder().decode([PyResult].self, from: data) else {
                throw ValidationError("--pydensecrf \(pydensecrf): not a results file from scripts/bench/bench_crf_pydensecrf.py --json")
            }
            for row in rows { reference["\(row.preset)/\(row.processes)"] = row.images_per_s }
        }
        let data = try inputs.map { try CRFBenchmark.load(URL(fileURLWithPath: $0)) } ?? CRFBenchmark.generated()
        let bench = CRFBenchmark(images: images)
        print("bench crf: \(data.width)x\(data.height) RGB, \(data.labels) labels, 10 iterations, \(inputs ?? "generated scene"); memcpy \(String(format: "%.1f", KernelBenchmark.memcpyRate())) GB/s")
        print(MachinePeaks.measure().description + " (the CRF is memory-bound: memcpy is its yardstick)")
        print("preset        threads   images/s   ms/image   speed-up   " + CRFBenchmark.phases.map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined(separator: " ")
              + (pydensecrf != nil ? "   vs pydensecrf (same cores)" : ""))
        for preset in CRFPreset.allCases {
            var single: Double?
            for threads in parsedThreads {
                let r = try bench.measure(data, preset: preset, threads: threads)
                if single == nil { single = r.imagesPerSecond }
                var line = preset.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " %8d %10.2f %10.1f %9.2fx", threads, r.imagesPerSecond,
                                  1000 / r.imagesPerSecond, r.imagesPerSecond / single!)
                line += "  " + CRFBenchmark.phases.map { String(format: "%7.1f ms", r.phaseMilliseconds[$0] ?? 0) }.joined(separator: " ")
                if let py = reference["\(preset.rawValue)/\(threads)"] { line += String(format: "   %.2fx (%.2f images/s)", r.imagesPerSecond / py, py) }
                print(line)
            }
        }
        print(String(format: "peak resident memory %.0f MiB", PeakMemory.residentMiB().own))
    }
}
