import Formats
import Foundation
import NN

/// An 8-bit image in row-major, interleaved (HWC) order: 3 channels for RGB, 1 for grey or label indices.
public struct PixelImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels,
                     "PixelImage \(width)x\(height)x\(channels) needs \(width * height * channels) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A black image.
    public init(width: Int, height: Int, channels: Int) {
        self.init(width: width, height: height, channels: channels, pixels: [UInt8](repeating: 0, count: width * height * channels))
    }
}

/// A failure to read or write an image, naming the file (or the id the bytes belong to). One line, for users.
public struct ImageCodecError: FileProblem {
    public let file: String
    public let what: String
    public init(file: String, what: String) {
        self.file = file
        self.what = what
    }
}

/// What an encoded file holds, judged by its first bytes rather than its name.
public enum ImageFormat: String, Sendable {
    case jpeg, png

    public init?(sniffing bytes: [UInt8]) {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            self = .jpeg
        } else if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else {
            return nil
        }
    }
}
