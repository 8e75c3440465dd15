import Crypto
import Foundation
import TriplineCore
import TriplineNotify
import TriplineStore

/// One stored version of the notification policy (meta `notify.policy.<n>`).
public struct PolicyRecord: Codable, Sendable, Equatable {
    public var version: Int
    /// The policy as sent (YAML or JSON), kept verbatim so comments survive.
    public var text: String
    public var createdAt: Millis
    public var createdBy: String
    public var sha256: String
    public var deleted: Bool = false
}

/// Reading and decoding stored policies.
public enum PolicyFiles {
    public static func current(_ store: any TriplineStore) throws -> PolicyRecord? {
        let n = Int(try store.meta(NotifyMeta.current) ?? "0") ?? 0
        return n > 0 ? try record(store, n) : nil
    }

    public static func record(_ store: any TriplineStore, _ n: Int) throws -> PolicyRecord? {
        guard let text = try store.meta(NotifyMeta.version(n)) else { return nil }
        return try JSONDecoder().decode(PolicyRecord.self, from: Data(text.utf8))
    }

    /// Every version, oldest first (deletions included).
    public static func versions(_ store: any TriplineStore) throws -> [PolicyRecord] {
        let last = Int(try store.meta("notify.policy.last") ?? "0") ?? 0
        return try (0..<last).compactMap { try record(store, $0 + 1) }
    }

    public static func decode(_ text: String, file: String, receivers: Set<String>?) -> Result<NotificationPolicy, ValidationFailure> {
        switch Submissions.parse(Array(text.utf8), contentType: nil, file: file) {
        case .failure(let e): return .failure(e)
        case .success(let doc):
            return NotificationPolicy.decode(doc, file: file, receivers: receivers).mapError { ValidationFailure($0.errors) }
        }
    }

