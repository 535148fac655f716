import Foundation
import TestSupport
import XCTest
@testable import Formats
import NN

final class HDF5FileTests: XCTestCase {
    func testNumericAndStringDatasetsAndAttributes() throws {
        let dir = try TestSupport.scratchDirectory()
        let path = dir.appendingPathComponent("t.h5").path
        let file = try HDF5File.create(path)
        try file.write("/a/b/cam", (0..<24).map { Float($0) / 3 }, shape: [2, 3, 4])
        try file.write("/a/d", [1.5, -2.25] as [Double])
        try file.writeStrings("/names", ["x", "ünïcode", ""])
        try file.setAttribute("config", "{\"k\": 1}", on: "/a")
        try file.setAttribute("epoch", [Int64(7)])
        file.close()
        let reopened = try HDF5File.open(path)
        let cam = try reopened.read("/a/b/cam", as: Float.self)
        XCTAssertEqual(cam.shape, [2, 3, 4])
        XCTAssertEqual(cam.values[23], 23 / 3)
        XCTAssertEqual(try reopened.read("/a/d", as: Double.self).values, [1.5, -2.25])
        XCTAssertEqual(try reopened.readStrings("/names"), ["x", "ünïcode", ""])
        XCTAssertEqual(try reopened.stringAttribute("config", on: "/a"), "{\"k\": 1}")
        XCTAssertEqual(try reopened.numericAttribute("epoch", as: Int64.self), [7])
        XCTAssertNil(try reopened.stringAttribute("absent"))
        XCTAssertThrowsError(try HDF5File.open(dir.appendingPathComponent("nope.h5").path))
    }

    func testMissingAndForeignFilesAreNamed() throws {
        let dir = try TestSupport.scratchDirectory()
        let text = dir.appendingPathComponent("notes.h5")
        try "hello".write(to: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HDF5File.open(text.path)) { XCTAssertTrue("\($0)".contains("notes.h5"), "\($0)") }
        XCTAssertThrowsError(try HDF5File.open(dir.appendingPathComponent("absent.h5").path)) {
            XCTAssertTrue("\($0)".contains("absent.h5"), "\($0)")
        }
    }

    func testAtomicWriteLeavesNoTemporaryFile() throws {
        let dir = try TestSupport.scratchDirectory()
        let target = dir.appendingPathComponent("out.json")
        try AtomicFile.write(Data("{}".utf8), to: target)
        try AtomicFile.write(Data("{\"a\": 1}".utf8), to: target)
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "{\"a\": 1}")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.json"])
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: dir.appendingPathComponent("no/such/folder/x")))
    }
}
