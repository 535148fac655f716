import CCRF
import Dispatch
import Foundation

/// Splat, blur and slice of `PermutohedralLattice` (the three steps are described there); the loops themselves are
/// the C kernels of `Sources/CCRF` (AVX2 where the CPU has it).
///
/// **Rows.** A vertex's or a pixel's values are a row of C rounded up to a multiple of 4 floats (densecrf's SSE path
/// pads the same way); pad lanes carry whatever the input's pad lanes hold and are never read back. Each lane is
/// computed with exactly the float operations of densecrf's scalar lane, in the same order, so the results depend
/// neither on the vector width nor on the thread count:
/// - splat: each vertex sums its points' weighted values from 0 in increasing point order (densecrf's scatter);
/// - blur: `new[x] = old[x] + ½(old[x − u_j] + old[x + u_j])`;
/// - slice: the d+1 terms in remainder order.
///
/// **Threads.** Every step splits over `threads` by rows with no shared writes. The splat splits by *vertex*: each
/// thread owns a range of vertices (ranges of equal work, from `entriesBefore`), scans all points in order and adds
/// only into its own rows, so every vertex still sums in point order. (A gather over per-vertex point lists does
/// the same sums, but reads the pixels' rows at random; the scan reads them in order and keeps the random accesses
/// on the smaller vertex buffer.) Each blur axis writes the other buffer, so vertex ranges are independent; the
/// slice writes its own pixels.
///
/// **Memory.** The value buffers take 2 (M+1) × width floats; beyond `maxValueBufferBytes` the row's lanes are
/// filtered in several rounds of fewer lanes.
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
        let width = PermutohedralLattice.paddedWidth(c)
        var padded = [Float](repeating: 0, count: pointCount * width)
        for i in 0..<pointCount { for k in 0..<c { padded[i * width + k] = values[i * c + k] } }
        var sliced = [Float](repeating: 0, count: pointCount * width)
        let workspace = Workspace(lattice: self, width: width)
        padded.withUnsafeBufferPointer { input in
            sliced.withUnsafeMutableBufferPointer { out in
                filter(input: input.baseAddress!, width: width, channels: c, workspace: workspace, threads: threads,
                       into: .store(out.baseAddress!))
            }
        }
        var out = [Float](repeating: 0, count: values.count)
        for i in 0..<pointCount { for k in 0..<c { out[i * c + k] = sliced[i * width + k] } }
        return out
    }

    /// The value buffers and the lane ranges filtered one after the other.
    final class Workspace {
        /// Lane ranges of a row, in order; one covering the whole row unless the buffers would exceed the bound.
        let rounds: [Range<Int>]
        /// The two value buffers, each (M+1) × (the widest round) floats.
        let buffers: UnsafeMutablePointer<Float>
        /// Floats in `buffers`.
        let count: Int

        init(lattice: PermutohedralLattice, width: Int,
             maxValueBufferBytes: Int = PermutohedralLattice.maxValueBufferBytes) {
            let rows = lattice.vertexCount + 1
            let perRound = max(4, min(width, maxValueBufferBytes / (2 * rows * MemoryLayout<Float>.stride)) & ~3)
            rounds = stride(from: 0, to: width, by: perRound).map { $0..<min($0 + perRound, width) }
            count = 2 * rows * perRound
            // Not cleared: the splat writes every vertex row before anything reads it (row 0 is cleared there).
            buffers = .allocate(capacity: count)
        }

        deinit { buffers.deallocate() }

        /// Bytes of the value buffers.
        var bytes: Int { count * MemoryLayout<Float>.stride }
    }

    /// Where the slice puts its result: the sliced values themselves, or `acc = base + weight · (sliced · norm)` per
    /// pixel (the CRF's message; `acc` may be `base`). Pointers are to N rows of the filter's `width` floats.
    enum SliceTarget {
        case store(UnsafeMutablePointer<Float>)
        case accumulate(base: UnsafePointer<Float>, acc: UnsafeMutablePointer<Float>, norm: UnsafePointer<Float>, weight: Float)
    }

    /// Splat–blur–slice of the first `channels` lanes of `input` (N rows of `width` floats, each multiplied by
    /// `scale[i]` when given) into `target`. Once a block of pixels holds all its lanes, `completed(block)` runs
    /// (concurrently for different blocks), so the caller can use them while they are in cache.
    func filter(input: UnsafePointer<Float>, scale: UnsafePointer<Float>? = nil, width: Int, channels: Int,
                workspace: Workspace, threads: Int, into target: SliceTarget,
                completed: ((Range<Int>) -> Void)? = nil) {
        precondition(width % 4 == 0 && width >= channels,
                     "PermutohedralLattice.filter: rows of \(width) floats for \(channels) channels")
        let rounds = workspace.rounds
        for (roundIndex, lanes) in rounds.enumerated() {
            let blurred = splatBlur(input: input, scale: scale, width: width, lanes: lanes,
                                    buffers: workspace.buffers, threads: threads)
            slice(blurred, width: width, lanes: lanes, channels: channels, into: target, threads: threads,
                  completed: roundIndex == rounds.count - 1 ? completed : nil)
        }
    }

    /// Splat and blur of lanes `lanes` of `input` (rows of `width` floats, times `scale[i]` when given), in the two
    /// value buffers at `buffers` (each (M+1) × lanes.count floats). Returns the buffer holding the blurred rows.
    func splatBlur(input: UnsafePointer<Float>, scale: UnsafePointer<Float>?, width: Int, lanes: Range<Int>,
                   buffers: UnsafeMutablePointer<Float>, threads: Int) -> UnsafeMutablePointer<Float> {
        let m = vertexCount, rw = lanes.count
        var current = buffers, next = buffers + (m + 1) * rw
        // Row 0 is the absent vertex: zero in both buffers (the steps never write it).
        current.update(repeating: 0, count: rw)
        next.update(repeating: 0, count: rw)
        let splatParts = balancedRanges(entriesBefore, parts: threads, minimum: 4096)
        withLatticePointers { offsets, weights, neighbours in
            let source = input + lanes.lowerBound, rows = current
            DispatchQueue.concurrentPerform(iterations: splatParts.count) { p in
                let r = splatParts[p]
                ccrf_splat(offsets, weights, Int32(dimension + 1), 0, Int64(pointCount), Int64(r.lowerBound),
                           Int64(r.upperBound), source, Int64(width), scale, rows, Int64(rw))
            }
            for j in 0...dimension {
                let (src, dst, axis) = (current, next, neighbours + 2 * j * m)
                parallelRanges(m, threads: threads, minimum: 4096) { r in
                    ccrf_blur(src, dst, axis, Int64(r.lowerBound), Int64(r.upperBound), Int64(rw))
                }
                swap(&current, &next)
            }
        }
        return current
    }

    /// α, the slice's scale 1/(1 + 2^−d).
    var alpha: Float { 1 / (1 + powf(2, -Float(dimension))) }

    /// The slice of `blurred` (rows of lanes.count floats) into lanes `lanes` of `target`, pixels over the threads in
    /// blocks of 256, calling `completed(block)` after each block.
    private func slice(_ blurred: UnsafePointer<Float>, width: Int, lanes: Range<Int>, channels: Int,
                       into target: SliceTarget, threads: Int, completed: ((Range<Int>) -> Void)?) {
        // densecrf takes its scalar path for ≤ 2 channels, which slices as (w·v)·α; the SSE path uses (w·α)·v.
        let scalarOrder: Int32 = channels <= 2 ? 1 : 0
        let (rw, c0, vpp, alpha) = (lanes.count, lanes.lowerBound, dimension + 1, self.alpha)
        withLatticePointers { offsets, weights, _ in
            parallelRanges(pointCount, threads: threads, minimum: 1024) { range in
                for lo in stride(from: range.lowerBound, to: range.upperBound, by: 256) {
                    let hi = min(lo + 256, range.upperBound)
                    switch target {
                    case .store(let out):
                        ccrf_slice(offsets, weights, Int32(vpp), Int64(lo), Int64(hi), blurred, Int64(rw), alpha,
                                   scalarOrder, nil, nil, 0, out + c0, Int64(width))
                    case .accumulate(let base, let acc, let norm, let weight):
                        ccrf_slice(offsets, weights, Int32(vpp), Int64(lo), Int64(hi), blurred, Int64(rw), alpha,
                                   scalarOrder, base + c0, norm, weight, acc + c0, Int64(width))
                    }
                    completed?(lo..<hi)
                }
            }
        }
    }

    /// Calls `body` with the base addresses of `offsets`, `weights` and `neighbours`.
    func withLatticePointers<R>(
        _ body: (UnsafePointer<Int32>, UnsafePointer<Float>, UnsafePointer<Int32>) -> R
    ) -> R {
        offsets.withUnsafeBufferPointer { offsets in
            weights.withUnsafeBufferPointer { weights in
                neighbours.withUnsafeBufferPointer { neighbours in
                    body(offsets.baseAddress!, weights.baseAddress!, neighbours.baseAddress!)
                }
            }
        }
    }
}