    public static func sha256(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// The labels, annotations and body of a stored alert, as the notifier and receivers see it.
enum AlertLabelling {
    static func make(_ a: StoredAlert, rules: [String: Rule], zones: [String: String]) -> NotifyAlert {
        let rule = rules[a.rule]
        var l: LabelSet = ["rule": a.rule]
        if let rule {
            l["kind"] = rule.kind.rawValue
            l["severity"] = rule.severity.rawValue
            for (k, v) in rule.labels { l[k] = v }
        }
        if let e = a.entity { l["entity"] = e }
        if let z = a.zone {
            l["zone"] = z
            if let c = zones[z] { l["zone_category"] = c }
        }
        if let x = a.pairA, let y = a.pairB { l["pair"] = x + "," + y }
        var details: [String: Any] = [:]
        if case .success(let doc) = JSONDocumentParser.parse(a.line, file: "alert") {
            if let g = doc["key"]?["group"]?.stringValue { l["group"] = g }
            for m in doc["details"]?.members ?? [] {
                switch m.node.value {
                case .number(let d, _): details[m.key] = d
                case .string(let s): details[m.key] = s
                case .array(let items): details[m.key] = items.compactMap { $0.stringValue }
                default: break
                }
            }
        }
        var annotations: [String: String] = [:]
        if let rule, !rule.annotations.isEmpty {
            var ctx: [String: Any] = ["rule": a.rule, "state": a.firing ? "firing" : "resolved", "time": EventTime.format(a.time),
                                      "details": details, "labels": l]
            for k in ["kind", "severity", "entity", "zone", "zone_category", "pair", "group"] { if let v = l[k] { ctx[k] = v } }
            for (name, text) in rule.annotations {
                if let t = try? AnnotationTemplate(text) { annotations[name] = t.render(ctx) }
            }
        }
        let instant: Bool
        switch rule?.kind {
        case .enter?, .exit?, .sequence?, .speed?: instant = true
        default: instant = false
        }
        let fingerprint = a.rule + "|" + (a.entity ?? "") + "|" + (a.zone ?? "") + "|" + (a.pairA ?? "") + "," + (a.pairB ?? "") + "|" + (l["group"] ?? "")
        return NotifyAlert(id: a.id, fingerprint: fingerprint, firing: a.firing, instant: instant, time: a.time, labels: l,
                           annotations: annotations, line: a.line)
    }
}

/// The notification policy at work on the active server: takes every committed alert (in id
/// order, from the store, so a restart resumes where the last saved flush left off), groups
/// them, and at each flush stores the notifier's state together with one outbox delivery per
/// group notification (one transaction). The webhook dispatcher delivers them.
public final class NotificationRouter: @unchecked Sendable {
    let store: any TriplineStore
    let host: EngineHost
    let clock: @Sendable () -> Millis
    /// Called after deliveries were queued.
    var onQueued: (@Sendable () -> Void)?
    private let lock = NSLock()
    /// Only `run` (one task) touches these two.
    private var notifier: Notifier?
    private var version = 0
    /// The erasure generation the notifier was loaded at.
    private var loadedAt = 0
    /// Set from other tasks, under the lock.
    private var woken = false
    private var reloadRequested = false

    public init(store: any TriplineStore, host: EngineHost, clock: @escaping @Sendable () -> Millis) {
        self.store = store
        self.host = host
        self.clock = clock
    }

    /// Look now (an alert was committed, or the policy changed).
    public func wake() {
        lock.withLock { woken = true }
    }

    /// Forgets the in-memory notifier; the next step reloads the policy and the saved state
    /// (after the policy changed, or an erasure rewrote the saved state).
    public func reload() {
        lock.withLock {
            reloadRequested = true
            woken = true
        }
    }

    public func run() async {
        while !Task.isCancelled {
            do {
                try await step()
            } catch {
                FileHandle.standardError.write("tripline: notification router: \(error)\n".data(using: .utf8)!)
            }
            for _ in 0..<5 {
                if Task.isCancelled { break }
                if lock.withLock({ () -> Bool in
                    let w = woken
                    woken = false
                    return w
                }) { break }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
    }

    /// One round: policy changes, new alerts, due flushes.
    public func step() async throws {
        let now = clock()
        let generation = host.notifyGate.current
        if generation != loadedAt {
            // An erasure rewrote the saved state: what this notifier holds names the erased.
            notifier = nil
            version = -1
        }
        let current = Int(try store.meta(NotifyMeta.current) ?? "0") ?? 0
        if lock.withLock({ () -> Bool in
            let r = reloadRequested
            reloadRequested = false
            return r
        }) {
            notifier = nil
            version = -1
        }
        if current != version {
            var fresh: Notifier?
            if current > 0, let rec = try PolicyFiles.record(store, current) {
                let policy = try PolicyFiles.decode(rec.text, file: "policy v\(current)", receivers: nil).get()
                let saved = try store.meta(NotifyMeta.state).flatMap { try? JSONDecoder().decode(NotifierState.self, from: Data($0.utf8)) }
                if let existing = notifier {
                    existing.replacePolicy(policy, now: now)
                    fresh = existing
                } else {
                    fresh = Notifier(policy: policy, state: saved ?? NotifierState())
                }
            }
            notifier = fresh
            version = current
            loadedAt = generation
        }
        guard let n = notifier else {
            host.notifySnapshot.clear()
            return
        }
        defer { host.notifySnapshot.set(n.state, version: version) }
        let alerts = try store.alerts({ var q = AlertQuery(); q.afterId = n.state.cursor; q.limit = 1000; return q }())
        if !alerts.isEmpty {
            let catalog = try await host.perform { s in s.catalog }
            let rules = Dictionary(catalog.rules.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            let zones = Dictionary(catalog.zones.map { ($0.id, $0.category) }, uniquingKeysWith: { a, _ in a })
            for a in alerts {
                // Silenced when emitted: stored and shown, never notified (as without a policy).
                if a.silence != nil {
                    n.skip(to: a.id)
                    continue
                }
                n.add(AlertLabelling.make(a, rules: rules, zones: zones), now: now)
            }
            if alerts.count == 1000 { wake() }
        }
        guard let due = n.nextDue, due <= now else { return }
        let silences = try store.silences()
        n.isSilenced = { a, t in
            silences.contains { s in
                s.startsAt <= t && t < s.endsAt && (s.rule == nil || s.rule == a.labels["rule"]) && (s.zone == nil || s.zone == a.labels["zone"])
                    && (s.severity == nil || s.severity == a.labels["severity"])
                    && (s.entity == nil || s.entity == a.labels["entity"] || (a.labels["pair"]?.split(separator: ",").contains { String($0) == s.entity } ?? false))
            }
        }
        let sent = n.advance(to: now)
        var deliveries: [Delivery] = []
        for g in sent {
            let newest = (g.firing + g.resolved).map(\.id).max() ?? n.state.cursor
            deliveries.append(Delivery(receiver: g.receiver, alertId: newest, notification: Self.body(g), nextAttemptAt: now, updatedAt: now))
        }
        let state = String(decoding: try JSONEncoder().encode(n.state), as: UTF8.self)
        let stored: Bool
        do {
            stored = try host.notifyGate.ifUnchanged(since: loadedAt) {
                try store.commitNotifications(state: state, deliveries: deliveries)
            }
        } catch {
            // The flush happened in memory only: start again from the saved state (and the
            // alerts after its cursor), so that the same flush is computed and stored later.
            notifier = nil
            version = -1
            throw error
        }
        if !stored {
            // An erasure ran meanwhile: start again from the (erased) saved state.
            notifier = nil
            version = -1
            wake()
            return
        }
        if !deliveries.isEmpty { onQueued?() }
    }

    /// A group notification as receivers get it (the `data` of the webhook body).
    static func body(_ g: GroupNotification) -> String {
        func labels(_ l: LabelSet) -> J { .obj(l.sorted { $0.key < $1.key }.map { ($0.key, .str($0.value)) }) }
        func alert(_ a: NotifyAlert) -> J {
            .obj([("id", .int(a.id)), ("status", .str(a.firing ? "firing" : "resolved")), ("time", .time(a.time)), ("labels", labels(a.labels)),
                  ("annotations", .obj(a.annotations.sorted { $0.key < $1.key }.map { ($0.key, .str($0.value)) })),
                  ("alert", a.line.map { .raw($0) } ?? .null)])
        }
        return J.obj([("key", .str(g.key)), ("group", .str(g.group)), ("receiver", .str(g.receiver)), ("route", .str(g.route)),
                      ("status", .str(g.status)), ("group_labels", labels(g.groupLabels)), ("common_labels", labels(g.commonLabels)),
                      ("alerts", .arr(g.firing.map(alert) + g.resolved.map(alert))), ("flushed_at", .time(g.at))]).text
    }
}
