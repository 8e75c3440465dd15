/// `speed` (spec section 5.10): implied speed between consecutive positions of an entity,
/// computed once per position for every speed rule.
struct SpeedEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var maxKmh: Double
    }
    var rules: [Member] = []

    var isEmpty: Bool { rules.isEmpty }

    /// The entity's previous position (time == .min when there was none). The engine keeps
    /// the latest position in the entity's record, shared by every speed rule.
    struct Previous {
        var lon: Double, lat: Double, time: Millis, ref: EventRef
    }

    /// (Mutating, though it changes nothing: called on the engine's stored evaluator, a
    /// non-mutating method got a copy, its rules retained and released per position.)
    mutating func onPosition(_ ev: Event, ref: EventRef, previous: Previous, matching: some EntityMatching, emitter: inout Emitter) {
        let prevLon = previous.lon, prevLat = previous.lat, prevTime = previous.time, prevRef = previous.ref
        guard prevTime != .min else { return }
        // The distance costs two sines, two cosines and an arcsine; an entity no speed rule
        // selects (most of a mixed estate when the rules name one kind) skips it.
        guard let first = rules.firstIndex(where: { matching.matches(ev.entity, $0.selector) }) else { return }
        let d = Haversine.distance(prevLon, prevLat, ev.lon, ev.lat)
        let dt = ev.time - prevTime
        let kmh: Double
        if dt == 0 {
            if d <= 1 { return }
            kmh = .infinity
        } else {
            kmh = d * 3600 / Double(dt)  // (d / 1000 m) / (dt / 3,600,000 ms)
        }
        // (By index: a slice of `rules` retained the array.)
        for j in first..<rules.count where kmh > rules[j].maxKmh && matching.matches(ev.entity, rules[j].selector) {
            let m = rules[j]
            emitter.emit(rule: m.rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: .two(prevRef, ref),
                         details: kmh.isFinite ? .numbers(.kmh, kmh, .distanceM, d) : AlertDetails([("kmh", .null), ("distance_m", .number(d))]))
        }
    }
}