/// Up to `parts` contiguous vertex ranges with about equal numbers of entries, where vertex v has
/// `start[v+1] − start[v]` entries; fewer ranges when there are under `minimum` entries per range.
func balancedRanges(_ start: [Int32], parts: Int, minimum: Int) -> [Range<Int>] {
    let m = start.count - 1, total = Int(start[m])
    let count = max(1, min(parts, total / max(minimum, 1)))
    var bounds = [0]
    for p in 1..<count + 1 {
        if p == count { bounds.append(m); break }
        let target = Int32(p * total / count)
        // The first vertex whose entries start at or after the target.
        var lo = bounds.last!, hi = m
        while lo < hi {
            let mid = (lo + hi) / 2
            if start[mid] < target { lo = mid + 1 } else { hi = mid }
        }
        bounds.append(lo)
    }
    return (0..<count).map { bounds[$0]..<bounds[$0 + 1] }
}

/// An array of `count` elements, each set to `value` over `threads` threads (so that its pages are first touched,
/// and faulted in, in parallel), or with `value` nil left as the allocator gives it, for an array the caller writes
/// in full before reading it.
func parallelArray<T: BitwiseCopyable>(count: Int, repeating value: T?, threads: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        if let value {
            let base = buffer.baseAddress!
            parallelRanges(count, threads: threads, minimum: 1 << 16) { r in
                (base + r.lowerBound).initialize(repeating: value, count: r.count)
            }
        }
        initialized = count
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
