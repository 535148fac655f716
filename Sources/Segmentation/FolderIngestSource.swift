import Formats
import Foundation
import NN
import Storage

/// A user's own images as an ingest source: a folder of JPEG/PNG files and a CSV of their labels.
///
/// `labels.csv` has a header line and then one line per image: `file,labels`, where `labels` lists class names
/// separated by spaces or semicolons (`dog_01.jpg,dog person`); an image with no classes has an empty field.
/// The id is the file's stem. Classes come from `--classes` (one name per line, in label order) or, without it,
/// from the names in the CSV, sorted. Masks, when given, are `<stem>.png` label maps in a folder of their own.
public struct FolderIngestSource {
    public let images: URL
    public let entries: [(file: String, classes: [String])]
    public let classNames: [String]
    public let masks: URL?

    public init(images: URL, labels: URL, classes: URL?, masks: URL?) throws {
        self.images = images
        self.masks = masks
        guard let text = try? String(contentsOf: labels, encoding: .utf8) else {
            throw FileError(path: labels.path, what: "cannot read the label CSV")
        }
        var rows: [(String, [String])] = []
        for (n, line) in text.split(whereSeparator: \.isNewline).enumerated() where n > 0 {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let fields = trimmed.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false)
            let names = fields.count > 1 ? fields[1].split(whereSeparator: { $0 == " " || $0 == ";" }).map(String.init) : []
            rows.append((String(fields[0]).trimmingCharacters(in: .whitespaces), names))
        }
        guard !rows.isEmpty else { throw FileError(path: labels.path, what: "no image lines after the header") }
        entries = rows
        if let classes {
            guard let list = try? String(contentsOf: classes, encoding: .utf8) else {
                throw FileError(path: classes.path, what: "cannot read the class list")
            }
            classNames = list.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } else {
            classNames = Array(Set(rows.flatMap { $0.1 })).sorted()
        }
        let known = Set(classNames)
        if let (file, names) = rows.first(where: { !Set($0.1).isSubset(of: known) }) {
            let unknown = names.filter { !known.contains($0) }.joined(separator: " ")
            throw FileError(path: labels.path, what: "\(file) names unknown class(es) \(unknown)")
        }
    }

    public var count: Int { entries.count }

    /// Loads and validates image `i`.
    public func record(_ i: Int) throws -> DatasetRecord {
        let (file, names) = entries[i]
        let id = (file as NSString).deletingPathExtension.replacingOccurrences(of: "/", with: "_")
        var label = [Float](repeating: 0, count: classNames.count)
        for name in names { if let c = classNames.firstIndex(of: name) { label[c] = 1 } }
        let mask = masks.map { $0.appendingPathComponent("\((file as NSString).deletingPathExtension).png").path }
            .flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        return try ImageRecordLoader.load(id: id, imagePath: images.appendingPathComponent(file).path, label: label, maskPath: mask)
    }
}
