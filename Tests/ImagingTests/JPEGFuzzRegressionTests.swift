import Foundation
import XCTest
@testable import Imaging

/// JPEGs the fuzzer made (scripts/fuzz.sh jpeg; kept in Fuzz/regressions/jpeg): an error naming the file, no crash.
final class JPEGFuzzRegressionTests: XCTestCase {
    /// A header declaring ~4 billion pixels: the decoder allocated 12.5 GB before looking further.
    func testHugeDeclaredSizeIsRefusedBeforeAllocating() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/regressions/jpeg/huge-declared-size.jpg")
        let bytes = [UInt8](try Data(contentsOf: url))
        XCTAssertThrowsError(try JPEGCodec.decodeRGB(bytes, name: url.path)) { error in
            XCTAssertTrue(error.localizedDescription.hasPrefix(url.path + ": the JPEG header declares "), error.localizedDescription)
        }
    }
}
