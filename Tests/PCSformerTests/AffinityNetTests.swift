import Formats
import NN
@testable import PCSformer
import XCTest

/// ResNet-38d and AffinityNet: upstream's state-dict names and shapes, the tiny network's shapes through forward
/// and backward, and upstream's frozen set-up.
final class AffinityNetTests: XCTestCase {
    /// The full network, built once (its initialisation takes seconds in a debug build).
    static let full = AffinityNet(.full, seed: 1)

    /// Every key and shape of `KEYS_resnet38_aff.tsv`, in upstream's order (the table `ResNet38Weights` holds).
    func testStateDictMatchesUpstream() {
        let net = Self.full
        let keys = net.expectedKeys
        XCTAssertEqual(keys.map(\.key), ResNet38Weights.affinityNet.map(\.key))
        XCTAssertEqual(keys.map(\.shape), ResNet38Weights.affinityNet.map(\.shape))
        // The converted MXNet backbone is exactly the backbone's keys: what `--init` loads before the heads.
        XCTAssertEqual(net.backbone.expectedKeys.filter { !$0.key.hasSuffix("num_batches_tracked") }.map(\.key),
                       ResNet38Weights.backbone.map(\.key))
    }

    /// The heads' initialisation: Kaiming normal with fan-in (std √(2/fan-in)), and f9 Xavier uniform with gain 4
    /// (bound 4·√(6/(fan-in + fan-out))).
    func testHeadInitialisation() {
        let net = Self.full
        let w = net.f8_5.weight.toArray()
        let std = (w.map { Double($0 * $0) }.reduce(0, +) / Double(w.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / 4096).squareRoot(), accuracy: 0.05 * (2.0 / 4096).squareRoot())
        let f9 = net.f9.weight.toArray()
        let bound = 4 * (6.0 / 896).squareRoot()
        XCTAssertLessThanOrEqual(Double(f9.map(abs).max()!), bound)
        XCTAssertGreaterThan(Double(f9.map(abs).max()!), 0.95 * bound)
    }

    /// The tiny network on 64×64 images: a 1/8 embedding of the heads' total width; backward under upstream's
    /// frozen set-up reaches the trainable weights and none of the frozen ones.
    func testTinyForwardBackwardAndFreezing() {
        let net = AffinityNet(.tiny, seed: 2)
        net.freezeAsUpstream()
        var rng = SeededRandom(seed: 4)
        let x = Tensor((0..<(2 * 3 * 64 * 64)).map { _ in rng.nextFloat() - 0.5 }, shape: [2, 3, 64, 64])
        let f = net(x, training: true, rng: &rng)
        XCTAssertEqual(f.shape, [2, 32, 8, 8])
        let loss = multilabelSoftMarginLoss(f.plain().reshaped([2, 32 * 64]), Tensor.filled(1, shape: [2, 32 * 64]))
        loss.backward()
        for (name, t) in net.namedParameterList {
            let frozen = AffinityNet.frozenPrefixes.contains { name.hasPrefix($0) } || name.contains("bn")
            XCTAssertEqual(t.requiresGrad, !frozen, name)
            XCTAssertEqual(t.grad != nil, !frozen, name)
        }
        XCTAssertTrue(net.batchNorms().allSatisfy { $0.mode == .frozen })
    }
}
