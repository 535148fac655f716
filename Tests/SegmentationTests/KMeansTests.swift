import Formats
import Foundation
import NN
@testable import Segmentation
import SyntheticData
import XCTest

/// The scikit-learn 1.4 fixture of `Fixtures/kmeans` (see scripts/fixtures/make_kmeans_fixtures.py).
enum KMeansFixture {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kmeans/kmeans.h5")

    static func open() throws -> HDF5File { try HDF5File.open(url.path) }

    /// A float32 matrix: values, rows, columns.
    static func matrix(_ file: HDF5File, _ name: String) throws -> (values: [Float], rows: Int, columns: Int) {
        let (values, shape) = try file.read(name, as: Float.self)
        precondition(shape.count == 2, "\(name): expected a matrix, got shape \(shape)")
        return (values, shape[0], shape[1])
    }

    static func ints(_ file: HDF5File, _ name: String) throws -> [Int] { try file.read(name, as: Int64.self).values.map { Int($0) } }
    static func scalar(_ file: HDF5File, _ name: String) throws -> Double { try file.read(name, as: Double.self).values[0] }
}

final class KMeansTests: XCTestCase {
    /// Whether `a` and `b` are the same partition: a bijection between their label ids maps one onto the other.
    private func samePartition(_ a: [Int], _ b: [Int]) -> Bool {
        guard a.count == b.count else { return false }
        var forward: [Int: Int] = [:], backward: [Int: Int] = [:]
        for (x, y) in zip(a, b) {
            if forward[x, default: y] != y || backward[y, default: x] != x { return false }
            forward[x] = y
            backward[y] = x
        }
        return true
    }

