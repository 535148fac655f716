import Foundation
import XCTest
@testable import NN
@testable import PCSformer

/// The model's state-dict names, order and shapes against the spec's lists (copied from
/// ../shared/spec/KEYS_*.tsv into Fixtures/), and the counts of spec §2.7.
final class ConformerStructureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func keys(_ file: String) throws -> [(key: String, shape: [Int])] {
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent(file), encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let fields = line.split(separator: "\t")
            let shape = fields[1] == "scalar" ? [] : fields[1].split(separator: "x").map { Int($0)! }
            return (String(fields[0]), shape)
        }
    }

    func check(_ model: Conformer, against file: String, entries: Int, parameters: Int) throws {
        let expected = try keys(file)
        let actual = model.expectedKeys
        XCTAssertEqual(actual.count, entries)
        XCTAssertEqual(expected.count, entries)
        for (a, e) in zip(actual, expected) {
            XCTAssertEqual(a.key, e.key)
            XCTAssertEqual(a.shape, e.shape, a.key)
            if a.key != e.key || a.shape != e.shape { break }
        }
        XCTAssertEqual(model.parameters.reduce(0) { $0 + $1.elementCount }, parameters)
    }

    func testPCNetworkMatchesTheSpec() throws {
        try check(Conformer(.small), against: "KEYS_conformer_s_pc_sm21.tsv", entries: 718, parameters: 36_465_066)
    }

    func testSPNetworkMatchesTheSpec() throws {
        var config = ConformerConfig.small
        config.subClasses = 200
        try check(Conformer(config), against: "KEYS_conformer_s_sp_sub_k10.tsv", entries: 722, parameters: 38_385_466)
    }

    func testTinyForwardShapesAndCAMs() {
        let model = Conformer(.tiny)
        model.setBatchNormMode(.inference)
        let x = Tensor((0..<(2 * 3 * 64 * 96)).map { Float($0 % 17) / 17 - 0.5 }, shape: [2, 3, 64, 96])
        for method in CAMMethod.allCases {
            let out = Autograd.noGrad { model(x, cam: method) }
            XCTAssertEqual(out.convLogits.shape, [2, 21])
            XCTAssertEqual(out.transLogits.shape, [2, 21])
            XCTAssertEqual(out.cam?.shape, [2, 21, 4, 6], method.rawValue)
        }
    }
}
