import Foundation

/// PASCAL VOC 2012: class names, split lists and the image-level label rule (PIPELINE.md §3.1, §11.1).
public enum VOC {
    /// The 20 foreground classes in VOC order; index c is segmentation label c + 1.
    public static let classNames = [
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ]

    /// The image-level label of one annotation file: every `<name>` element whose text is a class name sets that
    /// class (difficult and truncated objects count; part names such as `head` are not class names and are ignored).
    ///
    /// This reads the XML as text on purpose: the rule is about `<name>` elements only, and VOC's files are simple.
    public static func imageLabel(annotationXML text: String, classNames: [String] = classNames) -> [Float] {
        var label = [Float](repeating: 0, count: classNames.count)
        let position = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
        var rest = text[...]
        while let open = rest.range(of: "<name>") {
            rest = rest[open.upperBound...]
            guard let close = rest.range(of: "</name>") else { break }
            let name = rest[..<close.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
            if let c = position[name] { label[c] = 1 }
            rest = rest[close.upperBound...]
        }
        return label
    }

    /// The ids of a split list. Accepts upstream's forms: one id per line (`2007_000032`), or
    /// `/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png` (the id is the first token's file stem),
    /// and the class-list form `2007_000032 3 7` (the first token). Blank lines and `#` comments are skipped.
    public static func ids(fromList text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            let first = trimmed.split(whereSeparator: \.isWhitespace)[0]
            let file = first.split(separator: "/").last.map(String.init) ?? String(first)
            if let dot = file.lastIndex(of: "."), first.contains("/") || file.hasSuffix(".jpg") || file.hasSuffix(".png") {
                return String(file[..<dot])
            }
            return file
        }
    }
}
