import Foundation

/// densecrf's `expAndNormalize` for one pixel, reproducing the float operations Eigen 3.3.9 (bundled with
/// pydensecrf) performs on an x86-64 SSE2 build, so that Q matches pydensecrf to the last bit where the lattice does:
///
///     b = x − max(x);  b = exp(b);  out = b / Σ b
///
/// * `exp`: Eigen vectorises the first 4⌊L/4⌋ entries with its Cephes-style `pexp<Packet4f>` (`ssePacketExp`
///   below, no FMA on SSE2) and computes the remaining L mod 4 with `std::exp` (glibc `expf`).
/// * `Σ`: Eigen's linear vectorised reduction: packet accumulators r₀ = b[0..3], r₁ = b[4..7], then alternately
///   r₀ += b[8k..8k+3], r₁ += b[8k+4..8k+7]; r₀ += r₁; an odd last packet is added to r₀; the horizontal sum is
///   (r₀[0] + r₀[2]) + (r₀[1] + r₀[3]); the scalar tail is added last, in order. With fewer than 4 labels the sum is
///   the plain left-to-right one.
/// * the division is elementwise (not a multiplication by the reciprocal).
@inline(__always)
func softmax(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count l: Int) {
    let packets = l / 4
    var mv = F4(repeating: x[0])
    for p in 0..<packets { mv = pointwiseMax(mv, UnsafeRawPointer(x + 4 * p).loadUnaligned(as: F4.self)) }
    var m = mv.max()
    for k in (4 * packets)..<l where x[k] > m { m = x[k] }
    mv = F4(repeating: m)
    var r0 = F4.zero, r1 = F4.zero
    for p in 0..<packets {
        let e = ssePacketExp(UnsafeRawPointer(x + 4 * p).loadUnaligned(as: F4.self) - mv)
        UnsafeMutableRawPointer(out + 4 * p).storeBytes(of: e, as: F4.self)
        // Eigen's two accumulators: even packets into r₀, odd into r₁, except an odd last packet (added below).
        if p < 2 * (packets / 2) {
            if p % 2 == 0 { r0 = p == 0 ? e : r0 + e } else { r1 = p == 1 ? e : r1 + e }
        }
    }
    for k in (4 * packets)..<l { out[k] = expf(x[k] - m) }
    var sum: Float
    if packets == 0 {
        sum = out[0]
        for k in 1..<max(l, 1) { sum += out[k] }
    } else {
        if packets > 1 { r0 += r1 }
        if packets % 2 == 1 { r0 = packets == 1 ? UnsafeRawPointer(out).loadUnaligned(as: F4.self)
                                                : r0 + UnsafeRawPointer(out + 4 * (packets - 1)).loadUnaligned(as: F4.self) }
        sum = (r0[0] + r0[2]) + (r0[1] + r0[3])
        for k in (4 * packets)..<l { sum += out[k] }
    }
    let sv = F4(repeating: sum)
    for p in 0..<packets {
        let q = UnsafeRawPointer(out + 4 * p).loadUnaligned(as: F4.self) / sv
        UnsafeMutableRawPointer(out + 4 * p).storeBytes(of: q, as: F4.self)
    }
    for k in (4 * packets)..<l { out[k] /= sum }
}

/// Eigen's `pexp<Packet4f>` (SSE2 branch): clamp to ±88.376…, n = ⌊x·log₂e + ½⌋, r = x − n·C₁ − n·C₂,
/// y = ((((p₀r + p₁)r + p₂)r + p₃)r + p₄)r + p₅, y = y·r² + r + 1, result max(y·2ⁿ, x), every step rounded to float.
@inline(__always)
func ssePacketExp(_ input: F4) -> F4 {
    let x0 = input.replacing(with: F4(repeating: 88.3762626647950), where: input .> 88.3762626647950)
    var x = x0.replacing(with: F4(repeating: -88.3762626647949), where: x0 .< -88.3762626647949)
    var fx = x * F4(repeating: 1.44269504088896341) + F4(repeating: 0.5)
    // ⌊fx⌋ (|fx| ≤ 128): round to nearest through the 1.5·2²³ magic number, then step down where that rounded up.
    // (SIMD `rounded(.down)` and float→int conversions have no SSE2 instruction and fall back to slow generic code.)
    let magic = F4(repeating: 12_582_912)
    let nearest = (fx + magic) - magic
    fx = nearest.replacing(with: nearest - 1, where: nearest .> fx)
    let tmp = fx * F4(repeating: 0.693359375)
    var z = fx * F4(repeating: -2.12194440e-4)
    x = x - tmp
    x = x - z
    z = x * x
    var y = F4(repeating: 1.9875691500e-4)
    y = y * x + F4(repeating: 1.3981999507e-3)
    y = y * x + F4(repeating: 8.3334519073e-3)
    y = y * x + F4(repeating: 4.1665795894e-2)
    y = y * x + F4(repeating: 1.6666665459e-1)
    y = y * x + F4(repeating: 5.0000001201e-1)
    y = y * z + x
    y = y + F4(repeating: 1)
    // 2ⁿ: the integer n read from the bits of fx + 1.5·2²³, biased by 127 and moved into the exponent field.
    let n = unsafeBitCast(fx + magic, to: SIMD4<Int32>.self) &- 0x4B40_0000 &+ 127
    let pow2n = unsafeBitCast(n &<< 23, to: F4.self)
    let r = y * pow2n
    return r.replacing(with: input, where: r .< input)
}
