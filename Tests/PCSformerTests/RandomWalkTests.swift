import NN
@testable import PCSformer
import XCTest

/// The sparse random walk against upstream's formulation computed densely in Double: T = column-normalised A^β,
/// squared logT times, then V · T.
final class RandomWalkTests: XCTestCase {
    func testSparseWalkEqualsDenseMatrixPower() {
        var rng = SeededRandom(seed: 8)
        let (n, channels) = (30, 3)
        var edges: [RandomWalk.Edge] = []
        for i in 0..<n { for j in (i + 1)..<n where (i * 7 + j * 3) % 5 == 0 { edges.append(.init(Int32(i), Int32(j), 0.2 + 0.8 * rng.nextFloat())) } }
        let values = (0..<(n * channels)).map { _ in rng.nextFloat() }
        let walk = RandomWalk(beta: 3, logT: 4)
        let sparse = walk.propagate(values, channels: channels, nodes: n, edges: edges)

        var a = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n { a[i][i] = 1 }
        for e in edges {
            a[Int(e.i)][Int(e.j)] = pow(Double(e.affinity), 3)
            a[Int(e.j)][Int(e.i)] = pow(Double(e.affinity), 3)
        }
        for j in 0..<n {
            let total = (0..<n).map { a[$0][j] }.reduce(0, +)
            for i in 0..<n { a[i][j] /= total }
        }
        for _ in 0..<4 {
            var square = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
            for i in 0..<n { for k in 0..<n where a[i][k] != 0 { for j in 0..<n { square[i][j] += a[i][k] * a[k][j] } } }
            a = square
        }
        var worst = 0.0
        for j in 0..<n {
            for c in 0..<channels {
                let dense = (0..<n).map { Double(values[$0 * channels + c]) * a[$0][j] }.reduce(0, +)
                worst = max(worst, abs(dense - Double(sparse[j * channels + c])))
            }
        }
        XCTAssertLessThan(worst, 1e-5, "the sparse walk drifts from the dense power by \(worst)")
        // A walk that mixes nothing (no edges) leaves the scores as they are.
        XCTAssertEqual(walk.propagate(values, channels: channels, nodes: n, edges: []), values)
    }
}
