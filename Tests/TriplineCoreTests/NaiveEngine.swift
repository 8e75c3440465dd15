import Foundation
@testable import TriplineCore

/// A deliberately naive reference for every rule kind: it keeps the whole history and, at
/// every instant that could matter (each event, and each event time plus every duration of
/// every rule), recomputes each rule's state from scratch, emitting a transition whenever the
/// state differs from the last one. Instants with no event are evaluated before the events
/// of the same time (timers fire first). No watermark: the input must be sorted by time.
struct NaiveEngine {
    struct Ev {
        var entity: String
        var time: Millis
        var type: String
        var lon = 0.0, lat = 0.0
        var metric = "", value = 0.0
        var counterpart = ""
        var attrs: [String: AttrLiteral] = [:]
        var id = ""
        var order = 0
        var zones: Set<String> = []
        /// Zones entered and exited by this position (set once, when it is applied).
        var entered: Set<String> = []
        var exited: Set<String> = []
        /// The same, per steadied membership (`views`): zones inside after this position,
        /// entered (with the first position of the confirming run) and exited.
        var vInside: [Set<String>] = []
        var vEntered: [[String: String]] = []
        var vExited: [Set<String>] = []
        /// Distances to the boundary of each zone the position is outside (when a rule has a margin).
        var boundary: [String: Double] = [:]
    }
    struct Out {
        var time: Millis, rule: String, e: String, z: String, pa: String, pb: String, g: String?, seq: Int
        var firing: Bool
        var evidence: [String]
        var details: [(String, DetailValue)]
    }

    let zones: [Zone]
    let entities: [String: EntityInfo]
    let rules: [Rule]
    var history: [Ev] = []
    /// The history by entity (the same events, for speed only), and the entities seen, sorted.
    var byEntity: [String: [Ev]] = [:]
    var seenEntities: [String] = []
    var out: [Out] = []
    var seq = 0
    /// Rule id + key -> current state (firing) for stateful kinds.
    var state: [String: Bool] = [:]
    var lastCompletion: [String: Int] = [:]
    /// Per rule, the instants (event time + the rule's duration) at which it is evaluated
    /// without an event.
    var ruleInstants: [Set<Millis>] = []   // sequence: rule + entity -> order of the last completing event
    /// The distinct `enter_after` / `exit_margin_m` of the rules: every rule that has one
    /// reads its own steadied membership (even one equal to the default, which must then
    /// give exactly the plain membership).
    let views: [ZoneJitter]

    init(zones: [Zone], entities: [EntityInfo], rules: [Rule]) {
        self.zones = zones
        self.entities = Dictionary(uniqueKeysWithValues: entities.map { ($0.id, $0) })
        self.rules = rules
        var vs: [ZoneJitter] = []
        for r in rules { if let j = r.jitter, !vs.contains(j) { vs.append(j) } }
        self.views = vs
    }

    func viewOf(_ r: Rule) -> Int? { r.jitter.flatMap { views.firstIndex(of: $0) } }
    /// The zones position p is inside as rule r sees them.
    func insideZones(_ p: Ev, _ r: Rule) -> Set<String> { viewOf(r).map { p.vInside[$0] } ?? p.zones }
    /// The zones entered and exited by position x as rule r sees them.
    func transitions(_ x: Ev, _ r: Rule) -> (Set<String>, Set<String>) {
        guard let v = viewOf(r), x.type == "position" else { return (x.entered, x.exited) }
        return (Set(x.vEntered[v].keys), x.vExited[v])
    }

