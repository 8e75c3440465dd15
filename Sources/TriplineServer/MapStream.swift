import Foundation
import TriplineCore

/// A map's viewport (`GET /v1/map/stream`): a lon/lat box and the filters of the spatial
/// queries. Every interval the server sends the viewport's state as one frame: the entities
/// themselves while the box holds at most `maxPoints` of them (after the first frame only those
/// that moved, came into the box or left it), and otherwise server-side clusters: a
/// `columns` x `rows` grid over the box, each non-empty cell with its entity count and the mean
/// of their positions. A browser then draws a few thousand marks whatever the fleet's size.
///
/// Frames are computed on the engine thread, reading the position index; the state here (what
/// the client holds) is touched only there.
final class MapViewport: @unchecked Sendable {
    let box: BBox
    let filters: QueryFilters
    let maxPoints: Int
    let columns: Int
    let rows: Int
    /// The filters as a test of engine entity numbers, built on `pipelineID`'s pipeline.
    var accept: ((Int32) -> Bool)?
    var pipelineID: ObjectIdentifier?
    /// Points mode: the entities the client holds, with the time of the position it has.
    var sent: [Int32: Millis] = [:]
    var pointsMode = false
    /// Clusters mode: the last frame's cells, so that an unchanged picture is not sent again.
    var lastCells: [UInt8] = []

    init(box: BBox, filters: QueryFilters, maxPoints: Int, columns: Int, rows: Int) {
        self.box = box
        self.filters = filters
        self.maxPoints = maxPoints
        self.columns = columns
        self.rows = rows
    }

    /// The box's width in degrees (across the antimeridian when min lon > max lon).
    var width: Double { box.minX <= box.maxX ? box.maxX - box.minX : box.maxX + 360 - box.minX }

    /// Degrees east of the box's west edge.
    func offset(_ lon: Double) -> Double {
        let d = lon - box.minX
        return d < 0 ? d + 360 : d
    }
}

extension HostState {
    /// The next frame of a viewport as the `data:` JSON, and how many entities the box holds;
    /// nil JSON when nothing changed since the last frame.
    func mapFrame(_ v: MapViewport) -> (json: String?, count: Int) {
        let p = pipeline
        var full = false
        if v.pipelineID != ObjectIdentifier(p) || v.accept == nil {
            // First frame, or the engine was rebuilt (entity numbers may differ): start over.
            v.accept = queryAccept(v.filters)
            v.pipelineID = ObjectIdentifier(p)
            v.sent = [:]
            v.lastCells = []
            full = true
        }
        let index = latest.index
        let hits = index.within(box: v.box, accept: v.accept!)
        var out: [UInt8] = []
        if hits.count <= v.maxPoints {
            if !v.pointsMode { full = true; v.sent = [:]; v.pointsMode = true }
            var now: [Int32: Millis] = [:]
            now.reserveCapacity(hits.count)
            var changed: [Int32] = []
            for e in hits {
                let t = index.time[Int(e)]
                now[e] = t
                if v.sent[e] != t { changed.append(e) }
            }
            var gone: [String] = []
            for e in v.sent.keys where now[e] == nil { gone.append(p.entityName(e)) }
            v.sent = now
            if !full && changed.isEmpty && gone.isEmpty { return (nil, hits.count) }
            out.reserveCapacity(96 + changed.count * 64)
            out += Array("{\"mode\":\"points\",\"full\":\(full),\"count\":\(hits.count),\"watermark\":".utf8)
            appendWatermark(p.watermark, to: &out)
            out += Array(",\"points\":[".utf8)
            var names = changed.map { (p.entityName($0), $0) }
            names.sort { PositionQuery.idLess($0.0, $1.0) }
            for (n, (name, e)) in names.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                JSONText.appendString(name, to: &out)
                out.append(UInt8(ascii: ","))
                JSONText.appendString(entityInfo(name)?.kind ?? "unknown", to: &out)
                out.append(UInt8(ascii: ","))
                JSONText.appendNumber(index.lon[Int(e)], to: &out)
                out.append(UInt8(ascii: ","))
                JSONText.appendNumber(index.lat[Int(e)], to: &out)
                out += Array(",\(index.time[Int(e)])]".utf8)
            }
            out += Array("],\"gone\":[".utf8)
            gone.sort(by: PositionQuery.idLess)
            for (n, name) in gone.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.appendString(name, to: &out)
            }
            out += Array("]}".utf8)
            return (String(decoding: out, as: UTF8.self), hits.count)
        }
        // Clusters.
        if v.pointsMode { v.pointsMode = false; v.sent = [:]; full = true }
        let cols = v.columns, rows = v.rows
        let w = v.width, h = v.box.maxY - v.box.minY
        var count = [Int32](repeating: 0, count: cols * rows)
        var sumX = [Double](repeating: 0, count: cols * rows)
        var sumY = [Double](repeating: 0, count: cols * rows)
        for e in hits {
            let x = v.offset(index.lon[Int(e)]), y = index.lat[Int(e)]
            let c = w > 0 ? min(cols - 1, Int(x / w * Double(cols))) : 0
            let r = h > 0 ? min(rows - 1, Int((y - v.box.minY) / h * Double(rows))) : 0
            let k = r * cols + c
            count[k] += 1
            sumX[k] += x
            sumY[k] += y
        }
        var cells: [UInt8] = []
        cells.reserveCapacity(cols * rows * 24)
        var first = true
        for k in 0..<(cols * rows) where count[k] > 0 {
            if !first { cells.append(UInt8(ascii: ",")) }
            first = false
            var lon = v.box.minX + sumX[k] / Double(count[k])
            if lon > 180 { lon -= 360 }
            cells.append(UInt8(ascii: "["))
            JSONText.appendNumber((lon * 1e5).rounded() / 1e5, to: &cells)
            cells.append(UInt8(ascii: ","))
            JSONText.appendNumber((sumY[k] / Double(count[k]) * 1e5).rounded() / 1e5, to: &cells)
            cells += Array(",\(count[k])]".utf8)
        }
        if !full && cells == v.lastCells { return (nil, hits.count) }
        v.lastCells = cells
        out += Array("{\"mode\":\"clusters\",\"full\":true,\"count\":\(hits.count),\"watermark\":".utf8)
        appendWatermark(p.watermark, to: &out)
        out += Array(",\"grid\":[\(cols),\(rows)],\"cells\":[".utf8)
        out += cells
        out += Array("]}".utf8)
        return (String(decoding: out, as: UTF8.self), hits.count)
    }

    private func appendWatermark(_ w: Millis, to out: inout [UInt8]) {
        if w != .min {
            out.append(UInt8(ascii: "\""))
            EventTime.append(w, to: &out)
            out.append(UInt8(ascii: "\""))
        } else {
            out += Array("null".utf8)
        }
    }
}
