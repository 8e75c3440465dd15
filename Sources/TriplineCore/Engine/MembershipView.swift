/// Zone membership steadied against GPS jitter, for the rules that ask for it with
/// `enter_after` and `exit_margin_m` (one view per distinct pair; rules without them read the
/// engine's plain membership, spec 1.2). Per (entity, zone) a view is outside, pending or
/// inside, and moves only on the entity's positions, in processing order:
/// - outside or pending, position inside the zone: one more consecutive inside position; the
///   entry is confirmed (the view enters) when there are `enter_after` of them, or when this
///   one is at least `enter_after` (a duration) after the first of them;
/// - pending, position outside: the run is broken, back to outside;
/// - inside, position inside, or outside but within `exit_margin_m` of the boundary: stays;
/// - inside, position further out than the margin: the view exits.
struct MembershipView {
    let jitter: ZoneJitter
    let shapes: [ZoneShape]
    struct Entry {
        var zone: Int32
        var inside: Bool
        /// Consecutive inside positions so far, the time and the event of the first (pending).
        var count: Int32
        var since: Millis
        var first: EventRef
    }
    /// The zones each entity is inside or pending in, sorted (absent: outside everywhere).
    var byEntity = IntMap<[Entry]>()
    var entryCount = 0

    // What the latest position did to this view (sorted zone ids).
    var entered: [Int32] = []
    /// For each entered zone, the first position of the run that confirmed it.
    var enteredFirst: [EventRef] = []
    var exited: [Int32] = []
    var inside: [Int32] = []

    init(jitter: ZoneJitter, shapes: [ZoneShape]) {
        self.jitter = jitter
        self.shapes = shapes
    }

    mutating func clear() {
        if !entered.isEmpty { entered.removeAll(keepingCapacity: true) }
        if !enteredFirst.isEmpty { enteredFirst.removeAll(keepingCapacity: true) }
        if !exited.isEmpty { exited.removeAll(keepingCapacity: true) }
        if !inside.isEmpty { inside.removeAll(keepingCapacity: true) }
    }

    /// Applies a position of `entity` that the zone index found inside `raw` (sorted).
    mutating func onPosition(entity: Int32, time: Millis, ref: EventRef, lon: Double, lat: Double, raw: [Int32]) {
        clear()
        let k = key(entity)
        let old = byEntity[k] ?? []
        if old.isEmpty && raw.isEmpty { return }
        var new: [Entry] = []
        new.reserveCapacity(Swift.max(old.count, raw.count))
        let margin = jitter.exitMarginM
        var i = 0, j = 0
        while i < raw.count || j < old.count {
            let z: Int32, e: Entry?, isInside: Bool
            if j >= old.count || (i < raw.count && raw[i] < old[j].zone) {
                z = raw[i]; e = nil; isInside = true; i += 1
            } else if i >= raw.count || old[j].zone < raw[i] {
                z = old[j].zone; e = old[j]; isInside = false; j += 1
            } else {
                z = raw[i]; e = old[j]; isInside = true; i += 1; j += 1
            }
            if let e, e.inside {
                if isInside || (margin > 0 && BoundaryDistance.within(shapes[Int(z)], lon: lon, lat: lat, margin: margin)) {
                    new.append(e)
                    inside.append(z)
                } else {
                    exited.append(z)
                }
            } else if isInside {
                var n = e ?? Entry(zone: z, inside: false, count: 0, since: time, first: ref)
                n.count += 1
                let confirmed: Bool
                switch jitter.enterAfter {
                case .fixes(let needed): confirmed = Int(n.count) >= needed
                case .duration(let d): confirmed = time - n.since >= d
                }
                if confirmed {
                    n.inside = true
                    entered.append(z)
                    enteredFirst.append(n.first)
                    inside.append(z)
                }
                new.append(n)
            }
            // (Pending and now outside: the run is broken; the entry is dropped.)
        }
        entryCount += new.count - old.count
        if new.isEmpty {
            _ = byEntity.remove(k)
        } else {
            byEntity.insert(k, new)
        }
    }

    /// The tables, plus each entity's list (a heap header and its entries).
    var stateBytes: Int { byEntity.memoryBytes + byEntity.count * 32 + entryCount * MemoryLayout<Entry>.stride }
}
