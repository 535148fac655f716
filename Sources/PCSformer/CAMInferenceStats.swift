import Formats
import Foundation

/// What one `infer-cam` call did, written by rank 0 as OUT/infer-cam-stats.json for `bench infer` and for
/// scripts (the CAMs themselves are listed in the CAM set's index).
public struct CAMInferenceStats: Codable {
    public static let fileName = "infer-cam-stats.json"

    /// Images computed by this call over all ranks (those already present from an earlier call are not counted).
    public var images: Int
    public var seconds: Double
    public var ranks: Int
    /// The largest peak resident memory of any rank.
    public var peakMiBPerRank: Double

    public init(images: Int, seconds: Double, ranks: Int, peakMiBPerRank: Double) {
        self.images = images
        self.seconds = seconds
        self.ranks = ranks
        self.peakMiBPerRank = peakMiBPerRank
    }

    public func write(into folder: URL) throws {
        try AtomicFile.write(try JSONEncoder().encode(self), to: folder.appendingPathComponent(Self.fileName))
    }

    public static func read(from folder: URL) throws -> CAMInferenceStats {
        let url = folder.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FileError(path: url.path, what: "missing (infer-cam writes it when it finishes)")
        }
        do { return try JSONDecoder().decode(CAMInferenceStats.self, from: data) }
        catch { throw FileError(path: url.path, what: "not infer-cam's statistics file") }
    }
}
