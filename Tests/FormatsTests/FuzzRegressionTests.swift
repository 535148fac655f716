import Foundation
import XCTest
@testable import Formats

/// Inputs the fuzzer found (scripts/fuzz.sh pth; kept in Fuzz/regressions/pth): each must give one line naming the file.
final class FuzzRegressionTests: XCTestCase {
    static let inputs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/regressions")

    /// A zip member whose name holds a newline: the error quoted it and became two lines.
    func testZipMemberNameWithANewlineGivesOneLine() throws {
        let path = Self.inputs.appendingPathComponent("pth/member-name-with-newline.pth").path
        XCTAssertThrowsError(try PthReader.read(path)) { error in
            let text = error.localizedDescription
            XCTAssertTrue(text.hasPrefix(path + ": "), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }

    func testControlCharactersAreEscapedInFileErrors() {
        XCTAssertEqual(FileError(path: "f", what: "member a\nb\tc").description, "f: member a\\nb\\tc")
    }
}
