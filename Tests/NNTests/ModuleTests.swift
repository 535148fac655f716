import Formats
@testable import NN
import TestSupport
import XCTest

/// A two-layer module like the ones models are built from, to test state-dict order, saving and loading.
final class TinyNet: Module {
    let conv: Conv2d
    let bn = BatchNorm2d(4)
    let head: Linear
    init(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        conv = Conv2d(3, 4, kernel: 3, padding: 1, rng: &rng)
        head = Linear(4, 2, rng: &rng)
    }
    var children: [(name: String, module: Module)] { [("conv", conv), ("bn", bn), ("head", head)] }
}

final class ModuleTests: XCTestCase {
    func testStateDictOrderNamesAndShapes() {
        let net = TinyNet(seed: 1)
        XCTAssertEqual(net.expectedKeys.map(\.key), ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                                     "bn.running_var", "bn.num_batches_tracked", "head.weight", "head.bias"])
        XCTAssertEqual(net.expectedKeys.map(\.shape), [[4, 3, 3, 3], [4], [4], [4], [4], [4], [], [2, 4], [2]])
        XCTAssertEqual(net.parameters.count, 6, "buffers and counters are not parameters")
        XCTAssertEqual(net.stateDict().parameterCount, 108 + 4 + 4 + 4 + 4 + 4 + 8 + 2)
    }

    func testSaveLoadRoundTripThroughHDF5() throws {
        let a = TinyNet(seed: 1), b = TinyNet(seed: 2)
        a.bn.numBatchesTracked = 7
        a.bn.runningMean.storage.floats[2] = 0.5
        let path = try TestSupport.scratchDirectory().appendingPathComponent("tiny.h5").path
        try a.stateDict().save(to: path)
        XCTAssertNotEqual(a.conv.weight.toArray(), b.conv.weight.toArray())
        let report = try b.load(StateDict.load(path: path), strict: true)
        XCTAssertTrue(report.isExactMatch)
        XCTAssertEqual(a.conv.weight.toArray(), b.conv.weight.toArray())
        XCTAssertEqual(b.bn.runningMean.toArray()[2], 0.5)
        XCTAssertEqual(b.bn.numBatchesTracked, 7)
        XCTAssertGreaterThan(b.conv.weight.version, 0, "loading bumps the version so cached layouts refresh")
    }

    func testStrictLoadNamesTheOffendingKeysAndNonStrictLoadsTheRest() throws {
        let a = TinyNet(seed: 1), b = TinyNet(seed: 2)
        var dict = a.stateDict()
        dict["head.weight"] = StateTensor(shape: [3, 4], storage: .float32([Float](repeating: 1, count: 12)))
        dict["conv.bias"] = nil
        dict["extra.thing"] = StateTensor(shape: [1], storage: .float32([1]))
        XCTAssertThrowsError(try b.load(dict, strict: true, source: "ckpt.pth")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("ckpt.pth") && text.contains("conv.bias") && text.contains("head.weight") && text.contains("extra.thing"), text)
        }
        let before = b.head.weight.toArray()
        let report = try b.load(dict, strict: false)
        XCTAssertEqual(report.missingKeys, ["conv.bias"])
        XCTAssertEqual(report.unexpectedKeys, ["extra.thing"])
        XCTAssertEqual(report.misShapedKeys, ["head.weight"])
        XCTAssertEqual(b.conv.weight.toArray(), a.conv.weight.toArray(), "matching keys are loaded")
        XCTAssertEqual(b.head.weight.toArray(), before, "a mis-shaped key is left alone")
    }

    /// Traversal, freezing and BatchNorm modes by state-dict name, on a tree two levels deep.
    func testTraversalFreezingAndBatchNormModesByName() {
        final class Pair: Module {
            let left = TinyNet(seed: 1), right = TinyNet(seed: 2)
            var children: [(name: String, module: Module)] { [("left", left), ("right", right)] }
        }
        let pair = Pair()
        XCTAssertEqual(pair.namedModules().map(\.name), ["", "left", "left.conv", "left.bn", "left.head", "right", "right.conv", "right.bn", "right.head"])
        XCTAssertEqual(pair.expectedKeys.first?.key, "left.conv.weight")
        XCTAssertEqual(pair.freeze(["left.conv.", "right.head."]), 4)
        XCTAssertEqual(pair.namedParameterList.filter { !$0.tensor.requiresGrad }.map(\.name),
                       ["left.conv.weight", "left.conv.bias", "right.head.weight", "right.head.bias"])
        pair.unfreeze([""])
        XCTAssertTrue(pair.parameters.allSatisfy(\.requiresGrad))

        XCTAssertTrue(pair.batchNorms(under: "right").map { $0 === pair.right.bn } == [true])
        XCTAssertTrue(pair.batchNorms(under: "righ").isEmpty, "a prefix names whole modules")
        pair.setBatchNormMode(.frozen, under: "right")
        XCTAssertEqual(pair.right.bn.mode, .frozen)
        XCTAssertEqual(pair.left.bn.mode, .training)
        XCTAssertFalse(pair.right.bn.weight.requiresGrad || pair.right.bn.bias.requiresGrad, "frozen BatchNorm weights get no gradient")
        pair.setBatchNormMode(.inference)
        XCTAssertTrue(pair.right.bn.weight.requiresGrad && pair.left.bn.mode == .inference)
    }
}
