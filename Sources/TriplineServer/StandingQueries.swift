import Foundation
import TriplineCore

/// A standing query: an area (a radius round a point, a zone or posted shape, a box) and
/// filters, with the entities its answer holds now. The engine thread re-evaluates an entity
/// for every standing query each time one of its events is accepted (a position can move it in
/// or out, a reading can change a `where=metric:` condition), and streams `enter` and `leave`
/// as the answer changes.
final class StandingQuery {
    enum Area {
        case radius(lon: Double, lat: Double, radiusM: Double)
        case covers(ZoneIndex)
        case box(BBox)
    }

    let area: Area
    let filters: QueryFilters
    /// Built on the engine's current pipeline; built again after a rebuild.
    var accept: (Int32) -> Bool
    /// By entity id (engine numbers can change when the engine is rebuilt).
    var members = Set<String>()
    let out: AsyncStream<String>.Continuation

    init(area: Area, filters: QueryFilters, accept: @escaping (Int32) -> Bool, out: AsyncStream<String>.Continuation) {
        self.area = area
        self.filters = filters
        self.accept = accept
        self.out = out
    }

    func inArea(_ x: Double, _ y: Double) -> Bool {
        switch area {
        case .radius(let cx, let cy, let r): return Haversine.distance(cx, cy, x, y) <= r
        case .covers(let index):
            var hit: [Int32] = []
            index.zones(coveringX: x, y: y, into: &hit)
            return !hit.isEmpty
        case .box(let b):
            guard y >= b.minY && y <= b.maxY else { return false }
            return b.minX <= b.maxX ? (x >= b.minX && x <= b.maxX) : (x >= b.minX || x <= b.maxX)
        }
    }
}

extension HostState {
    /// The filters of a query as a test of an engine entity number (on the engine thread).
    func queryAccept(_ f: QueryFilters) -> (Int32) -> Bool {
        let p = pipeline
        let latest = self.latest
        let wantedIds: Set<Int32>? = f.ids.map { Set($0.compactMap { p.entityNumber($0) }) }
        let needInfo = f.kinds != nil || !f.tags.isEmpty
        let conds: [(QueryFilters.Condition, Int32?)] = f.conditions.map { ($0, p.nameNumber($0.name)) }
        return { [unowned self] e in
            if let wantedIds, !wantedIds.contains(e) { return false }
            for (c, n) in conds {
                // A name no event used yet: looked up again (an event may have brought it).
                guard let n = n ?? p.nameNumber(c.name) else { return false }
                let v = c.source == .metric ? latest.reading(n, e) : latest.attr(n, e)
                guard let v, c.holds(v) else { return false }
            }
            if needInfo {
                let info = self.entityInfo(p.entityName(e))
                if let kinds = f.kinds, !kinds.contains(info?.kind ?? "unknown") { return false }
                for (key, value) in f.tags {
                    guard let have = info?.tags[key] else { return false }
                    if let value, have != value { return false }
                }
            }
            return true
        }
    }

    /// Registers a standing query; returns its number and its answer now (by id).
    func registerStanding(area: StandingQuery.Area, filters: QueryFilters, out: AsyncStream<String>.Continuation) -> (Int, [String]) {
        let q = StandingQuery(area: area, filters: filters, accept: queryAccept(filters), out: out)
        let index = latest.index
        var lines: [(String, String)] = []
        for e in 0..<index.time.count where index.time[e] != .min {
            if q.inArea(index.lon[e], index.lat[e]) && q.accept(Int32(e)) {
                let name = pipeline.entityName(Int32(e))
                q.members.insert(name)
                lines.append((name, entityLine(Int32(e))))
            }
        }
        let id = nextStanding
        nextStanding += 1
        standing[id] = q
        return (id, lines.sorted { PositionQuery.idLess($0.0, $1.0) }.map(\.1))
    }

    /// An entity's latest position as the JSON of an `enter` or snapshot item.
    func entityLine(_ e: Int32) -> String {
        let index = latest.index
        let i = Int(e)
        let id = pipeline.entityName(e)
        var out: [UInt8] = Array("{\"id\":".utf8)
        JSONText.appendString(id, to: &out)
        out += Array(",\"kind\":".utf8)
        JSONText.appendString(entityInfo(id)?.kind ?? "unknown", to: &out)
        out += Array(",\"lon\":".utf8)
        JSONText.appendNumber(index.lon[i], to: &out)
        out += Array(",\"lat\":".utf8)
        JSONText.appendNumber(index.lat[i], to: &out)
        out += Array(",\"time\":\"".utf8)
        EventTime.append(index.time[i], to: &out)
        out += Array("\"}".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    /// After an event of entity `e` was accepted: `enter` or `leave` where its membership changed.
    func standingCheck(_ e: Int32) {
        let index = latest.index
        let i = Int(e)
        guard i < index.time.count, index.time[i] != .min else { return }
        let name = pipeline.entityName(e)
        for q in standing.values {
            let now = q.inArea(index.lon[i], index.lat[i]) && q.accept(e)
            if now == q.members.contains(name) { continue }
            if now {
                q.members.insert(name)
                q.out.yield("event: enter\ndata: \(entityLine(e))\n\n")
            } else {
                q.members.remove(name)
                q.out.yield("event: leave\ndata: \(entityLine(e))\n\n")
            }
        }
    }

    /// After a rebuild (the positions are read again from the log): every entity re-evaluated.
    func standingRecheckAll() {
        guard !standing.isEmpty else { return }
        let index = latest.index
        for q in standing.values {
            q.accept = queryAccept(q.filters)
            var now = Set<String>()
            for e in 0..<index.time.count where index.time[e] != .min {
                if q.inArea(index.lon[e], index.lat[e]) && q.accept(Int32(e)) { now.insert(pipeline.entityName(Int32(e))) }
            }
            for name in now.subtracting(q.members).sorted(by: PositionQuery.idLess) {
                q.out.yield("event: enter\ndata: \(entityLine(pipeline.entityNumber(name)!))\n\n")
            }
            for name in q.members.subtracting(now).sorted(by: PositionQuery.idLess) {
                // Erased, or no longer matching: the entity's position if it still has one.
                if let e = pipeline.entityNumber(name), index.has(e) {
                    q.out.yield("event: leave\ndata: \(entityLine(e))\n\n")
                } else {
                    var out: [UInt8] = Array("{\"id\":".utf8)
                    JSONText.appendString(name, to: &out)
                    q.out.yield("event: leave\ndata: \(String(decoding: out, as: UTF8.self))}\n\n")
                }
            }
            q.members = now
        }
    }
}
