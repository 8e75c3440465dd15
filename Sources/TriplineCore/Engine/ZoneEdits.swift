/// A zone created, changed or deleted by a catalog change, with the version the change gave it.
public struct ZoneEdit: Sendable, Hashable {
    public enum Change: String, Sendable { case created, updated, deleted }
    public var zone: String
    public var version: Int
    public var change: Change
    public init(zone: String, version: Int, change: Change) {
        self.zone = zone
        self.version = version
        self.change = change
    }
}

/// Zone edits (docs/rules.md, "Zone edits"). An engine rebuilt on the new zones holds, for the
/// edited zones, the membership the stored history gives under the new geometry (what a
/// restart rebuilds too); what held just before the change is the previous engine's. Where
/// the two differ for an entity, the entity crossed a boundary at the change: enter and exit
/// rules fire at the change's time; a dwell that was firing and is not on the new zones
/// resolves there, and one that is firing on the new zones and was not fires there. A
/// gathering's crowd in an edited zone is compared the same way, per zone. No state
/// is changed: only the alerts say what changed. Only the edited zones are compared, and only
/// entities with a position.
extension Engine {
    /// Applies `edits` at the watermark (the time of the change), with `previous` the engine
    /// the change replaces (same stored events, the old zones). Transitions are emitted as
    /// alerts at the watermark; call `closeOpenAlerts` to hand them out at once.
    func applyZoneEdits(_ edits: [ZoneEdit], previous old: Engine) {
        let w = time.watermark
        guard w > .min, !edits.isEmpty else { return }
        // Edited zones: number here (a deleted zone is one of the retired ones at the end),
        // number in the previous engine (nil: created), version.
        var touched: [(new: Int32, old: Int32?, version: Int, change: ZoneEdit.Change)] = []
        var newNumber: [String: Int32] = [:], oldNumber: [String: Int32] = [:]
        for (i, z) in zones.enumerated() { newNumber[z.id] = Int32(i) }
        for (i, z) in old.zones.enumerated() where i < old.liveZoneCount { oldNumber[z.id] = Int32(i) }
        for e in edits {
            guard let n = newNumber[e.zone] else { continue }
            touched.append((n, oldNumber[e.zone], e.version, e.change))
        }
        touched.sort { $0.new < $1.new }
        if touched.isEmpty { return }
        let oldOf = Dictionary(uniqueKeysWithValues: touched.compactMap { t in t.old.map { ($0, t.new) } })
        let isTouched = Set(touched.map(\.new))

        // Each view here, and the previous engine's view with the same jitter (0: plain).
        var oldViewFor: [Int32: Int32] = [0: 0]
        for (v, view) in kinds.views.enumerated() {
            if let o = old.kinds.views.firstIndex(where: { $0.jitter == view.jitter }) { oldViewFor[Int32(v + 1)] = Int32(o + 1) }
        }
        func ruleId(_ r: Int32) -> String { rules[Int(r)].id }
        // Alerts this engine already has at the change's time (from events at that very
        // time, applied on the new zones): a crossing they report is not reported twice.
        struct Open: Hashable { var rule: Int32; var key: AlertKey; var firing: Bool }
        var open = Set<Open>()
        for a in emitter.alerts[emitter.groupStart...] where a.time == w { open.insert(Open(rule: a.rule, key: a.key, firing: a.firing)) }
        func details(_ t: (new: Int32, old: Int32?, version: Int, change: ZoneEdit.Change)) -> [(String, DetailValue)] {
            [("zone_edit", .strings([t.change.rawValue])), ("zone_version", .number(Double(t.version)))]
        }
        func emit(_ rule: Int32, _ e: Int32, _ z: Int32, firing: Bool, evidence ref: EventRef, _ details: [(String, DetailValue)]) {
            guard !open.contains(Open(rule: rule, key: .entityZone(e, z), firing: firing)) else { return }
            emitter.emit(rule: rule, key: .entityZone(e, z), firing: firing, time: w, evidence: [ref], details: details)
        }

        for ei in entities.indices where entities[ei].ready && entities[ei].lastTime != .min {
            let e = Int32(ei)
            guard let oe = old.symbols.entities.lookup(symbols.entities.string(e)),
                  Int(oe) < old.entities.count, old.entities[Int(oe)].lastTime != .min else { continue }
            let ref = entities[ei].lastRef(e)
            // Membership in the edited zones, here and before (as numbers here), per view.
            var cache: [Int32: (now: Set<Int32>, before: Set<Int32>)] = [:]
            func membership(_ view: Int32) -> (now: Set<Int32>, before: Set<Int32>)? {
                if let c = cache[view] { return c }
                guard let ov = oldViewFor[view] else { return nil }
                let now = Set(insideZones(e, view: view).filter { isTouched.contains($0) })
                let before = Set(old.insideZones(oe, view: ov).compactMap { oldOf[$0] })
                cache[view] = (now, before)
                return (now, before)
            }
            // Whether the rule's zone selector took zone `t` before the change.
            func selectedBefore(_ rule: Int32, _ t: (new: Int32, old: Int32?, version: Int, change: ZoneEdit.Change)) -> Bool {
                guard let o = t.old else { return false }
                guard let sel = rules[Int(rule)].zones else { return true }
                let z = old.zones[Int(o)]
                return sel.matches(id: z.id, class: z.category, tags: z.tags)
            }
            for m in kinds.geofence.enterRules where matches(e, m.selector) {
                guard let ms = membership(m.view) else { continue }
                for t in touched where ms.now.contains(t.new) && m.zoneMask.contains(t.new)
                    && !(ms.before.contains(t.new) && selectedBefore(m.rule, t)) {
                    emit(m.rule, e, t.new, firing: true, evidence: ref, details(t))
                }
            }
            for m in kinds.geofence.exitRules where matches(e, m.selector) {
                guard let ms = membership(m.view) else { continue }
                for t in touched where ms.before.contains(t.new) && selectedBefore(m.rule, t)
                    && !(ms.now.contains(t.new) && m.zoneMask.contains(t.new)) {
                    emit(m.rule, e, t.new, firing: true, evidence: ref, details(t))
                }
            }
            for m in kinds.dwell.rules where matches(e, m.selector) {
                guard membership(m.view) != nil else { continue }
                let id = ruleId(m.rule)
                let oldMember = old.kinds.dwell.rules.first { old.rules[Int($0.rule)].id == id }
                for t in touched {
                    // Firing before (the old zones' visit) and now (the visit the stored
                    // history gives on the new zones, which is what a restart rebuilds too).
                    let before = t.old.flatMap { o in oldMember?.visits[key(oe, o)] }.flatMap { $0.fired ? $0 : nil }
                    let now = m.visits[key(e, t.new)].flatMap { $0.fired ? $0 : nil }
                    if let b = before, now == nil {
                        emit(m.rule, e, t.new, firing: false, evidence: ref, [("dwell_s", .number(Double(w - b.start) / 1000))] + details(t))
                    } else if before == nil, let n = now {
                        emit(m.rule, e, t.new, firing: true, evidence: n.ref, [("dwell_s", .number(Double(w - n.start) / 1000))] + details(t))
                    }
                }
            }
        }

        // Gathering, per edited zone: the crowd firing before (the old zones) and now (the
        // crowd the stored history gives on the new zones, which a restart rebuilds too). A
        // zone drawn or grown over a crowd fires at the change; one moved away, shrunk or
        // deleted from under a firing crowd resolves there.
        for m in kinds.gathering.rules {
            let id = ruleId(m.rule)
            let oldMember = old.kinds.gathering.rules.first { old.rules[Int($0.rule)].id == id }
            for t in touched {
                let before = t.old.flatMap { o in oldMember?.crowds[key(o)] }?.firing ?? false
                let crowd = m.crowds[key(t.new)]
                let now = crowd?.firing ?? false
                guard before != now else { continue }
                guard !open.contains(Open(rule: m.rule, key: .zone(t.new), firing: now)) else { continue }
                let present = crowd?.members.entries ?? []
                let evidence = now ? Array(present.map(\.value).sorted { $0.sequence < $1.sequence }.prefix(100).map(\.ref)) : []
                emitter.emit(rule: m.rule, key: .zone(t.new), firing: now, time: w, evidence: evidence,
                             details: GatheringEvaluator.details(present.map { Int32(truncatingIfNeeded: $0.key) }, self) + details(t))
            }
        }
    }

    /// The zones entity `e` is inside (sorted numbers): plain membership (view 0), or view
    /// v's confirmed entries.
    func insideZones(_ e: Int32, view: Int32) -> [Int32] {
        if view > 0 {
            return (kinds.views[Int(view - 1)].byEntity[key(e)] ?? []).filter(\.inside).map(\.zone)
        }
        let st = entities[Int(e)]
        let n = Int(st.insideCount)
        if n > 3 { return insideOverflow[e] ?? [] }
        return Array([st.inside.0, st.inside.1, st.inside.2].prefix(n))
    }
}
