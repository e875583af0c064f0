import AnyIRKit
import XCTest

final class TilePlanTests: XCTestCase {
    func testPlansMatchTheReference() throws {
        let v = try Vectors.load()
        let plans = try v.index.objList("plans")
        XCTAssertGreaterThanOrEqual(plans.count, 5)
        for p in plans {
            let image = try p.intList("image"), tile = try p.intList("tile")
            let plan = try TilePlan(height: image[0], width: image[1], tileH: tile[0], tileW: tile[1], overlap: try p.int("overlap"))
            XCTAssertEqual([plan.paddedH, plan.paddedW], try p.intList("padded"), p.fieldPath)
            XCTAssertEqual(plan.paddedH - plan.height, try p.int("pad_bottom"), p.fieldPath)
            XCTAssertEqual(plan.paddedW - plan.width, try p.int("pad_right"), p.fieldPath)
            XCTAssertEqual(plan.ys, try p.intList("ys"), p.fieldPath)
            XCTAssertEqual(plan.xs, try p.intList("xs"), p.fieldPath)
            XCTAssertEqual(plan.tiles, try p.int("tiles"), p.fieldPath)
        }
    }

    func testBlendWeightsMatchTheReference() throws {
        let v = try Vectors.load()
        let tile = try v.index.intList("tile")
        let overlap = try v.index.int("overlap")
        let (ref, shape) = try v.f32(try v.index.obj("blend"))
        XCTAssertEqual(shape, tile)
        let plan = try TilePlan(height: tile[0], width: tile[1], tileH: tile[0], tileW: tile[1], overlap: overlap)
        let w = plan.weights()
        XCTAssertLessThanOrEqual(maxAbsDiff(w, ref), 1e-6)
        XCTAssertGreaterThan(w.min() ?? 0, 0, "weights never reach zero")
    }

    func testOverlapDefaultIsTheReferences() throws {
        let v = try Vectors.load()
        // the app never assumes an overlap: it reads the manifest's; the vectors carry the build's value
        XCTAssertEqual(try v.index.int("overlap"), try v.index.obj("photo").obj("plan").int("overlap"))
    }

    /// The rules the core was written to are the ones the vectors were made with.
    func testRulesAreTheVectors() throws {
        let v = try Vectors.load()
        let rules = try v.index.obj("rules")
        XCTAssertEqual(rules.keys(), Rules.text.keys.sorted())
        for k in rules.keys() { XCTAssertEqual(try rules.string(k), Rules.text[k], k) }
    }

    func testBadOverlapIsRefused() {
        XCTAssertThrowsError(try TilePlan(height: 10, width: 10, tileH: 64, tileW: 64, overlap: 32))
        XCTAssertThrowsError(try TilePlan(height: 0, width: 10, tileH: 64, tileW: 64, overlap: 8))
    }

    func testRampIsSymmetricAndOneInside() {
        let r = ramp(tile: 64, overlap: 16)
        for i in 0..<64 { XCTAssertEqual(r[i], r[63 - i]) }
        XCTAssertEqual(r[16], 1)
        XCTAssertEqual(r[47], 1)
        XCTAssertLessThan(r[0], 0.01)
        XCTAssertEqual(ramp(tile: 8, overlap: 0), [Float](repeating: 1, count: 8))
    }
}
