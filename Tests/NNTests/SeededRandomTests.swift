import XCTest
@testable import NN

final class SeededRandomTests: XCTestCase {
    func testSameSeedGivesSameStream() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let sa = (0..<16).map { _ in a.next() }
        XCTAssertEqual(sa, (0..<16).map { _ in b.next() })
        XCTAssertNotEqual(sa, (0..<16).map { _ in c.next() })
    }

    func testDerivedStreamsDiffer() {
        let base = SeededRandom(seed: 7)
        var r0 = base.derived(0), r1 = base.derived(1), r0again = base.derived(0)
        let x0 = r0.next()
        XCTAssertEqual(x0, r0again.next())
        XCTAssertNotEqual(x0, r1.next())
    }

    func testFloatsAreUniformInUnitInterval() {
        var r = SeededRandom(seed: 1)
        var sum = 0.0
        for _ in 0..<100_000 {
            let f = r.nextFloat()
            XCTAssert(f >= 0 && f < 1)
            sum += Double(f)
        }
        XCTAssertEqual(sum / 100_000, 0.5, accuracy: 0.01)
    }

    func testComputeThreadsAreSet() {
        ComputeThreads.configure(1)
        XCTAssertEqual(ComputeThreads.current, 1)
        ComputeThreads.configure(2)
        XCTAssertEqual(ComputeThreads.current, 2)
        XCTAssertTrue(ComputeThreads.oneDNNVersion.hasPrefix("2."), ComputeThreads.oneDNNVersion)
    }
}
