import TriplineCore

/// An alert as the notifier sees it.
public struct NotifyAlert: Sendable, Codable, Equatable {
    /// The store's alert id (increasing with commit order).
    public var id: Int64
    /// Rule and key: the same for an alert's firing and its resolution.
    public var fingerprint: String
    public var firing: Bool
    /// Instant kinds (enter, exit, sequence, speed) never resolve: each is notified once.
    public var instant: Bool
    /// Event time of the transition.
    public var time: Millis
    public var labels: LabelSet
    /// Rendered annotations (summary, description, runbook_url).
    public var annotations: [String: String]
    /// The alert as stored (its canonical JSON line), for receivers.
    public var line: String?

    public init(id: Int64, fingerprint: String, firing: Bool, instant: Bool, time: Millis, labels: LabelSet, annotations: [String: String] = [:], line: String? = nil) {
        self.id = id
        self.fingerprint = fingerprint
        self.firing = firing
        self.instant = instant
        self.time = time
        self.labels = labels
        self.annotations = annotations
        self.line = line
    }
}

/// One notification of a group: what its receiver is sent.
public struct GroupNotification: Sendable, Codable, Equatable {
    /// The group: its route and the values of its `group_by` labels.
    public var group: String
    /// Stable per group and flush, for idempotent delivery: `grp-<group hash>-<life>-<seq>`.
    public var key: String
    public var seq: Int
    public var receiver: String
    public var route: String
    /// `firing` when any alert in it fires, else `resolved`.
    public var status: String
    public var groupLabels: LabelSet
    /// Labels every alert in it has with the same value.
    public var commonLabels: LabelSet
    public var firing: [NotifyAlert]
    public var resolved: [NotifyAlert]
    /// When it was flushed (notifier clock).
    public var at: Millis
}

/// The notifier's whole state, as a value: saved with each flush and restored after a restart.
public struct NotifierState: Sendable, Codable, Equatable {
    public struct Group: Sendable, Codable, Equatable {
        public var key: String
        /// Which life of the group key this is (a group ends when a flush leaves it empty;
        /// its key may come back later as a new group): part of the notification keys.
        public var life: Int64 = 0
        public var route: String
        public var labels: LabelSet
        /// By fingerprint (instant alerts by fingerprint and id), the latest state.
        public var alerts: [String: NotifyAlert] = [:]
        public var nextFlush: Millis
        public var lastSent: Millis?
        public var seq = 0
        /// Fingerprints of the firing alerts the last notification listed.
        public var notifiedFiring: Set<String> = []
    }
    public var groups: [String: Group] = [:]
    /// Stateful alerts firing now, by fingerprint: the sources of inhibition.
    public var active: [String: NotifyAlert] = [:]
    /// The highest alert id taken in (a restart re-reads the alerts after it).
    public var cursor: Int64 = 0
    /// Groups created so far (numbers their lives).
    public var lives: Int64 = 0
    public init() {}
}

/// Alertmanager's dispatcher on an injected clock: routes each alert into groups, and at each
/// group's flush time decides whether its receiver is sent a notification. Deterministic: the
/// same alerts and the same clock readings give the same notifications.
public final class Notifier {
    public private(set) var policy: NotificationPolicy
    public private(set) var state: NotifierState
    private var routesByPath: [String: Route] = [:]
    /// Each group's next flush, kept beside the groups so that finding what is due does not
    /// touch (and retain) every group's alerts; `earliest` caches its minimum.
    private var dueIndex: [String: Millis] = [:]
    /// A min-heap of (due, group key); an entry is stale once `dueIndex` holds another time for
    /// its key, and is dropped when it reaches the top.
    private var heap = DueHeap()
    /// Flushes so far (sent or not), and the alerts they looked at.
    public private(set) var flushes = 0
    public private(set) var alertsLookedAt = 0
    /// Silences (checked at flush time, like inhibition).
    public var isSilenced: (NotifyAlert, Millis) -> Bool