    /// The distance from (lon, lat) to a zone's boundary, by sampling each polygon edge at
    /// 512 points (a circle: distance to the centre less the radius).
    static func sampledBoundaryDistance(_ shape: ZoneShape, _ lon: Double, _ lat: Double) -> Double {
        switch shape {
        case .circle(let cx, let cy, let r): return abs(Haversine.distance(cx, cy, lon, lat) - r)
        case .polygons(let ps):
            var best = Double.infinity
            for p in ps {
                for ring in [p.shell] + p.holes {
                    let n = ring.pointCount
                    for i in 0..<n {
                        let j = (i + 1) % n
                        for k in 0...512 {
                            let t = Double(k) / 512
                            let x = ring.x(i) + t * (ring.x(j) - ring.x(i)), y = ring.y(i) + t * (ring.y(j) - ring.y(i))
                            best = min(best, Haversine.distance(lon, lat, x, y))
                        }
                    }
                }
            }
            return best
        }
    }

    /// Steadied membership of zone z for an entity's positions `ps` (processing order), from
    /// scratch: after the last position, is it inside, did that position enter (and which
    /// position began the confirming run) or exit?
    func steadied(_ j: ZoneJitter, _ ps: [Ev], _ z: Zone) -> (inside: Bool, enteredFirst: String?, exited: Bool) {
        var inside = false
        var run: [Ev] = []
        var result: (Bool, String?, Bool) = (false, nil, false)
        for p in ps {
            result = (inside, nil, false)
            let raw = p.zones.contains(z.id)
            if inside {
                if raw || (j.exitMarginM > 0 && p.boundary[z.id]! <= j.exitMarginM) { continue }
                inside = false
                result = (false, nil, true)
            } else if raw {
                run.append(p)
                let confirmed: Bool
                switch j.enterAfter {
                case .fixes(let k): confirmed = run.count >= k
                case .duration(let d): confirmed = p.time - run[0].time >= d
                }
                if confirmed {
                    inside = true
                    result = (true, run[0].id, false)
                    run = []
                }
            } else {
                run = []
            }
        }
        return result
    }

    func info(_ e: String) -> EntityInfo { entities[e] ?? EntityInfo(id: e) }
    func zoneMatches(_ sel: Selector?, _ zid: String) -> Bool {
        guard let sel else { return true }
        let z = zones.first { $0.id == zid }!
        return sel.matches(id: z.id, class: z.category, tags: z.tags)
    }
    func filterMatches(_ f: EventFilter, _ x: Ev) -> Bool {
        if x.type != f.type { return false }
        if let m = f.metric, x.metric != m { return false }
        for (k, v) in f.attrs where x.attrs[k] != v { return false }
        if let zs = f.zones {
            if x.type != "position" || !x.zones.contains(where: { zoneMatches(zs, $0) }) { return false }
        }
        return true
    }
    func positions(_ e: String) -> [Ev] { (byEntity[e] ?? []).filter { $0.type == "position" } }
    /// The zones entered and exited by position x (compared with the entity's previous position).
    func computeTransitions(_ x: Ev) -> (Set<String>, Set<String>) {
        guard x.type == "position" else { return ([], []) }
        let prev = (byEntity[x.entity] ?? []).last { $0.type == "position" && $0.order < x.order }
        let before = prev?.zones ?? []
        return (x.zones.subtracting(before), before.subtracting(x.zones))
    }

    mutating func emit(_ r: Rule, e: String = "", z: String = "", pair: (String, String)? = nil, g: String? = nil, firing: Bool, time: Millis, evidence: [String], details: [(String, DetailValue)]) {
        var pa = "", pb = ""
        if let pair { (pa, pb) = Array(pair.0.utf8).lexicographicallyPrecedes(Array(pair.1.utf8)) ? (pair.0, pair.1) : (pair.1, pair.0) }
        out.append(Out(time: time, rule: r.id, e: e, z: z, pa: pa, pb: pb, g: g, seq: seq, firing: firing, evidence: Array(evidence.prefix(100)), details: details))
        seq += 1
    }

