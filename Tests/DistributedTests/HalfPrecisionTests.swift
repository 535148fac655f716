import CHalf
import XCTest

/// The half-precision kernels of `--grad-compression fp16` (Sources/CHalf): the F16C loops and the portable ones
/// agree bit for bit with Swift's own `Float16` conversions (round to nearest even), across normal, subnormal,
/// overflowing and odd-length inputs.
final class HalfPrecisionTests: XCTestCase {
    override func tearDown() { chalf_use_portable(0) }

    func values() -> [Float] {
        var rng = SystemRandomNumberGenerator()
        var values = (0..<1003).map { _ in Float.random(in: -2...2, using: &rng) * powf(2, Float(Int.random(in: -30...17, using: &rng))) }
        values += [0, -0, 1, -1, 65504, 65520, 1e6, -1e6, 6e-8, 3e-8, 1e-9, .infinity, -.infinity, 0.1, 1.0 / 3]
        return values
    }

    func testBothPathsEqualSwiftsFloat16() {
        let input = values()
        let scale: Float = 0.5
        let expected = input.map { Float16($0 * scale).bitPattern }
        for portable in [Int32(0), 1] {
            chalf_use_portable(portable)
            var wire = [UInt16](repeating: 0, count: input.count)
            chalf_encode(input, &wire, input.count, scale)
            XCTAssertEqual(wire, expected, "encode, portable \(portable)")
            var back = [Float](repeating: 0, count: input.count)
            chalf_decode(wire, &back, wire.count)
            XCTAssertEqual(back.map(\.bitPattern), expected.map { Float(Float16(bitPattern: $0)).bitPattern }, "decode, portable \(portable)")
            var accumulated = expected.reversed() as [UInt16]
            chalf_sum(expected, &accumulated, expected.count)
            let sums = zip(expected, expected.reversed()).map { Float16(Float(Float16(bitPattern: $0)) + Float(Float16(bitPattern: $1))).bitPattern }
            XCTAssertEqual(accumulated, sums, "sum, portable \(portable)")
        }
    }
}
