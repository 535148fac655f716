import Dispatch
import Foundation

/// Four float lanes; lattice rows are whole numbers of these (see `PermutohedralLattice.paddedWidth`).
typealias F4 = SIMD4<Float>

/// Splat, blur and slice of `PermutohedralLattice` (the three steps are described there).
///
/// **Rows.** A vertex's values are a row of ⌈C/4⌉ `SIMD4<Float>` (densecrf's SSE path pads the same way), so every
/// inner loop is whole vectors with no scalar remainder; pad lanes carry whatever the input's pad lanes hold and are
/// never read back. Each lane is computed with exactly the float operations of densecrf's scalar lane, in the same
/// order (splat: pixels in increasing order, then the pixel's vertices in remainder order), so the results do not
/// depend on the vector width.
///
/// **Threads.** The row's vectors are split into contiguous groups, one per thread; each group has its own pair of
/// value buffers and runs the whole splat (a sequential scatter over the pixels, as densecrf), blur and slice without
/// any synchronisation. Lanes never interact, so Q is bit-identical for every thread count. At most ⌈C/4⌉ threads
/// are busy (6 for 21 labels); the per-pixel steps around the filter use all of them.
///
/// **Specialisation.** The group's length in vectors becomes a compile-time constant for ≤ 8 vectors
/// (`withConstantVectors`), so the row loops unroll and the splat source and slice accumulator stay in registers.
///
/// **Memory.** The value buffers take 2 (M+1) ⌈C/4⌉ × 16 bytes; beyond `maxValueBufferBytes` the vectors are
/// filtered in several rounds.
extension PermutohedralLattice {
    /// C rounded up to a multiple of 4: the float stride of a lattice row and of the inputs `filter` reads.
    public static func paddedWidth(_ channels: Int) -> Int { (channels + 3) & ~3 }

    /// Value buffers are kept below this (256 MiB: ~1.4 M vertices at 21 labels in one round).
    public static let maxValueBufferBytes = 256 << 20

