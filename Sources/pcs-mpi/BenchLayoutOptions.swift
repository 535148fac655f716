import ArgumentParser

/// `--layouts`: the RANKS × THREADS splits of the same cores that `bench train` and `bench infer` compare.
struct BenchLayoutOptions: ParsableArguments {
    @Option(help: "Layouts as RANKSxTHREADS, comma-separated.")
    var layouts: String = "1x2,2x1"

    var parsed: [(ranks: Int, threads: Int)] {
        layouts.split(separator: ",").compactMap { item in
            let p = item.split(separator: "x").compactMap { Int($0) }
            return p.count == 2 && p[0] > 0 && p[1] > 0 ? (p[0], p[1]) : nil
        }
    }

    func validate() throws {
        guard !parsed.isEmpty, parsed.count == layouts.split(separator: ",").count else {
            throw ValidationError("--layouts must be RANKSxTHREADS[,…], e.g. 1x2,2x1; got '\(layouts)'")
        }
    }
}