    /// The text of a group or distinct value (spec 1.3, 5b.11), written independently of the
    /// engine for the values the tests use: whole numbers below 1e15 as integers, others as
    /// Swift writes them (the same as ECMAScript for the halves and quarters the tests use).
    static func text(_ v: AttrLiteral) -> String {
        switch v {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
        }
    }
    func groupOf(_ by: GroupBy, _ x: Ev) -> String? {
        switch by {
        case .counterpart: return x.type == "contact" && !x.counterpart.isEmpty ? x.counterpart : nil
        case .attr(let a): return x.attrs[a].map(Self.text)
        }
    }
    /// The aggregate field of x: a finite number (numeric functions) or a text (count_distinct).
    func fieldOf(_ of: AggregateField, numeric: Bool, _ x: Ev) -> AttrLiteral? {
        switch of {
        case .value: return x.type == "reading" && x.value.isFinite ? .number(x.value) : nil
        case .counterpart: return x.type == "contact" && !x.counterpart.isEmpty ? .string(x.counterpart) : nil
        case .attr(let a):
            guard let v = x.attrs[a] else { return nil }
            if numeric { if case .number(let d) = v, d.isFinite { return v } else { return nil } }
            return v
        }
    }

    /// Sets a stateful key's state; returns true when it changed.
    mutating func transition(_ key: String, _ now: Bool) -> Bool {
        let before = state[key] ?? false
        state[key] = now
        return before != now
    }

    // MARK: - Running

    mutating func run(_ events: [Ev], until: Millis) {
        // A rule's state can change only at an event or at an event's time plus the rule's
        // duration: each rule is evaluated at its own instants (and at every event).
        var instants = Set<Millis>()
        ruleInstants = rules.map { r in
            var d: Millis? = nil
            switch r.parameters {
            case .dwell(let m): d = m
            case .gathering(_, let w), .frequency(_, let w, _, _): d = w
            case .aggregate(_, _, let w, _, _, _): d = w
            case .sequence(let steps, _): if case .absent(_, let dl?)? = steps.last { d = dl }
            case .proximity(_, let w, _): d = w
            case .novelty(_, let w, _, _): d = w
            case .absence(let a, _): d = a
            default: break
            }
            guard let d else { return [] }
            return Set(events.map { $0.time + d }.filter { $0 <= until })
        }
        for s in ruleInstants { instants.formUnion(s) }
        var i = 0
        let eventTimes = Set(events.map(\.time))
        for t in instants.union(eventTimes).sorted() {
            if instants.contains(t) { evaluate(at: t, event: nil) }
            while i < events.count && events[i].time == t {
                var x = events[i]
                x.order = history.count + 1
                x.zones = x.type == "position" ? Set(zones.filter { $0.shape.covers(x.lon, x.lat) }.map(\.id)) : []
                (x.entered, x.exited) = computeTransitions(x)
                if x.type == "position" && !views.isEmpty {
                    if views.contains(where: { $0.exitMarginM > 0 }) {
                        for z in zones where !x.zones.contains(z.id) { x.boundary[z.id] = Self.sampledBoundaryDistance(z.shape, x.lon, x.lat) }
                    }
                    let ps = positions(x.entity) + [x]
                    for j in views {
                        var inside = Set<String>(), entered: [String: String] = [:], exited = Set<String>()
                        for z in zones {
                            let r = steadied(j, ps, z)
                            if r.inside { inside.insert(z.id) }
                            if let f = r.enteredFirst { entered[z.id] = f }
                            if r.exited { exited.insert(z.id) }
                        }
                        x.vInside.append(inside)
                        x.vEntered.append(entered)
                        x.vExited.append(exited)
                    }
                }
                history.append(x)
                if byEntity[x.entity] == nil { seenEntities.append(x.entity); seenEntities.sort() }
                byEntity[x.entity, default: []].append(x)
                evaluate(at: t, event: x)
                i += 1
            }
        }
    }

