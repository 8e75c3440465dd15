/// `enter` and `exit` (spec section 5.1). The per-(entity, zone) state is shared by every
/// geofence rule: the engine keeps, per entity, the sorted set of zones its latest position
/// is inside, and hands each evaluator the zones entered and exited by a position.
struct GeofenceEvaluator {
    struct Member {
        var rule: Int32
        var selector: Int32
        var zoneMask: ZoneMask
    }
    var enterRules: [Member] = []
    var exitRules: [Member] = []

    var isEmpty: Bool { enterRules.isEmpty && exitRules.isEmpty }

    /// A position moved `entity` into `entered` and out of `exited` (both sorted zone ids).
    func onTransitions(entity: Int32, entered: ArraySlice<Int32>, exited: ArraySlice<Int32>, time: Millis, ref: EventRef,
                       engine: Engine, emitter: inout Emitter) {
        if !entered.isEmpty {
            for m in enterRules where engine.matches(entity, m.selector) {
                for z in entered where m.zoneMask.contains(z) {
                    emitter.emit(rule: m.rule, key: .entityZone(entity, z), firing: true, time: time, evidence: [ref], details: [])
                }
            }
        }
        if !exited.isEmpty {
            for m in exitRules where engine.matches(entity, m.selector) {
                for z in exited where m.zoneMask.contains(z) {
                    emitter.emit(rule: m.rule, key: .entityZone(entity, z), firing: true, time: time, evidence: [ref], details: [])
                }
            }
        }
    }
}

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

    func onPosition(_ ev: Event, ref: EventRef, previous: Previous, engine: Engine, emitter: inout Emitter) {
        let prevLon = previous.lon, prevLat = previous.lat, prevTime = previous.time, prevRef = previous.ref
        guard prevTime != .min else { return }
        let d = Haversine.distance(prevLon, prevLat, ev.lon, ev.lat)
        let dt = ev.time - prevTime
        let kmh: Double
        if dt == 0 {
            if d <= 1 { return }
            kmh = .infinity
        } else {
            kmh = d * 3600 / Double(dt)  // (d / 1000 m) / (dt / 3,600,000 ms)
        }
        for m in rules where kmh > m.maxKmh && engine.matches(ev.entity, m.selector) {
            emitter.emit(rule: m.rule, key: .entity(ev.entity), firing: true, time: ev.time, evidence: [prevRef, ref],
                         details: [("kmh", kmh.isFinite ? .number(kmh) : .null), ("distance_m", .number(d))])
        }
    }
}

/// A set of zone ids as a bitset.
struct ZoneMask {
    var words: [UInt64]
    /// nil words = all zones.
    var all: Bool

    static func build(_ selector: Selector?, zones: [Zone]) -> ZoneMask {
        guard let selector else { return ZoneMask(words: [], all: true) }
        var w = Array(repeating: UInt64(0), count: (zones.count + 63) / 64)
        for (i, z) in zones.enumerated() where selector.matches(id: z.id, class: z.category, tags: z.tags) {
            w[i >> 6] |= 1 << UInt64(i & 63)
        }
        return ZoneMask(words: w, all: false)
    }

    @inline(__always)
    func contains(_ z: Int32) -> Bool {
        all || (words[Int(z) >> 6] >> UInt64(z & 63)) & 1 == 1
    }
}

/// Which entity selectors each entity matches: one bit per distinct selector.
struct MatchTable {
    var stride: Int
    var bits: [UInt64] = []

    @inline(__always)
    func matches(_ e: Int32, _ s: Int32) -> Bool {
        (bits[Int(e) * stride + Int(s >> 6)] >> UInt64(s & 63)) & 1 == 1
    }
}