    public init(policy: NotificationPolicy, state: NotifierState = NotifierState(), isSilenced: @escaping (NotifyAlert, Millis) -> Bool = { _, _ in false }) {
        self.policy = policy
        self.state = state
        self.isSilenced = isSilenced
        index()
    }

    private func index() {
        indexRoutes()
        indexDue()
    }

    private func indexRoutes() {
        routesByPath = Dictionary(policy.allRoutes.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
    }

    private func indexDue() {
        dueIndex = state.groups.mapValues(\.nextFlush)
        heap = DueHeap()
        for (k, t) in dueIndex { heap.push(t, k) }
    }

    private func setDue(_ key: String, _ t: Millis?) {
        if dueIndex[key] == t { return }
        dueIndex[key] = t
        if let t { heap.push(t, key) }
    }

    /// Drops stale entries from the top of the heap.
    private func cleanTop() {
        while let (t, k) = heap.top, dueIndex[k] != t { heap.pop() }
    }

    /// The group an alert with `labels` joins on `route`: its key and its group labels.
    public static func groupKey(_ route: Route, _ labels: LabelSet) -> (String, LabelSet) {
        var gl: LabelSet = [:]
        if let by = route.groupBy {
            for n in by { if let v = labels[n] { gl[n] = v } }
        } else {
            gl = labels
        }
        let text = gl.sorted { $0.key < $1.key }.map { $0.key + "=" + JSONText.quoted($0.value) }.joined(separator: ",")
        return (route.path + ":{" + text + "}", gl)
    }

    /// The key of a notification: FNV-1a of the group key, the group's life, the flush number.
    public static func notificationKey(group: String, life: Int64, seq: Int) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in group.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return "grp-" + String(repeating: "0", count: 16 - hex.count) + hex + "-" + String(life) + "-" + String(seq)
    }

    /// Moves the cursor past an alert that is not notified (silenced when it was emitted).
    public func skip(to id: Int64) { state.cursor = max(state.cursor, id) }

    /// Takes in one alert at `now` (notifier clock).
    public func add(_ a: NotifyAlert, now: Millis) {
        state.cursor = max(state.cursor, a.id)
        if !a.instant {
            if a.firing { state.active[a.fingerprint] = a } else { state.active[a.fingerprint] = nil }
        }
        place(a, now: now)
    }

    private func place(_ a: NotifyAlert, now: Millis) {
        let slot = a.instant ? a.fingerprint + "#" + String(a.id) : a.fingerprint
        for route in policy.routes(for: a.labels) {
            let (key, gl) = Notifier.groupKey(route, a.labels)
            if state.groups[key] == nil {
                state.lives += 1
                state.groups[key] = NotifierState.Group(key: key, life: state.lives, route: route.path, labels: gl, nextFlush: now + route.groupWait)
                setDue(key, now + route.groupWait)
            }
            state.groups[key]!.alerts[slot] = a
        }
    }

    /// The earliest time a group is due (nil: no group).
    public var nextDue: Millis? {
        cleanTop()
        return heap.top?.0
    }

    /// Flushes every group due by `now`, in order of due time and group key.
    public func advance(to now: Millis) -> [GroupNotification] {
        var dueGroups: [(Millis, String)] = []
        var taken = Set<String>()
        while true {
            cleanTop()
            guard let (t, k) = heap.top, t <= now else { break }
            heap.pop()
            // The same (time, key) may be in the heap twice (set, moved, set back).
            if taken.insert(k).inserted { dueGroups.append((t, k)) }
        }
        let due = dueGroups.sorted { $0 < $1 }.map(\.1)
        var out: [GroupNotification] = []
        for key in due {
            if let n = flush(key, now: now) { out.append(n) }
        }
        return out
    }

    /// Whether `a` is held back by an inhibition rule at this moment.
    public func isInhibited(_ a: NotifyAlert) -> Bool {
        guard !policy.inhibitRules.isEmpty else { return false }
        for (fp, s) in state.active where fp != a.fingerprint {
            if policy.inhibits(source: s.labels, target: a.labels) { return true }
        }
        return false
    }