    mutating func evaluate(at t: Millis, event x: Ev?) {
        for (ri, r) in rules.enumerated() {
            if x == nil && !ruleInstants[ri].contains(t) { continue }
            switch r.parameters {
            case .enter, .exit:
                guard let x, r.match.matches(info(x.entity)) else { continue }
                let (entered, exited) = transitions(x, r)
                for z in (r.kind == .enter ? entered : exited).sorted() where zoneMatches(r.zones, z) {
                    // A steadied entry names the first position of its run too.
                    let first = r.kind == .enter ? viewOf(r).flatMap { x.vEntered[$0][z] } ?? x.id : x.id
                    emit(r, e: x.entity, z: z, firing: true, time: t, evidence: first == x.id ? [x.id] : [first, x.id], details: [])
                }
            case .speed(let v):
                guard let x, x.type == "position", r.match.matches(info(x.entity)) else { continue }
                guard let p = (byEntity[x.entity] ?? []).last(where: { $0.type == "position" && $0.order < x.order }) else { continue }
                let d = Haversine.distance(p.lon, p.lat, x.lon, x.lat)
                if x.time == p.time {
                    if d > 1 { emit(r, e: x.entity, firing: true, time: t, evidence: [p.id, x.id], details: [("kmh", .null), ("distance_m", .number(d))]) }
                } else {
                    let kmh = d * 3600 / Double(x.time - p.time)
                    if kmh > v { emit(r, e: x.entity, firing: true, time: t, evidence: [p.id, x.id], details: [("kmh", .number(kmh)), ("distance_m", .number(d))]) }
                }
            case .dwell(let min):
                for e in seenEntities where r.match.matches(info(e)) {
                    let ps = positions(e)
                    for z in zones.map(\.id) where zoneMatches(r.zones, z) {
                        // The current visit: the run of inside positions at the end of the history.
                        var start: Ev? = nil
                        var exitPos: Ev? = nil
                        var lastStart: Ev? = nil
                        for p in ps {
                            if insideZones(p, r).contains(z) { if start == nil { start = p } } else if start != nil { lastStart = start; exitPos = p; start = nil }
                        }
                        let key = "\(r.id)|\(e)|\(z)"
                        if let s = start {
                            if t >= s.time + min && transition(key, true) {
                                emit(r, e: e, z: z, firing: true, time: s.time + min, evidence: [s.id], details: [("dwell_s", .number(Double(min) / 1000))])
                            }
                            if t < s.time + min { state[key] = false }
                        } else if let ex = exitPos, ex.order == x?.order, let s = lastStart {
                            if transition(key, false) {
                                emit(r, e: e, z: z, firing: false, time: t, evidence: [ex.id], details: [("dwell_s", .number(Double(ex.time - s.time) / 1000))])
                            }
                        }
                    }
                }
            case .gathering(let n, let w):
                for z in zones.map(\.id) where zoneMatches(r.zones, z) {
                    var latest: [String: Ev] = [:]
                    for p in history where p.type == "position" && insideZones(p, r).contains(z) && p.time > t - w && p.time <= t && r.match.matches(info(p.entity)) {
                        latest[p.entity] = p
                    }
                    let now = latest.count >= n
                    if transition("\(r.id)|\(z)", now) {
                        let names = latest.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                        emit(r, z: z, firing: now, time: t, evidence: now ? latest.values.sorted { $0.order < $1.order }.map(\.id) : [],
                             details: [("count", .number(Double(latest.count))), ("entities", .strings(names))])
                    }
                }
            case .proximity(let dist, let w, let other):
                let o = other ?? r.match
                var latest: [String: Ev] = [:]
                for p in history where p.type == "position" { latest[p.entity] = p }
                let names = latest.keys.sorted()
                for (ai, a) in names.enumerated() {
                    for b in names[(ai + 1)...] {
                        let ia = info(a), ib = info(b)
                        guard (r.match.matches(ia) && o.matches(ib)) || (r.match.matches(ib) && o.matches(ia)) else { continue }
                        let la = latest[a]!, lb = latest[b]!
                        let d = Haversine.distance(la.lon, la.lat, lb.lon, lb.lat)
                        let inWindow = la.time > t - w && lb.time > t - w
                        let now = inWindow && d <= dist
                        if transition("\(r.id)|\(a)|\(b)", now) {
                            let first = la.order < lb.order ? la : lb, second = la.order < lb.order ? lb : la
                            let evidence: [String] = now ? [first.id, second.id] : (inWindow && x != nil && (x!.entity == a || x!.entity == b) ? [x!.id] : [])
                            emit(r, pair: (a, b), firing: now, time: t, evidence: evidence, details: [("distance_m", .number(d))])
                        }
                    }
                }
            case .frequency(let k, let w, let f, let by):
                for e in seenEntities where r.match.matches(info(e)) {
                    let counted = (byEntity[e] ?? []).filter { filterMatches(f, $0) && (by == nil || groupOf(by!, $0) != nil) }
                    let groups: [String?] = by == nil ? [nil] : Array(Set(counted.map { groupOf(by!, $0) })).sorted { $0! < $1! }
                    for g in groups {
                        let inWindow = counted.filter { $0.time > t - w && $0.time <= t && (by == nil || groupOf(by!, $0) == g) }
                        let now = inWindow.count >= k
                        if transition("\(r.id)|\(e)|\(g ?? "")", now) {
                            emit(r, e: e, g: g, firing: now, time: t, evidence: now ? inWindow.map(\.id) : [], details: [("count", .number(Double(inWindow.count)))])
                        }
                    }
                }
            case .aggregate(let fn, let of, let w, let f, let bound, let by):
                let numeric = fn != .countDistinct
                for e in seenEntities where r.match.matches(info(e)) {
                    let carrying = (byEntity[e] ?? []).filter { filterMatches(f, $0) && fieldOf(of, numeric: numeric, $0) != nil && (by == nil || groupOf(by!, $0) != nil) }
                    let groups: [String?] = by == nil ? [nil] : Array(Set(carrying.map { groupOf(by!, $0) })).sorted { $0! < $1! }
                    for g in groups {
                        let inWindow = carrying.filter { $0.time > t - w && $0.time <= t && (by == nil || groupOf(by!, $0) == g) }
                        var value: Double? = nil
                        if !inWindow.isEmpty {
                            let fields = inWindow.map { fieldOf(of, numeric: numeric, $0)! }
                            let numbers = fields.map { v -> Double in if case .number(let d) = v { return d } else { return .nan } }
                            switch fn {
                            case .sum: value = numbers.reduce(0, +)
                            case .mean: value = numbers.reduce(0, +) / Double(numbers.count)
                            case .min: value = numbers.min()
                            case .max: value = numbers.max()
                            case .countDistinct: value = Double(Set(fields.map(Self.text)).count)
                            }
                        }
                        let now = value.map { bound.holds($0) } ?? false
                        if transition("\(r.id)|\(e)|\(g ?? "")", now) {
                            emit(r, e: e, g: g, firing: now, time: t, evidence: now ? inWindow.map(\.id) : [],
                                 details: [("value", value.map { .number($0) } ?? .null), ("count", .number(Double(inWindow.count)))])
                        }
                    }
                }
            case .novelty(let k, let w, let h, let cf):
                for e in seenEntities where r.match.matches(info(e)) {
                    let contacts = (byEntity[e] ?? []).filter { $0.type == "contact" && (cf?.accepts($0.counterpart) ?? true) }
                    let new = contacts.filter { c in !contacts.contains { $0.order < c.order && $0.counterpart == c.counterpart && $0.time >= c.time - h && $0.time <= c.time } }
                    let inWindow = new.filter { $0.time > t - w && $0.time <= t }
                    let now = inWindow.count >= k
                    if transition("\(r.id)|\(e)", now) {
                        emit(r, e: e, firing: now, time: t, evidence: now ? inWindow.map(\.id) : [], details: [("count", .number(Double(inWindow.count)))])
                    }
                }
            case .threshold(let metric, let cond):
                guard let x, x.type == "reading", x.metric == metric, r.match.matches(info(x.entity)) else { continue }
                var holds: Bool
                var details: [(String, DetailValue)] = [("value", .number(x.value))]
                switch cond {
                case .above(let v): holds = x.value > v
                case .below(let v): holds = x.value < v
                case .baseline(let b, let factor, let m):
                    let base = (byEntity[x.entity] ?? []).filter { $0.type == "reading" && $0.metric == metric && $0.time >= t - b && $0.time < t }
                    guard base.count >= m else { continue }
                    let mean = base.map(\.value).reduce(0, +) / Double(base.count)
                    holds = x.value > factor * mean
                    details.append(("baseline", .number(mean)))
                }
                if transition("\(r.id)|\(x.entity)", holds) {
                    emit(r, e: x.entity, firing: holds, time: t, evidence: [x.id], details: details)
                }
            case .sequence(let steps, let within):
                var positives: [SequenceStep] = [], forbidden: [[SequenceStep]] = [], trailing: (SequenceStep, Millis)?
                for st in steps {
                    if case .absent(let inner, let d) = st {
                        if let d { trailing = (inner, d) } else { forbidden[forbidden.count - 1].append(inner) }
                    } else {
                        positives.append(st)
                        forbidden.append([])
                    }
                }
                let m = positives.count, w = within ?? .max
                func stepMatches(_ s: SequenceStep, _ y: Ev) -> Bool {
                    switch s {
                    case .enter(let sel): return transitions(y, r).0.contains { zoneMatches(sel, $0) }
                    case .exit(let sel): return transitions(y, r).1.contains { zoneMatches(sel, $0) }
                    case .event(let f): return filterMatches(f, y)
                    case .absent: return false
                    }
                }
                /// The greedy chain from start s: each positive step takes the first event after
                /// the previous one that matches it, unless a forbidden event comes first; nil
                /// when it is dropped or not complete.
                func chain(from s: Ev, _ segment: [Ev]) -> [Ev]? {
                    var c = [s]
                    for j in 1..<m {
                        guard let z = segment.first(where: { y in y.order > c.last!.order && (stepMatches(positives[j], y) || forbidden[j - 1].contains { stepMatches($0, y) }) }) else { return nil }
                        guard stepMatches(positives[j], z), z.time - s.time <= w else { return nil }
                        c.append(z)
                    }
                    return c
                }
                if trailing == nil {
                    guard let x, r.match.matches(info(x.entity)) else { continue }
                    let key = "\(r.id)|\(x.entity)"
                    let after = lastCompletion[key] ?? 0
                    let segment = (byEntity[x.entity] ?? []).filter { $0.order > after }
                    guard stepMatches(positives[m - 1], x) else { continue }
                    // Candidate starts, latest first.
                    for s in segment.reversed() where s.order < x.order && stepMatches(positives[0], s) && x.time - s.time <= w {
                        if let c = chain(from: s, segment), c.last!.order == x.order {
                            emit(r, e: x.entity, firing: true, time: t, evidence: c.map(\.id), details: [("span_s", .number(Double(x.time - s.time) / 1000))])
                            lastCompletion[key] = x.order
                            break
                        }
                    }
                } else if x == nil, let (tstep, d) = trailing {
                    // A deadline instant: the first pending match due now, not cancelled, fires.
                    for e in seenEntities where r.match.matches(info(e)) {
                        let key = "\(r.id)|\(e)"
                        let after = lastCompletion[key] ?? 0
                        let segment = (byEntity[e] ?? []).filter { $0.order > after }
                        for y in segment where y.time + d == t && stepMatches(positives[m - 1], y) {
                            var match: [Ev]? = nil
                            for s in segment.reversed() where s.order <= y.order && stepMatches(positives[0], s) {
                                if m == 1 { if s.order == y.order { match = [y]; break } else { continue } }
                                if s.order == y.order { continue }
                                if let c = chain(from: s, segment), c.last!.order == y.order { match = c; break }
                            }
                            guard let c = match else { continue }
                            if segment.contains(where: { $0.order > y.order && $0.time < t && stepMatches(tstep, $0) }) { continue }
                            emit(r, e: e, firing: true, time: t, evidence: c.map(\.id), details: [("span_s", .number(Double(t - c[0].time) / 1000))])
                            lastCompletion[key] = history.count
                            break
                        }
                    }
                }
            case .absence(let d, let f):
                for e in seenEntities where r.match.matches(info(e)) {
                    let seen = (byEntity[e] ?? []).filter { (f == nil || filterMatches(f!, $0)) }
                    guard let last = seen.last else { continue }
                    let now = t >= last.time + d
                    let key = "\(r.id)|\(e)"
                    if transition(key, now) {
                        if now {
                            emit(r, e: e, firing: true, time: last.time + d, evidence: [last.id], details: [("silent_s", .number(Double(d) / 1000))])
                        } else {
                            let prev = seen.dropLast().last!
                            emit(r, e: e, firing: false, time: t, evidence: [last.id], details: [("silent_s", .number(Double(last.time - prev.time) / 1000))])
                        }
                    }
                }
            }
        }
    }

