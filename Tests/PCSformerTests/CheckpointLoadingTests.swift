import Formats
import Foundation
@testable import NN
@testable import PCSformer
import TestSupport
import XCTest

/// The ImageNet loading rules of spec §2.7 on a checkpoint shaped like `Conformer_small_patch16.pth` (1000-way
/// heads, the CNN head a Linear), written by the project's own .pth writer at the tiny size.
final class CheckpointLoadingTests: XCTestCase {
    func imageNetLike(_ source: Conformer) -> StateDict {
        var dict = source.stateDict()
        let e = source.config.embedDim, f = source.config.featureChannels
        dict["trans_cls_head.weight"] = StateTensor(shape: [1000, e], storage: .float32([Float](repeating: 9, count: 1000 * e)))
        dict["trans_cls_head.bias"] = StateTensor(shape: [1000], storage: .float32([Float](repeating: 9, count: 1000)))
        dict["conv_cls_head.weight"] = StateTensor(shape: [1000, f], storage: .float32([Float](repeating: 9, count: 1000 * f)))
        dict["conv_cls_head.bias"] = StateTensor(shape: [1000], storage: .float32([Float](repeating: 9, count: 1000)))
        dict["pos_embed_unused"] = StateTensor(shape: [3], storage: .float32([1, 2, 3]))
        return dict
    }

    func testImageNetRulesKeepTheBackboneAndFreshHeads() throws {
        let pretrained = Conformer(.tiny, seed: 1)
        pretrained.bn1.numBatchesTracked = 42
        let path = try TestSupport.scratchDirectory().appendingPathComponent("Conformer_tiny_patch16.pth").path
        try imageNetLike(pretrained).savePth(to: path, wrapInModelKey: true)

        let model = Conformer(.tiny, seed: 2)
        let freshHead = model.convHead.weight.toArray()
        let report = try ConformerCheckpoint.loadImageNet(model, path: path)
        XCTAssertEqual(Set(report.missingKeys), ["trans_cls_head.weight", "trans_cls_head.bias", "conv_cls_head.weight", "conv_cls_head.bias"])
        XCTAssertEqual(model.blocks[4].transBlock.fc1.weight.toArray(), pretrained.blocks[4].transBlock.fc1.weight.toArray())
        XCTAssertEqual(model.classToken.toArray(), pretrained.classToken.toArray())
        XCTAssertEqual(model.bn1.numBatchesTracked, 42, "BN counters come from the checkpoint")
        XCTAssertEqual(model.convHead.weight.toArray(), freshHead, "heads keep their fresh initialisation")
    }

    func testStrictLoadingNamesWhatIsWrong() throws {
        let dir = try TestSupport.scratchDirectory()
        let pc = Conformer(.tiny, seed: 1)
        let path = dir.appendingPathComponent("pc.h5").path
        try pc.stateDict().save(to: path)
        var sp = ConformerConfig.tiny
        sp.subClasses = 40
        XCTAssertThrowsError(try ConformerCheckpoint.loadStrict(Conformer(sp), path: path)) { error in
            XCTAssertTrue("\(error)".contains("pc.h5") && "\(error)".contains("conv_cls_head_200.weight"), "\(error)")
        }
        var dict = pc.stateDict()
        dict["conv_trans_5.cnn_block.bn2.running_var"] = nil
        let damaged = dir.appendingPathComponent("damaged.pth").path
        try dict.savePth(to: damaged)
        XCTAssertThrowsError(try ConformerCheckpoint.loadStrict(Conformer(.tiny), path: damaged)) { error in
            XCTAssertTrue("\(error)".contains("conv_trans_5.cnn_block.bn2.running_var"), "\(error)")
        }
        XCTAssertNoThrow(try ConformerCheckpoint.loadStrict(Conformer(.tiny, seed: 9), path: path))
    }
}
