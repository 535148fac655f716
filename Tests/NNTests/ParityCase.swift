import Formats
import Foundation
@testable import NN
import XCTest

/// One case of a PyTorch parity fixture (a group of an HDF5 file written by a scripts/fixtures/ script): its
/// tensors, attributes, and the comparison every parity test uses. A missing dataset or attribute throws, which
/// fails the test.
struct ParityCase {
    let file: HDF5File
    let group: String

    func tensor(_ name: String, grad: Bool = true) throws -> Tensor {
        let (values, shape) = try file.read("\(group)/\(name)", as: Float.self)
        return Tensor(values, shape: shape, requiresGrad: grad)
    }

    func expected(_ name: String) throws -> (values: [Float], shape: [Int]) { try file.read("\(group)/\(name)", as: Float.self) }

    func ints(_ name: String) throws -> [Int32] { try file.read("\(group)/\(name)", as: Int32.self).values }

    func intAttribute(_ name: String) throws -> [Int] {
        guard let values = try file.numericAttribute(name, on: group, as: Int64.self), !values.isEmpty else {
            throw HDF5Error(file: file.path, what: "no attribute \(name) on \(group)")
        }
        return values.map { Int($0) }
    }

    func attribute(_ name: String) throws -> Double {
        guard let value = try file.numericAttribute(name, on: group, as: Double.self)?.first else {
            throw HDF5Error(file: file.path, what: "no attribute \(name) on \(group)")
        }
        return value
    }

    /// Compares `actual` with dataset `name`: |a − b| ≤ tolerance · max(1, max|b|), and, with `ownScale`, also
    /// ≤ tolerance · max|b| (for gradients far below 1). A NaN fails. Returns the error relative to max(1, max|b|).
    @discardableResult
    func compare(_ actual: Tensor?, _ name: String, tolerance: Double, ownScale: Bool = false, line: UInt = #line) throws -> Double {
        let reference = try expected(name)
        guard let actual else {
            XCTFail("\(group)/\(name): no tensor (a gradient was not computed)", line: line)
            return .infinity
        }
        guard actual.shape == reference.shape else {
            XCTFail("\(group)/\(name): shape \(actual.shape) vs PyTorch \(reference.shape)", line: line)
            return .infinity
        }
        let values = actual.toArray()
        let largest = reference.values.map { abs(Double($0)) }.max() ?? 0
        // Checked apart: Sequence.max() skips a NaN unless it comes first, so the error alone could hide one.
        let nans = values.filter(\.isNaN).count
        XCTAssertEqual(nans, 0, "\(group)/\(name): \(nans) NaN values", line: line)
        if nans > 0 { return .infinity }
        let error = zip(values, reference.values).map { abs(Double($0) - Double($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(error / max(1, largest), tolerance, "\(group)/\(name) differs from PyTorch", line: line)
        if ownScale {
            XCTAssertLessThanOrEqual(error, tolerance * largest, "\(group)/\(name) differs from PyTorch relative to its own scale \(largest)", line: line)
        }
        return error / max(1, largest)
    }
}

/// The shared part of the PyTorch parity test classes: the fixture folder (a subclass names it), the tolerances
/// (|a − b| ≤ tol · max(1, max |b|): 1e-5 forward, 1e-4 backward), the worst errors per op, printed after each test.
class ParityTestCase: XCTestCase {
    /// The folder under Tests/NNTests/Fixtures the subclass's fixture files are in.
    class var fixtureFolder: String { fatalError("a parity test class names its fixture folder") }
    static let forwardTolerance = 1e-5, backwardTolerance = 1e-4

    typealias Case = ParityCase

    /// The worst forward and backward errors per op.
    var worst: [String: (forward: Double, backward: Double)] = [:]

    func open(_ name: String) throws -> HDF5File {
        try HDF5File.open(URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(Self.fixtureFolder)/\(name)").path)
    }

    func note(_ op: String, forward: Double, backward: Double) {
        let previous = worst[op] ?? (0, 0)
        worst[op] = (max(previous.forward, forward), max(previous.backward, backward))
    }

    override func tearDown() {
        for (op, e) in worst.sorted(by: { $0.key < $1.key }) {
            print("parity \(op): forward \(String(format: "%.2e", e.forward)), backward \(String(format: "%.2e", e.backward))")
        }
        worst = [:]
        Autograd.reset()
    }
}
