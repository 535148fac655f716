import Foundation

/// Where the three arrays' elements lie in the file.
struct COCOFileLayout {
    var images: [Range<Int>] = []
    var categories: [Range<Int>] = []
    var annotationImageIDs: [Int] = []
    var annotationStarts: [Int] = []
    var annotationEnds: [Int] = []
}

/// A byte-level walker over a mapped instances file.
///
/// It checks the top-level object and the three arrays strictly (keys, colons, commas, brackets) and, inside any
/// other value, only tracks strings (with `\` escapes) and bracket nesting, which is enough to find where a value
/// ends; element contents are validated later by `JSONDecoder`. Errors carry the byte offset of the problem.
struct COCOJSONScanner {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    let file: String

    private static let imagesKey = Array("images".utf8)
    private static let annotationsKey = Array("annotations".utf8)
    private static let categoriesKey = Array("categories".utf8)
    private static let imageIDKey = Array("image_id".utf8)
    /// Nesting is tracked in a 64-bit stack of bracket kinds (COCO nests 4 deep).
    private static let maxDepth = 64

    func scanInstancesFile() throws -> COCOFileLayout {
        var layout = COCOFileLayout()
        var seen = (images: false, annotations: false, categories: false)
        var i = try expect(UInt8(ascii: "{"), at: skipSpace(0), "at the start of the file (an instances file is one JSON object)")
        i = skipSpace(i)
        if i < count, bytes[i] == UInt8(ascii: "}") { i += 1 } else {
            while true {
                let keyStart = try expect(UInt8(ascii: "\""), at: i, "(a key of the top-level object)") - 1
                let keyEnd = try stringEnd(keyStart)
                let key = (keyStart + 1)..<(keyEnd - 1)
                i = skipSpace(try expect(UInt8(ascii: ":"), at: skipSpace(keyEnd), "after a top-level key"))
                if matches(key, Self.imagesKey) {
                    seen.images = true
                    i = try forEachElement(ofArrayAt: i, "images") { start in
                        let end = try valueEnd(start)
                        layout.images.append(start..<end)
                        return end
                    }
                } else if matches(key, Self.categoriesKey) {
                    seen.categories = true
                    i = try forEachElement(ofArrayAt: i, "categories") { start in
                        let end = try valueEnd(start)
                        layout.categories.append(start..<end)
                        return end
                    }
                } else if matches(key, Self.annotationsKey) {
                    seen.annotations = true
                    i = try forEachElement(ofArrayAt: i, "annotations") { start in
                        let (end, imageID) = try annotationEnd(start)
                        layout.annotationImageIDs.append(imageID)
                        layout.annotationStarts.append(start)
                        layout.annotationEnds.append(end)
                        return end
                    }
                } else {
                    i = try valueEnd(i)
                }
                i = skipSpace(i)
                guard i < count else { throw endOfFile("inside the top-level object") }
                if bytes[i] == UInt8(ascii: ",") { i = skipSpace(i + 1); continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                throw failure(i, "expected ',' or '}' in the top-level object, found \(describe(i))")
            }
        }
        i = skipSpace(i)
        guard i == count else { throw failure(i, "unexpected \(describe(i)) after the top-level object") }
        for (present, name) in [(seen.images, "images"), (seen.annotations, "annotations"), (seen.categories, "categories")] where !present {
            throw COCOIndexError(file: file, offset: nil, reason: "no \"\(name)\" array (is this an instances file?)")
        }
        return layout
    }

    // MARK: - Pieces

    private func failure(_ offset: Int, _ reason: String) -> COCOIndexError {
        COCOIndexError(file: file, offset: offset, reason: "malformed JSON: \(reason)")
    }

    private func endOfFile(_ context: String) -> COCOIndexError {
        failure(count, "unexpected end of file \(context) (truncated?)")
    }

    private func describe(_ i: Int) -> String {
        let b = bytes[i]
        return (0x21...0x7e).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : String(format: "byte 0x%02x", b)
    }

    private func skipSpace(_ i: Int) -> Int {
        var i = i
        while i < count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0a, 0x0d: i += 1
            default: return i
            }
        }
        return i
    }

    /// Checks that `bytes[i] == byte` and returns `i + 1`.
    private func expect(_ byte: UInt8, at i: Int, _ context: String) throws -> Int {
        guard i < count else { throw endOfFile(context) }
        guard bytes[i] == byte else {
            throw failure(i, "expected '\(Character(Unicode.Scalar(byte)))' \(context), found \(describe(i))")
        }
        return i + 1
    }

    private func matches(_ range: Range<Int>, _ key: [UInt8]) -> Bool {
        guard range.count == key.count else { return false }
        for (k, b) in zip(range, key) where bytes[k] != b { return false }
        return true
    }

    /// `bytes[start]` is an opening quote; returns the offset just past the closing one.
    private func stringEnd(_ start: Int) throws -> Int {
        var i = start + 1
        while i < count {
            switch bytes[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i + 1
            default: i += 1
            }
        }
        throw endOfFile("inside the string that starts at byte offset \(start)")
    }

    /// Returns the offset just past the JSON value that starts at `start`.
    private func valueEnd(_ start: Int) throws -> Int {
        guard start < count else { throw endOfFile("where a value was expected") }
        let open = bytes[start]
        guard open == UInt8(ascii: "{") || open == UInt8(ascii: "[") else {
            return open == UInt8(ascii: "\"") ? try stringEnd(start) : try primitiveEnd(start)
        }
        var kinds: UInt64 = 0 // bit k = 1 when the k-th innermost open bracket is '{'
        var depth = 0
        var i = start
        while i < count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i = try stringEnd(i)
                continue
            }
            if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                guard depth < Self.maxDepth else { throw failure(i, "nesting deeper than \(Self.maxDepth) levels") }
                kinds = kinds << 1 | (b == UInt8(ascii: "{") ? 1 : 0)
                depth += 1
            } else if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                guard (b == UInt8(ascii: "}")) == (kinds & 1 == 1) else {
                    throw failure(i, "\(describe(i)) does not match the open \(kinds & 1 == 1 ? "'{'" : "'['")")
                }
                kinds >>= 1
                depth -= 1
                if depth == 0 { return i + 1 }
            }
            i += 1
        }
        throw endOfFile("inside the value that starts at byte offset \(start)")
    }

    /// A number or `true`/`false`/`null`: any run of the bytes they are made of.
    private func primitiveEnd(_ start: Int) throws -> Int {
        var i = start
        while i < count, Self.isPrimitiveByte(bytes[i]) { i += 1 }
        guard i > start else { throw failure(start, "unexpected \(describe(start)) where a value was expected") }
        return i
    }

    private static func isPrimitiveByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
            || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || b == UInt8(ascii: ".") || b == UInt8(ascii: "E")
    }

    /// Walks the array at `start`, calling `element` with each element's first byte; `element` returns the offset
    /// just past it. Returns the offset just past the `]`.
    private func forEachElement(ofArrayAt start: Int, _ name: String, _ element: (Int) throws -> Int) throws -> Int {
        var i = skipSpace(try expect(UInt8(ascii: "["), at: start, "(the value of \"\(name)\" must be an array)"))
        if i < count, bytes[i] == UInt8(ascii: "]") { return i + 1 }
        while true {
            i = skipSpace(try element(i))
            guard i < count else { throw endOfFile("inside the \"\(name)\" array") }
            if bytes[i] == UInt8(ascii: ",") { i = skipSpace(i + 1); continue }
            if bytes[i] == UInt8(ascii: "]") { return i + 1 }
            throw failure(i, "expected ',' or ']' in the \"\(name)\" array, found \(describe(i))")
        }
    }

    /// Walks one annotation object's keys, reading `image_id` and skipping every other value.
    private func annotationEnd(_ start: Int) throws -> (end: Int, imageID: Int) {
        var i = skipSpace(try expect(UInt8(ascii: "{"), at: start, "(an annotation must be an object)"))
        var imageID: Int?
        if i < count, bytes[i] == UInt8(ascii: "}") { i += 1 } else {
            while true {
                let keyStart = try expect(UInt8(ascii: "\""), at: i, "(a key of an annotation)") - 1
                let keyEnd = try stringEnd(keyStart)
                i = skipSpace(try expect(UInt8(ascii: ":"), at: skipSpace(keyEnd), "after an annotation key"))
                if matches((keyStart + 1)..<(keyEnd - 1), Self.imageIDKey) {
                    (imageID, i) = try integer(at: i)
                } else {
                    i = try valueEnd(i)
                }
                i = skipSpace(i)
                guard i < count else { throw endOfFile("inside the annotation that starts at byte offset \(start)") }
                if bytes[i] == UInt8(ascii: ",") { i = skipSpace(i + 1); continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                throw failure(i, "expected ',' or '}' in an annotation, found \(describe(i))")
            }
        }
        guard let imageID else {
            throw COCOIndexError(file: file, offset: start, reason: "annotation has no \"image_id\"")
        }
        return (i, imageID)
    }

    /// A JSON integer (optional '-', then 1–18 digits) and the offset just past it.
    private func integer(at start: Int) throws -> (Int, Int) {
        var i = start
        let negative = i < count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var value = 0
        let firstDigit = i
        while i < count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9"), i - firstDigit < 18 {
            value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
            i += 1
        }
        guard i > firstDigit, i == count || !Self.isPrimitiveByte(bytes[i]) else {
            throw failure(start, "\"image_id\" is not an integer")
        }
        return (negative ? -value : value, i)
    }
}