    private func flush(_ key: String, now: Millis) -> GroupNotification? {
        guard var g = state.groups[key] else { return nil }
        flushes += 1
        alertsLookedAt += g.alerts.count
        defer {
            // Resolved and instant alerts leave after the flush that considered them; the
            // group lives on while it holds an alert.
            g.alerts = g.alerts.filter { $0.value.firing && !$0.value.instant }
            if let route = routesByPath[g.route] { g.nextFlush = now + route.groupInterval }
            state.groups[key] = g.alerts.isEmpty ? nil : g
            setDue(key, g.alerts.isEmpty ? nil : g.nextFlush)
        }
        guard let route = routesByPath[g.route] else { return nil }
        // A muted route sends nothing; the firing alerts wait for the next flush after the mute.
        guard policy.mayNotify(route, at: now) else { return nil }
        let visible = g.alerts.values.filter { !isInhibited($0) && !isSilenced($0, now) }.sorted { ($0.time, $0.id) < ($1.time, $1.id) }
        let firing = visible.filter(\.firing)
        let firingSet = Set(firing.filter { !$0.instant }.map(\.fingerprint))
        // Resolutions are sent only for alerts the receiver was told were firing.
        let resolved = visible.filter { !$0.firing && g.notifiedFiring.contains($0.fingerprint) }
        let send: Bool
        if g.lastSent == nil {
            send = !firing.isEmpty
        } else if firing.contains(where: \.instant) || !firingSet.isSubset(of: g.notifiedFiring) {
            send = true
        } else if firing.isEmpty {
            send = !g.notifiedFiring.isEmpty
        } else if route.sendResolved && !resolved.isEmpty {
            send = true
        } else {
            send = now >= g.lastSent! + route.repeatInterval
        }
        guard send else { return nil }
        let resolvedOut = route.sendResolved ? resolved : []
        if firing.isEmpty && resolvedOut.isEmpty {
            // Everything the receiver knew of went quiet (resolved without send_resolved,
            // or silenced, or inhibited): nothing to send, and nothing is notified any more.
            g.notifiedFiring = []
            return nil
        }
        g.seq += 1
        g.lastSent = now
        g.notifiedFiring = firingSet
        let all = firing + resolvedOut
        var common = all.first?.labels ?? [:]
        for a in all.dropFirst() { common = common.filter { a.labels[$0.key] == $0.value } }
        return GroupNotification(group: key, key: Notifier.notificationKey(group: key, life: g.life, seq: g.seq), seq: g.seq, receiver: route.receiver,
                            route: route.path, status: firing.isEmpty ? "resolved" : "firing", groupLabels: g.labels,
                            commonLabels: common, firing: firing, resolved: resolvedOut, at: now)
    }

    /// Replaces the policy: every alert still held is routed again under the new tree. Groups
    /// whose key survives keep their timers, flush number and what they last notified.
    public func replacePolicy(_ p: NotificationPolicy, now: Millis) {
        let old = state.groups
        var held: [String: NotifyAlert] = [:]
        for g in old.values { for (slot, a) in g.alerts { held[slot] = a } }
        policy = p
        indexRoutes()
        state.groups = [:]
        dueIndex = [:]
        heap = DueHeap()
        for a in held.values.sorted(by: { $0.id < $1.id }) { place(a, now: now) }
        for (k, g) in state.groups {
            guard let o = old[k] else { continue }
            var n = g
            n.nextFlush = o.nextFlush
            n.life = o.life
            n.lastSent = o.lastSent
            n.seq = o.seq
            n.notifiedFiring = o.notifiedFiring
            state.groups[k] = n
        }
        indexDue()
    }
}

/// A binary min-heap of (time, key), ordered by time then key.
struct DueHeap {
    private var items: [(Millis, String)] = []
    var top: (Millis, String)? { items.first }

    mutating func push(_ t: Millis, _ k: String) {
        items.append((t, k))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i] < items[p] else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l] < items[m] { m = l }
            if r < items.count && items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
    }
}