    /// Applies expiry (nothing at or after `expires`) and cooldown, and renders canonical lines.
    func lines() -> [String] {
        var lastFiring: [String: Millis] = [:]
        var suppressedOpen: Set<String> = []
        var kept: [Out] = []
        for o in out {
            let r = rules.first { $0.id == o.rule }!
            let key = "\(o.rule)|\(o.e)|\(o.z)|\(o.pa)|\(o.pb)|\(o.g ?? "")"
            if let e = r.expires, o.time >= e { continue }
            if r.cooldown > 0 {
                if o.firing {
                    if let l = lastFiring[key], o.time < l + r.cooldown { suppressedOpen.insert(key); continue }
                    lastFiring[key] = o.time
                    suppressedOpen.remove(key)
                } else if suppressedOpen.contains(key) {
                    suppressedOpen.remove(key)
                    continue
                }
            }
            kept.append(o)
        }
        func less(_ a: String, _ b: String) -> Bool { Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) }
        kept.sort { a, b in
            if a.time != b.time { return a.time < b.time }
            if a.rule != b.rule { return less(a.rule, b.rule) }
            if a.e != b.e { return less(a.e, b.e) }
            if a.z != b.z { return less(a.z, b.z) }
            if a.pa != b.pa { return less(a.pa, b.pa) }
            if a.pb != b.pb { return less(a.pb, b.pb) }
            if a.g != b.g { return less(a.g ?? "", b.g ?? "") }
            return a.seq < b.seq
        }
        return kept.map { o in
            var s: [UInt8] = Array("{\"rule\":".utf8)
            JSONText.appendString(o.rule, to: &s)
            s += Array(",\"key\":{".utf8)
            var parts: [String] = []
            if !o.e.isEmpty { parts.append("\"entity\":\"\(o.e)\"") }
            if !o.z.isEmpty { parts.append("\"zone\":\"\(o.z)\"") }
            if !o.pa.isEmpty { parts.append("\"pair\":[\"\(o.pa)\",\"\(o.pb)\"]") }
            if let g = o.g { parts.append("\"group\":\"\(g)\"") }
            s += Array(parts.joined(separator: ",").utf8)
            s += Array("},\"state\":\"\(o.firing ? "firing" : "resolved")\",\"time\":\"\(EventTime.format(o.time))\",\"evidence\":[".utf8)
            s += Array(o.evidence.map { "\"\($0)\"" }.joined(separator: ",").utf8)
            s += Array("],\"details\":{".utf8)
            for (i, (k, v)) in o.details.enumerated() {
                if i > 0 { s.append(44) }
                JSONText.appendString(k, to: &s)
                s.append(58)
                switch v {
                case .null: s += Array("null".utf8)
                case .number(let d): JSONText.appendNumber(d, to: &s)
                case .strings(let l): s += Array(("[" + l.map { "\"\($0)\"" }.joined(separator: ",") + "]").utf8)
                }
            }
            s += Array("}}".utf8)
            return String(decoding: s, as: UTF8.self)
        }
    }
}
