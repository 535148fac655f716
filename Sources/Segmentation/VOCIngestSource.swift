import Formats
import Foundation
import NN
import Storage

/// A VOC-layout folder as an ingest source: `JPEGImages/<id>.jpg`, `Annotations/<id>.xml` (image-level labels),
/// masks from `SegmentationClassAug/` or `SegmentationClass/` where present, optional saliency maps.
///
/// The class list is `classes.txt` in the root when there is one (as `pcs-mpi synth` writes), else VOC's 20.
public struct VOCIngestSource {
    public let root: URL
    public let ids: [String]
    public let classNames: [String]
    public let maskDirectory: URL?
    public let saliencyDirectory: URL?

    /// - Parameters:
    ///   - root: the VOC2012 folder.
    ///   - list: a split list file (see `VOC.ids(fromList:)`).
    ///   - masks: the mask folder (absolute, or relative to root); default `SegmentationClassAug`, else `SegmentationClass`.
    ///   - saliency: the saliency folder (absolute, or relative to root); default `saliency_map_DRS` when it exists.
    public init(root: URL, list: URL, masks: String?, saliency: String?) throws {
        self.root = root
        let fm = FileManager.default
        guard fm.fileExists(atPath: root.appendingPathComponent("JPEGImages").path) else {
            throw FileError(path: root.path, what: "not a VOC root: no JPEGImages folder")
        }
        guard let listText = try? String(contentsOf: list, encoding: .utf8) else {
            throw FileError(path: list.path, what: "cannot read the split list")
        }
        ids = VOC.ids(fromList: listText)
        guard !ids.isEmpty else { throw FileError(path: list.path, what: "the split list holds no ids") }
        let classList = root.appendingPathComponent("classes.txt")
        if fm.fileExists(atPath: classList.path) {
            // Present but unreadable is an error: falling back to VOC's names would label the dataset wrongly.
            guard let data = fm.contents(atPath: classList.path), let text = String(data: data, encoding: .utf8) else {
                throw FileError(path: classList.path, what: "cannot read the class list (UTF-8 text, one class per line)")
            }
            classNames = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !classNames.isEmpty else { throw FileError(path: classList.path, what: "the class list is empty") }
        } else {
            classNames = VOC.classNames
        }
        func folder(_ given: String?, defaults: [String]) throws -> URL? {
            if let given {
                let url = given.hasPrefix("/") ? URL(fileURLWithPath: given) : root.appendingPathComponent(given)
                guard fm.fileExists(atPath: url.path) else { throw FileError(path: url.path, what: "no such folder") }
                return url
            }
            return defaults.map { root.appendingPathComponent($0) }.first { fm.fileExists(atPath: $0.path) }
        }
        maskDirectory = try folder(masks, defaults: ["SegmentationClassAug", "SegmentationClass"])
        saliencyDirectory = try folder(saliency, defaults: ["saliency_map_DRS"])
    }

    /// Loads and validates image `i` of the list.
    public func record(_ i: Int) throws -> DatasetRecord {
        let id = ids[i]
        let xml = root.appendingPathComponent("Annotations/\(id).xml")
        guard let text = try? String(contentsOf: xml, encoding: .utf8) else {
            throw IngestError(rejected: RejectedImage(id: id, file: xml.path, reason: "missing or unreadable annotation"))
        }
        let fm = FileManager.default
        let mask = maskDirectory.map { $0.appendingPathComponent("\(id).png").path }.flatMap { fm.fileExists(atPath: $0) ? $0 : nil }
        let saliency = saliencyDirectory.map { $0.appendingPathComponent("\(id).png").path }.flatMap { fm.fileExists(atPath: $0) ? $0 : nil }
        return try ImageRecordLoader.load(id: id, imagePath: root.appendingPathComponent("JPEGImages/\(id).jpg").path,
                                          label: VOC.imageLabel(annotationXML: text, classNames: classNames),
                                          maskPath: mask, saliencyPath: saliency)
    }
}