    /// The filtered values `α Σ weight · blur(splat(values))`, N × C point-major in and out, blurring the axes in
    /// the order 0…d (densecrf's `compute(..., reverse = false)`). With C ≤ 2 the slice multiplies as densecrf's
    /// scalar path does ((w·v)·α), otherwise as its SSE path ((w·α)·v). Bit-identical for any `threads`.
    public func filter(_ values: [Float], channels c: Int, threads: Int = 1) -> [Float] {
        precondition(values.count == pointCount * c,
                     "PermutohedralLattice.filter: \(values.count) values, expected N × C = \(pointCount) × \(c)")
        let vectors = PermutohedralLattice.paddedWidth(c) / 4
        var padded = [F4](repeating: .zero, count: pointCount * vectors)
        padded.withUnsafeMutableBufferPointer { dst in
            dst.baseAddress!.withMemoryRebound(to: Float.self, capacity: pointCount * vectors * 4) { f in
                for i in 0..<pointCount { for k in 0..<c { f[i * vectors * 4 + k] = values[i * c + k] } }
            }
        }
        var out = [Float](repeating: 0, count: values.count)
        var workspace = Workspace(lattice: self, vectors: vectors, threads: threads)
        padded.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                let o = output.baseAddress!
                filter(input: input.baseAddress!, inputVectors: vectors, channels: c, workspace: &workspace) {
                    rows, sliced, group in
                    let vn = group.count
                    sliced.withMemoryRebound(to: Float.self, capacity: rows.count * vn * 4) { s in
                        let c0 = 4 * group.lowerBound, width = min(c, 4 * group.upperBound) - c0
                        for i in rows {
                            let src = s + (i - rows.lowerBound) * vn * 4
                            for k in 0..<width { o[i * c + c0 + k] = src[k] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The value buffers and the split of a row's vectors into rounds of concurrent groups.
    struct Workspace {
        /// Each round lists disjoint vector ranges, one per thread, that together cover the round's vectors.
        let rounds: [[Range<Int>]]
        var buffer: [F4]

        init(lattice: PermutohedralLattice, vectors: Int, threads: Int,
             maxValueBufferBytes: Int = PermutohedralLattice.maxValueBufferBytes) {
            let rows = lattice.vertexCount + 1
            let perRound = max(1, min(vectors, maxValueBufferBytes / (2 * rows * MemoryLayout<F4>.stride)))
            var rounds: [[Range<Int>]] = []
            var v0 = 0
            while v0 < vectors {
                let count = min(perRound, vectors - v0)
                let groups = max(1, min(threads, count))
                rounds.append((0..<groups).map { g in (v0 + g * count / groups)..<(v0 + (g + 1) * count / groups) })
                v0 += count
            }
            self.rounds = rounds
            buffer = [F4](repeating: .zero, count: 2 * rows * perRound)
        }

        /// Bytes of the value buffers.
        var bytes: Int { buffer.count * MemoryLayout<F4>.stride }
    }

    /// Splat–blur–slice of `channels` channels of `input` (N rows of `inputVectors` vectors). Each group's slice hands
    /// blocks of pixels to `consume(rows, sliced, group)`: `sliced` holds rows.count rows of group.count vectors,
    /// the filtered values of vectors `group` (channels 4·group.lowerBound ..< 4·group.upperBound). `consume` runs
    /// concurrently for different groups (same rows, disjoint vectors).
    func filter(input: UnsafePointer<F4>, inputVectors: Int, channels: Int, workspace: inout Workspace,
                consume: (Range<Int>, UnsafePointer<F4>, Range<Int>) -> Void) {
        precondition(inputVectors * 4 >= channels,
                     "PermutohedralLattice.filter: rows of \(inputVectors) vectors hold fewer than \(channels) channels")
        // densecrf takes its scalar path for ≤ 2 channels, which slices as (w·v)·α; the SSE path uses (w·α)·v.
        let scalarOrder = channels <= 2
        let rows = vertexCount + 1
        let rounds = workspace.rounds
        workspace.buffer.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            for round in rounds {
                let first = round[0].lowerBound
                parallelRanges(round.count, threads: round.count) { groups in
                    for g in groups {
                        let group = round[g]
                        let a = base + 2 * rows * (group.lowerBound - first)
                        let b = a + rows * group.count
                        withConstantVectors(group.count) { vn in
                            filterGroup(input: input + group.lowerBound, inputVectors: inputVectors, vectors: vn,
                                        buffers: (a, b), scalarOrder: scalarOrder, startBlock: g, of: round.count) {
                                rows, sliced in consume(rows, sliced, group)
                            }
                        }
                    }
                }
            }
        }
    }

    /// One group of `vn` vectors through splat, blur and slice, on the calling thread.
    @inline(__always)
    private func filterGroup(input: UnsafePointer<F4>, inputVectors: Int, vectors vn: Int,
                             buffers: (UnsafeMutablePointer<F4>, UnsafeMutablePointer<F4>), scalarOrder: Bool,
                             startBlock g: Int, of groups: Int, consume: (Range<Int>, UnsafePointer<F4>) -> Void) {
        let n = pointCount, m = vertexCount, d = dimension, vpp = d + 1
        var current = buffers.0, next = buffers.1
        offsets.withUnsafeBufferPointer { offs in
            weights.withUnsafeBufferPointer { wts in
                // Splat: scatter each pixel into its d+1 vertices, pixels in increasing order (densecrf's order).
                current.update(repeating: .zero, count: (m + 1) * vn)
                for k in 0..<vn { next[k] = .zero }     // row 0 of the other buffer: the absent vertex
                for i in 0..<n {
                    let src = input + i * inputVectors
                    for r in 0..<vpp {
                        let row = current + Int(offs[i * vpp + r]) * vn
                        let w = F4(repeating: wts[i * vpp + r])
                        for k in 0..<vn { row[k] += w * src[k] }
                    }
                }
                // Blur along axes 0…d, swapping buffers after each.
                neighbours.withUnsafeBufferPointer { nb in
                    let half = F4(repeating: 0.5)
                    for j in 0...d {
                        let axis = nb.baseAddress! + 2 * j * m
                        for v in 0..<m {
                            let o = current + (v + 1) * vn
                            let n1 = current + Int(axis[2 * v]) * vn
                            let n2 = current + Int(axis[2 * v + 1]) * vn
                            let dst = next + (v + 1) * vn
                            for k in 0..<vn { dst[k] = o[k] + half * (n1[k] + n2[k]) }
                        }
                        swap(&current, &next)
                    }
                }
                // Slice in blocks of 256 pixels. Groups start at different blocks so that concurrent groups do
                // not write the same cache lines of a pixel row at the same time.
                let alpha: Float = 1 / (1 + powf(2, -Float(d)))
                let alphaV = F4(repeating: alpha)
                let block = 256
                let blocks = (n + block - 1) / block
                withUnsafeTemporaryAllocation(of: F4.self, capacity: block * vn) { scratchBuffer in
                    let scratch = scratchBuffer.baseAddress!
                    for step in 0..<blocks {
                        let lo = ((step + g * blocks / groups) % blocks) * block, hi = min(lo + block, n)
                        for i in lo..<hi {
                            let acc = scratch + (i - lo) * vn
                            for k in 0..<vn { acc[k] = .zero }
                            for r in 0..<vpp {
                                let src = current + Int(offs[i * vpp + r]) * vn
                                let w = wts[i * vpp + r]
                                if scalarOrder {
                                    let wv = F4(repeating: w)
                                    for k in 0..<vn { acc[k] += (wv * src[k]) * alphaV }
                                } else {
                                    let wa = F4(repeating: w * alpha)
                                    for k in 0..<vn { acc[k] += wa * src[k] }
                                }
                            }
                        }
                        consume(lo..<hi, UnsafePointer(scratch))
                    }
                }
            }
        }
    }
}

/// Calls `body(v)` with `v` a literal for 1 ≤ v ≤ 8, so that when `body` is inlined its row loops have a constant
/// trip count (unrolled, accumulators in registers); larger rows take the general path.
@inline(__always)
func withConstantVectors(_ v: Int, _ body: (Int) -> Void) {
    switch v {
    case 1: body(1)
    case 2: body(2)
    case 3: body(3)
    case 4: body(4)
    case 5: body(5)
    case 6: body(6)
    case 7: body(7)
    case 8: body(8)
    default: body(v)
    }
}

/// Runs `body` over `count` items split into `threads` contiguous ranges (fewer when there are under `minimum`
/// items per range). Each item is processed as in a serial loop, so results never depend on `threads`.
@inline(__always)
func parallelRanges(_ count: Int, threads: Int, minimum: Int = 1, _ body: (Range<Int>) -> Void) {
    let parts = max(1, min(threads, count / max(minimum, 1)))
    if parts == 1 { if count > 0 { body(0..<count) }; return }
    DispatchQueue.concurrentPerform(iterations: parts) { p in
        body((p * count / parts)..<((p + 1) * count / parts))
    }
}