    /// Naive checks every result must pass: each label is the nearest centre (exact, Double), and the reported
    /// inertia is the sum of those distances.
    private func assertConsistent(_ r: KMeansResult, _ data: [Float], rows: Int, columns: Int, k: Int,
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.labels.count, rows, file: file, line: line)
        XCTAssertEqual(r.centers.count, k * columns, file: file, line: line)
        var inertia = 0.0
        for i in 0..<rows {
            let d = (0..<k).map { j in
                (0..<columns).reduce(0.0) { s, f in
                    let t = Double(data[i * columns + f]) - Double(r.centers[j * columns + f])
                    return s + t * t
                }
            }
            let nearest = d.indices.min { d[$0] < d[$1] }!
            XCTAssertEqual(d[r.labels[i]], d[nearest], "sample \(i) is not labelled with its nearest centre", file: file, line: line)
            inertia += d[r.labels[i]]
        }
        XCTAssertEqual(r.inertia, inertia, accuracy: 1e-9 * inertia, file: file, line: line)
    }

    func testSeparableBlobsGiveScikitLearnsPartition() throws {
        let file = try KMeansFixture.open()
        defer { file.close() }
        XCTAssertEqual(try file.stringAttribute("sklearn_version"), "1.4.2")
        let (x, n, d) = try KMeansFixture.matrix(file, "blobs/data")
        let expected = try KMeansFixture.ints(file, "blobs/labels")
        let inertia = try KMeansFixture.scalar(file, "blobs/inertia")
        for seed: UInt64 in [0, 1, 2] {
            let r = KMeans(k: 5, seed: seed).fit(x, rows: n, columns: d)
            XCTAssertTrue(samePartition(r.labels, expected), "seed \(seed): partition differs from scikit-learn's")
            XCTAssertEqual(r.inertia, inertia, accuracy: 1e-5 * inertia, "seed \(seed)")
            assertConsistent(r, x, rows: n, columns: d, k: 5)
        }
    }

    func testHardDataTenRestartsWithinOnePercentOfScikitLearn() throws {
        let file = try KMeansFixture.open()
        defer { file.close() }
        let (x, n, d) = try KMeansFixture.matrix(file, "hard/data")
        let reference = try KMeansFixture.scalar(file, "hard/inertia_n_init_10")
        let r = KMeans(k: 10, restarts: 10, seed: 0).fit(x, rows: n, columns: d)
        XCTAssertLessThanOrEqual(r.inertia, 1.01 * reference, "10 restarts: inertia \(r.inertia), scikit-learn n_init=10 \(reference)")
        assertConsistent(r, x, rows: n, columns: d, k: 10)
        // Restart 0 draws from the same stream as a single-restart fit, so keeping the best can only lower the inertia.
        let single = KMeans(k: 10, restarts: 1, seed: 0).fit(x, rows: n, columns: d)
        XCTAssertLessThanOrEqual(r.inertia, single.inertia)
        XCTAssertEqual(Set(r.labels).count, 10, "every cluster should hold samples")
    }

    /// From the same initial centres there is no randomness: Lloyd must retrace scikit-learn's iterations, both when
    /// the labels stop changing (tol 1e-4) and when the centre shift falls under the tolerance first (tol 1, which
    /// also exercises the final E-step).
    func testFixedInitialCentresRetraceScikitLearnsLloyd() throws {
        let file = try KMeansFixture.open()
        defer { file.close() }
        let (x, n, d) = try KMeansFixture.matrix(file, "hard/data")
        let (initial, k, _) = try KMeansFixture.matrix(file, "fixed_init/init")
        for (name, tol) in [("tol_1e-4", 1e-4), ("tol_1", 1.0)] {
            let r = KMeans(k: k, tolerance: tol, seed: 0).fit(x, rows: n, columns: d, initialCenters: initial)
            XCTAssertEqual(r.labels, try KMeansFixture.ints(file, "fixed_init/\(name)/labels"), name)
            XCTAssertEqual(r.iterations, try KMeansFixture.ints(file, "fixed_init/\(name)/n_iter")[0], name)
            let centers = try KMeansFixture.matrix(file, "fixed_init/\(name)/centers").values
            XCTAssertEqual(zip(r.centers, centers).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-5, name)
            let inertia = try KMeansFixture.scalar(file, "fixed_init/\(name)/inertia")
            XCTAssertEqual(r.inertia, inertia, accuracy: 1e-5 * inertia, name)
            assertConsistent(r, x, rows: n, columns: d, k: k)
        }
        XCTAssertEqual(try KMeansFixture.ints(file, "fixed_init/tol_1/strict"), [0], "the tol 1 case must stop on the shift")
    }

    /// Clusters left empty by the first E-step take the samples farthest from their centres (see the fixture script
    /// for the worked cases: one empty cluster, then two, filled farthest sample first).
    func testEmptyClustersAreRelocatedAsScikitLearn() throws {
        let file = try KMeansFixture.open()
        defer { file.close() }
        for name in ["empty", "empty_two"] {
            let (x, n, d) = try KMeansFixture.matrix(file, "\(name)/data")
            let (initial, k, _) = try KMeansFixture.matrix(file, "\(name)/init")
            let r = KMeans(k: k, seed: 0).fit(x, rows: n, columns: d, initialCenters: initial)
            XCTAssertEqual(r.labels, try KMeansFixture.ints(file, "\(name)/labels"), name)
            XCTAssertEqual(r.centers, try KMeansFixture.matrix(file, "\(name)/centers").values, name)
            XCTAssertEqual(r.iterations, try KMeansFixture.ints(file, "\(name)/n_iter")[0], name)
            XCTAssertEqual(r.inertia, try KMeansFixture.scalar(file, "\(name)/inertia"), accuracy: 1e-9, name)
        }
    }

    func testSameSeedSameResultDifferentSeedsDiffer() throws {
        let file = try KMeansFixture.open()
        defer { file.close() }
        let (x, n, d) = try KMeansFixture.matrix(file, "hard/data")
        let first = KMeans(k: 10, restarts: 2, seed: 7).fit(x, rows: n, columns: d)
        let again = KMeans(k: 10, restarts: 2, seed: 7).fit(x, rows: n, columns: d)
        XCTAssertEqual(first, again)
        // Data without structure and k = 10: another seed gives another partition (at least one of five must).
        let others = (8...12).map { KMeans(k: 10, restarts: 2, seed: UInt64($0)).fit(x, rows: n, columns: d) }
        XCTAssertTrue(others.contains { !samePartition($0.labels, first.labels) }, "the seed does not reach the draws")
    }

    /// A class's clusters must not depend on the threads of the rank that computes it (sgemm blocking included).
    /// 192 columns, so that the M-step's column split runs too.
    func testResultDoesNotDependOnThreadCount() {
        let (n, d) = (400, 192)
        let x = SyntheticFeatures.gaussianMixture(rows: n, columns: d, components: 12, seed: 1)
        let saved = ComputeThreads.current
        defer { ComputeThreads.configure(saved) }
        let results = [1, 2, 3].map { threads -> KMeansResult in
            ComputeThreads.configure(threads)
            return KMeans(k: 10, restarts: 2, seed: 11).fit(x, rows: n, columns: d)
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])
    }

    func testAbsoluteToleranceIsMeanVarianceTimesTolerance() throws {
        // Columns (1, 3, 5) and (2, 4, 9): population variances 8/3 and 26/3, mean 17/3.
        let small: [Float] = [1, 2, 3, 4, 5, 9]
        XCTAssertEqual(KMeans(k: 1, seed: 0).absoluteTolerance(data: small, rows: 3, columns: 2), 1e-4 * 17 / 3, accuracy: 1e-15)
        XCTAssertEqual(KMeans(k: 1, tolerance: 0.5, seed: 0).absoluteTolerance(data: small, rows: 3, columns: 2), 0.5 * 17 / 3,
                       accuracy: 1e-12)
        XCTAssertEqual(KMeans(k: 1, tolerance: 0, seed: 0).absoluteTolerance(data: small, rows: 3, columns: 2), 0)
        let file = try KMeansFixture.open()
        defer { file.close() }
        let (x, n, d) = try KMeansFixture.matrix(file, "hard/data")
        // scikit-learn's `_tolerance` uses numpy's float32 variance: agree to float32 rounding.
        let reference = try KMeansFixture.scalar(file, "hard/tolerance_abs")
        XCTAssertEqual(KMeans(k: 10, seed: 0).absoluteTolerance(data: x, rows: n, columns: d), reference, accuracy: 1e-5 * reference)
    }

    /// Far from the origin the fast form ‖c‖² − 2x·c in float32 cannot tell the two centres apart (its rounding is
    /// ~0.1 while the squared distances differ by 4δ ≤ 0.008); the exact recomputation must label by the sign of δ,
    /// and an exact tie (δ = 0) must go to the lower index.
    func testNearTiesAreResolvedByExactDistances() {
        let b: Float = 1000
        let deltas: [Float] = [-2, -1, 0, 1, 2].map { $0 / 512 }
        var data: [Float] = []
        for (i, delta) in deltas.enumerated() { data += [b + delta, b + Float(i)] }
        let centers: [Float] = [b - 1, b + 2, b + 1, b + 2]
        let points = KMeansPoints(data, rows: deltas.count, columns: 2)
        var labels = [Int](repeating: -1, count: deltas.count)
        points.assign(centers: centers, k: 2, labels: &labels)
        XCTAssertEqual(labels, [0, 0, 0, 1, 1])
    }

    /// `_kmeans_plusplus` written out naively from the same stream: first seed ⌊u·n⌋; per further seed
    /// L = 2 + ⌊ln k⌋ draws u·Σ D², each mapped to the first sample whose running sum of D² reaches it, and the
    /// candidate with the lowest resulting potential kept (the first on ties).
    func testPlusPlusFollowsScikitLearnsGreedyDraws() throws {
        let file = try KMeansFixture.open()
        defer { file.close() }
        let (x, n, d) = try KMeansFixture.matrix(file, "hard/data")
        let points = KMeansPoints(x, rows: n, columns: d)
        func distance(_ i: Int, _ j: Int) -> Double {
            (0..<d).reduce(0.0) { s, f in let t = Double(x[i * d + f]) - Double(x[j * d + f]); return s + t * t }
        }
        for (k, seed) in [(10, UInt64(3)), (3, UInt64(4)), (30, UInt64(5))] {
            var stream = KMeans(k: k, seed: seed).randomStream(restart: 0)
            let got = KMeans.plusPlusIndices(points, k: k, rng: &stream)

            var rng = KMeans(k: k, seed: seed).randomStream(restart: 0)
            var chosen = [Int(rng.nextDouble() * Double(n))]
            var closest = (0..<n).map { distance($0, chosen[0]) }
            let trials = 2 + Int(log(Double(k)))
            for _ in 1..<k {
                let total = closest.reduce(0, +)
                let candidates = (0..<trials).map { _ in rng.nextDouble() * total }.map { v -> Int in
                    var running = 0.0
                    for i in 0..<n { running += closest[i]; if running >= v { return i } }
                    return n - 1
                }
                let options = candidates.map { c in (0..<n).map { min(closest[$0], distance($0, c)) } }
                let potentials = options.map { $0.reduce(0, +) }
                let best = potentials.indices.min { potentials[$0] < potentials[$1] }!
                chosen.append(candidates[best])
                closest = options[best]
            }
            XCTAssertEqual(got, chosen, "k \(k), seed \(seed)")
        }
    }

    /// On tight, far-apart blobs greedy k-means++ puts exactly one seed in each blob (D² sampling gives a blob
    /// already seeded a probability of about 1e-6 per draw); uniform seeding would fail this for most seeds.
    func testPlusPlusSeedsOnePerBlob() {
        let blobs = 6, perBlob = 40, d = 3
        var rng = SeededRandom(seed: 42)
        var data: [Float] = []
        for i in 0..<(blobs * perBlob) {
            for f in 0..<d { data.append(Float((i / perBlob) * 100 * (f == 0 ? 1 : 0)) + rng.nextFloat() * 0.1) }
        }
        let points = KMeansPoints(data, rows: blobs * perBlob, columns: d)
        for seed: UInt64 in 0..<5 {
            var stream = KMeans(k: blobs, seed: seed).randomStream(restart: 0)
            let seeds = KMeans.plusPlusIndices(points, k: blobs, rng: &stream)
            XCTAssertEqual(Set(seeds.map { $0 / perBlob }).count, blobs, "seed \(seed): seeds \(seeds)")
        }
    }
}
