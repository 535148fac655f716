// Collective checks run on every rank of `mpirun -n N mpi-checks N [HOSTS]`; DistributedTests launches this program and
// reads its exit status and output. Each check is computed independently on each rank from its rank number, so a
// wrong reduction, a wrong root or a mixed-up order shows up as a failure on some rank.
//
// `mpi-checks abort` makes the last rank call `Communicator.abort` while the others wait in a barrier: the whole
// world must end with a non-zero status instead of hanging.
import Distributed
import Foundation

struct Item: Codable, Equatable {
    var rank: Int
    var name: String
}

let world = Communicator.world()
let arguments = CommandLine.arguments.dropFirst()

if arguments.first == "abort" {
    if world.rank == world.size - 1 {
        world.abort("rank \(world.rank) gives up on purpose")
    }
    world.barrier()
    print("rank \(world.rank) passed a barrier that should never complete")
    exit(0)
}

if arguments.first == "reducer" {
    var failures: [String] = []
    var passed = 0
    reducerChecks(world) { ok, what in if ok { passed += 1 } else { failures.append(what) } }
    syncBatchNormChecks(world) { ok, what in if ok { passed += 1 } else { failures.append(what) } }
    halfPrecisionReducerChecks(world) { ok, what in if ok { passed += 1 } else { failures.append(what) } }
    let failedAnywhere = world.allreduce(Int64(failures.count))
    print("rank \(world.rank): \(passed) reducer checks passed, \(failures.count) failed\(failures.isEmpty ? "" : ": " + failures.joined(separator: "; "))")
    exit(failedAnywhere == 0 ? 0 : 1)
}

if arguments.first == "trainloop" {
    var failures: [String] = []
    var passed = 0
    let directory = URL(fileURLWithPath: arguments.dropFirst().first ?? "/tmp/pcs-mpi-trainloop")
    do {
        try trainLoopChecks(world, directory: directory) { ok, what in if ok { passed += 1 } else { failures.append(what) } }
        try trainLoopFeatureChecks(world, directory: directory) { ok, what in if ok { passed += 1 } else { failures.append(what) } }
    } catch {
        failures.append("unexpected error: \(error)")
    }
    let failedAnywhere = world.allreduce(Int64(failures.count))
    print("rank \(world.rank): \(passed) train-loop checks passed, \(failures.count) failed\(failures.isEmpty ? "" : ": " + failures.joined(separator: "; "))")
    exit(failedAnywhere == 0 ? 0 : 1)
}

let expectedSize = arguments.first.flatMap { Int($0) } ?? world.size
// `mpi-checks N H`: the N ranks were spread over H hosts round-robin (scripts/hosts/mpirun's --map-by node), so
// rank r sits on host r mod H beside the ranks of the same residue, as the (r / H)-th of them.
let hosts = arguments.dropFirst().first.flatMap { Int($0) } ?? 1
var passed = 0
var failures: [String] = []

func check(_ condition: @autoclosure () -> Bool, _ what: String) {
    if condition() { passed += 1 } else { failures.append(what) }
}

let r = world.rank, n = world.size
check(n == expectedSize, "world size \(n), expected \(expectedSize)")
check(world.threadLevel >= 1, "thread level \(world.threadLevel) below FUNNELED")
let expectedLocalSize = (0..<n).filter { $0 % hosts == r % hosts }.count
check(world.localSize == expectedLocalSize && world.localRank == r / hosts,
      "node-local rank \(world.localRank)/\(world.localSize), expected \(r / hosts)/\(expectedLocalSize) on \(hosts) host(s)")

// Sums of rank-dependent values in every supported element type.
var floats: [Float] = (0..<1000).map { Float($0) + Float(r) * 0.5 }
world.allreduce(&floats)
let rankSum = Float(n * (n - 1) / 2)
check(floats.enumerated().allSatisfy { $1 == Float(n) * Float($0) + rankSum * 0.5 }, "Float allreduce sum")

var doubles: [Double] = [Double(r + 1), 1e300 / Double(n)]
world.allreduce(&doubles)
check(doubles[0] == Double(n * (n + 1) / 2) && abs(doubles[1] - 1e300) / 1e300 < 1e-12, "Double allreduce sum")

var longs: [Int64] = [Int64(r) << 40, -Int64(r)]
world.allreduce(&longs)
check(longs == [Int64(n * (n - 1) / 2) << 40, -Int64(n * (n - 1) / 2)], "Int64 allreduce sum \(longs)")

var means: [Float] = [Float(r), 2]
world.allreduceMean(&means)
check(means == [Float(n - 1) / 2, 2], "allreduce mean \(means)")

check(world.allreduce(Int64(r), op: .max) == Int64(n - 1), "allreduce max")
check(world.allreduce(Double(r), op: .min) == 0, "allreduce min")

// Non-blocking: start, keep computing, then wait; the buffer is only read after wait.
var big = [Float](repeating: Float(r + 1), count: 1 << 20)
big.withUnsafeMutableBufferPointer { buffer in
    var pending = world.startAllreduce(buffer, mean: true)
    var busy = 0.0
    for i in 0..<200_000 { busy += sin(Double(i)) }
    _ = pending.test()
    pending.wait()
    check(busy.isFinite, "work beside the allreduce")
}
let expectedMean = Float(n + 1) / 2
check(big.allSatisfy { $0 == expectedMean }, "non-blocking allreduce mean")

// Broadcast from the last rank (not 0), of arrays whose lengths differ per rank.
var bytes: [UInt8] = Array(repeating: UInt8(r), count: r + 3)
world.broadcast(&bytes, root: n - 1)
check(bytes == Array(repeating: UInt8(n - 1), count: n + 2), "broadcast bytes from root \(n - 1)")
var vector: [Double] = r == 0 ? [1.5, 2.5, 3.5] : []
world.broadcast(&vector, root: 0)
check(vector == [1.5, 2.5, 3.5], "broadcast Double array from root 0")
let config = try world.broadcast(Item(rank: r, name: "from \(r)"), root: n - 1)
check(config == Item(rank: n - 1, name: "from \(n - 1)"), "broadcast Codable")

// Gather Codable values of different sizes, in rank order, on rank 0 only.
let mine = Item(rank: r, name: String(repeating: "x", count: 10 * r))
let gathered = try world.gather(mine)
if r == 0 {
    check(gathered == (0..<n).map { Item(rank: $0, name: String(repeating: "x", count: 10 * $0)) }, "gather on rank 0")
} else {
    check(gathered == nil, "gather returns nil off rank 0")
}
let everyone = try world.allGather(r * r)
check(everyone == (0..<n).map { $0 * $0 }, "allGather")

world.barrier()
let failedAnywhere = world.allreduce(Int64(failures.count))
print("rank \(r): \(passed) checks passed, \(failures.count) failed\(failures.isEmpty ? "" : ": " + failures.joined(separator: "; "))")
exit(failedAnywhere == 0 ? 0 : 1)
