import Foundation
import TestSupport
import XCTest

/// The command line's contract: help, one-line errors with exit code 2 for bad flags and values, exit 1 with one
/// line for bad input.
final class CommandLineTests: XCTestCase {
    func testHelpListsGlobalOptions() throws {
        let result = try TestSupport.pcsMPI(["synth", "--help"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for option in ["--out", "--images", "--size", "--classes", "--seed", "--threads", "--log-level"] {
            XCTAssertTrue(result.stdout.contains(option), "help lacks \(option):\n\(result.stdout)")
        }
    }

    func testUnknownFlagIsOneLineExitTwo() throws {
        let result = try TestSupport.pcsMPI(["synth", "--out", "/tmp/x", "--frobnicate", "3"])
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("--frobnicate"), result.stderr)
        let unknownCommand = try TestSupport.pcsMPI(["no-such-command"])
        XCTAssertEqual(unknownCommand.status, 2)
        XCTAssertTrue(unknownCommand.stderr.contains("no-such-command"), unknownCommand.stderr)
    }

    func testBadValuesNameTheFlag() throws {
        for (arguments, flag) in [(["synth", "--out", "/tmp/x", "--size", "3"], "--size"),
                                  (["synth", "--out", "/tmp/x", "--threads", "0"], "--threads"),
                                  (["synth", "--out", "/tmp/x", "--images", "many"], "--images"),
                                  (["synth", "--out", "/tmp/x", "--log-level", "loud"], "--log-level"),
                                  (["ingest", "voc", "--root", "/r", "--split", "/s", "--out", "/o", "--shards", "0"], "--shards")] {
            let result = try TestSupport.pcsMPI(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(flag), "\(arguments): \(result.stderr)")
        }
    }

    func testMissingInputIsOneLineExitOne() throws {
        let result = try TestSupport.pcsMPI(["ingest", "voc", "--root", "/nonexistent/VOC2012", "--split", "/nonexistent/train.txt", "--out", "/tmp/unused"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("/nonexistent/VOC2012"), result.stderr)
    }
}
