import XCTest
@testable import Segmentation

final class VOCAnnotationTests: XCTestCase {
    func testLabelFromXMLCountsEveryClassNameAndIgnoresParts() {
        let xml = """
        <annotation><filename>2007_000032.jpg</filename>
          <object><name>aeroplane</name><difficult>1</difficult></object>
          <object><name> person </name><truncated>1</truncated>
            <part><name>head</name></part><part><name>hand</name></part></object>
          <object><name>aeroplane</name></object>
          <object><name>tvmonitor</name></object>
        </annotation>
        """
        let label = VOC.imageLabel(annotationXML: xml)
        XCTAssertEqual(label.count, 20)
        XCTAssertEqual(label.enumerated().filter { $0.element == 1 }.map(\.offset), [0, 14, 19])
    }

    func testLabelWithACustomClassList() {
        let label = VOC.imageLabel(annotationXML: "<object><name>bird</name></object><object><name>cat</name></object>",
                                   classNames: ["aeroplane", "bicycle", "bird"])
        XCTAssertEqual(label, [0, 0, 1])
    }

    func testListFormats() {
        let text = """
        2007_000032
        /JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png
        # a comment

        2007_000063 5 8
        synth_000001
        """
        XCTAssertEqual(VOC.ids(fromList: text), ["2007_000032", "2007_000039", "2007_000063", "synth_000001"])
    }

    func testClassOrderIsVOCs() {
        XCTAssertEqual(VOC.classNames.count, 20)
        XCTAssertEqual(VOC.classNames[14], "person")
        XCTAssertEqual(VOC.classNames[19], "tvmonitor")
    }
}
