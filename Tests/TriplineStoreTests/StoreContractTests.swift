import Foundation
import Testing
import TriplineCore
import TriplinePostgres
import TriplineSQLite
import TriplineStore
import TriplineTesting
import TriplineStoreFixtures

func alert(_ id: Int64, rule: String = "r1", firing: Bool = true, time: Millis = 1000, entity: String? = "truck-1", zone: String? = nil,
           pair: (String, String)? = nil, created: Millis = 5000) -> StoredAlert {
    StoredAlert(id: id, rule: rule, version: 1, firing: firing, time: time, entity: entity, zone: zone, pairA: pair?.0, pairB: pair?.1,
                line: #"{"rule":"\#(rule)","entity":"\#(entity ?? "")","n":\#(id)}"#, silence: nil, createdAt: created)
}

func batch(_ first: Int64, _ lines: [String], storedAt: Millis = 1000) -> LogBatch {
    LogBatch(firstSeq: first, count: lines.count, maxTime: 0, storedAt: storedAt, lines: Array(lines.map { $0 + "\n" }.joined().utf8))
}

@Suite struct StoreContractTests {
    @Test(arguments: StoreKind.available)
    func theLogKeepsBatchesInOrderAndSurvivesAReopen(kind: StoreKind) throws {
        let f = try Fixture(kind)
        var s = f.store
        #expect(try s.logCount() == 0 && s.nextLogSeq() == 1 && s.firstLogSeq() == nil && s.maxAlertId() == 0)
        let bytes = "{\"entity\":\"é-\u{1F69A}\",\"time\":1}"   // non-ASCII survives as bytes
        try s.commit(log: batch(1, [bytes, "#advance 5000", "{\"x\":2}"]), alerts: [alert(1)], deliveries: [])
        try s.commit(log: batch(4, ["{\"x\":4}"]), alerts: [], deliveries: [])
        try s.commit(log: nil, alerts: [alert(2)], deliveries: [])
        s = try f.reopen()
        var seen: [LogBatch] = []
        try s.forEachLogBatch { seen.append($0) }
        #expect(seen.map(\.firstSeq) == [1, 4])
        #expect(seen[0].lines == Array("\(bytes)\n#advance 5000\n{\"x\":2}\n".utf8))
        #expect(try s.logCount() == 4 && s.nextLogSeq() == 5 && s.firstLogSeq() == 1 && s.maxAlertId() == 2)
        #expect(try s.logLines([2, 4, 9]) == [2: "#advance 5000", 4: "{\"x\":4}"])
    }

    @Test(arguments: StoreKind.available)
    func aFailedCommitLeavesNothingBehind(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        try s.addReceiver(Receiver(id: "wh_1", url: "http://127.0.0.1:1/", secret: "s", minSeverity: nil, createdAt: 1))
        try s.commit(log: batch(1, ["{}"]), alerts: [alert(1)], deliveries: [])
        // Alert id 1 again: the whole batch (log, alerts, deliveries) must be refused.
        #expect(throws: (any Error).self) {
            try s.commit(log: batch(2, ["{}", "{}"]), alerts: [alert(2), alert(1)],
                         deliveries: [Delivery(receiver: "wh_1", alertId: 2, nextAttemptAt: 0, updatedAt: 0)])
        }
        #expect(try s.logCount() == 1 && s.maxAlertId() == 1 && s.pendingDeliveryCount() == 0)
        // And the store still takes the next batch.
        try s.commit(log: batch(2, ["{}"]), alerts: [alert(2)], deliveries: [])
        #expect(try s.logCount() == 2 && s.maxAlertId() == 2)
    }

    @Test(arguments: StoreKind.available)
    func alertQueriesMatchTheNaiveFilter(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        var rng = SplitMix64(seed: 42)
        let rules = ["r1", "r2", "speed"], ents = ["a", "b", "c", "d"], zones = ["yard", "port"]
        var all: [StoredAlert] = []
        for id in 1...300 {
            let pair = rng.next() % 4 == 0 ? (ents[Int(rng.next() % 4)], ents[Int(rng.next() % 4)]) : nil
            let a = alert(Int64(id), rule: rules[Int(rng.next() % 3)], firing: rng.next() % 2 == 0, time: Millis(rng.next() % 100),
                          entity: pair == nil ? ents[Int(rng.next() % 4)] : nil, zone: rng.next() % 2 == 0 ? zones[Int(rng.next() % 2)] : nil, pair: pair)
            all.append(a)
        }
        for chunk in stride(from: 0, to: all.count, by: 70) {
            try s.commit(log: nil, alerts: Array(all[chunk..<min(all.count, chunk + 70)]), deliveries: [])
        }
        for _ in 0..<150 {
            var q = AlertQuery()
            if rng.next() % 3 == 0 { q.rule = rules[Int(rng.next() % 3)] }
            if rng.next() % 3 == 0 { q.state = rng.next() % 2 == 0 ? "firing" : "resolved" }
            if rng.next() % 3 == 0 { q.entity = ents[Int(rng.next() % 4)] }
            if rng.next() % 3 == 0 { q.zone = zones[Int(rng.next() % 2)] }
            if rng.next() % 3 == 0 { q.from = Millis(rng.next() % 100) }
            if rng.next() % 3 == 0 { q.to = Millis(rng.next() % 100) }
            if rng.next() % 3 == 0 { q.afterId = Int64(rng.next() % 300) }
            q.limit = Int(rng.next() % 50)
            let want = Array(all.filter { AlertFilter.matches($0, q) }.prefix(q.limit))
            #expect(try s.alerts(q) == want)
        }
        #expect(try s.alert(id: 17) == all[16])
        #expect(try s.alert(id: 999) == nil)
    }

    @Test(arguments: StoreKind.available)
    func catalogRulesTokensAndMeta(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        try s.putCatalog(.zones, [CatalogItem(id: "b", json: "{\"v\":1}", updatedAt: 1), CatalogItem(id: "a", json: "{}", updatedAt: 1),
                                  CatalogItem(id: "B", json: "{}", updatedAt: 1)])
        try s.putCatalog(.zones, [CatalogItem(id: "b", json: "{\"v\":2}", updatedAt: 2)])
        // Byte order of ids (upper case first), as SQLite compares text.
        #expect(try s.catalog(.zones).map(\.id) == ["B", "a", "b"])
        #expect(try s.catalogItem(.zones, id: "b") == CatalogItem(id: "b", json: "{\"v\":2}", updatedAt: 2))
        #expect(try s.catalog(.entities).isEmpty)
        #expect(try s.deleteCatalog(.zones, id: "a") && !s.deleteCatalog(.zones, id: "a"))
        try s.appendRuleVersions([RuleVersion(rule: "r", version: 1, json: "{}", deleted: false, createdAt: 1, createdBy: "x"),
                                  RuleVersion(rule: "q", version: 1, json: "{}", deleted: false, createdAt: 1, createdBy: "x")])
        try s.appendRuleVersions([RuleVersion(rule: "r", version: 2, json: "", deleted: true, createdAt: 2, createdBy: "y")])
        #expect(try s.ruleVersions("r").map(\.version) == [1, 2])
        #expect(try s.ruleVersions("r").last?.deleted == true)
        #expect(try s.ruleVersions(nil).map(\.rule) == ["q", "r", "r"])
        #expect(throws: (any Error).self) {
            try s.appendRuleVersions([RuleVersion(rule: "r", version: 2, json: "{}", deleted: false, createdAt: 3, createdBy: "z")])
        }
        try s.addToken(TokenRecord(id: "tok_1", hash: "h1", role: .admin, name: "n", createdAt: 1))
        try s.addToken(TokenRecord(id: "tok_2", hash: "h2", role: .ingest, name: "m", createdAt: 2))
        #expect(try s.token(hash: "h2")?.role == .ingest)
        #expect(try s.tokens().map(\.id) == ["tok_1", "tok_2"])
        #expect(try s.deleteToken(id: "tok_1") && !s.deleteToken(id: "tok_1"))
        #expect(try s.token(hash: "h1") == nil)
        #expect(try s.meta("k") == nil)
        try s.setMeta("k", "1")
        try s.setMeta("k", "2")
        #expect(try s.meta("k") == "2")
    }

    @Test(arguments: StoreKind.available)
    func theAuditChainKeepsItsOrderAndItsAnchor(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        for i in 1...10 {
            try s.appendAudit { head in
                #expect(head?.seq == (i == 1 ? nil : Int64(i - 1)))
                return AuditRecord(seq: Int64(i), at: Millis(i * 100), actor: "a", action: "x", target: "t", detail: "{}", prev: "p\(i - 1)", hash: "h\(i)")
            }
        }
        #expect(try s.auditHead()?.seq == 10 && s.meta("audit_head") == "10 h10")
        #expect(try s.auditRecords(afterSeq: 3, limit: 2).map(\.seq) == [4, 5])
        var order: [Int64] = []
        try s.forEachAudit { order.append($0.seq) }
        #expect(order == Array(1...10))
        // Records before 450 ms, at most 3 at a time; the first kept one anchors the chain.
        #expect(try s.deleteAudit(before: 450, limit: 3) == 3)
        #expect(try s.meta("audit_anchor") == "4 p3")
        #expect(try s.deleteAudit(before: 450, limit: 3) == 1)
        #expect(try s.deleteAudit(before: 450, limit: 3) == 0)
        // The last record always stays.
        #expect(try s.deleteAudit(before: 10_000, limit: 100) == 5)
        #expect(try s.auditHead()?.seq == 10 && s.meta("audit_anchor") == "10 p9")
    }

    /// Two writers (PostgreSQL: two store connections, as an active server and a standby
    /// recording reads) append to one chain at once: every record follows the one before it.
    @Test(arguments: StoreKind.available)
    func concurrentAuditAppendsNeverForkTheChain(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let stores = [f.store, try f.second()]
        let perWriter = 40
        let failures = NIOLockedFailures()
        // Both writers at once, each on a thread of its own; returns when both are done.
        DispatchQueue.concurrentPerform(iterations: stores.count) { w in
            let st = stores[w]
            for i in 0..<perWriter {
                do {
                    try st.appendAudit { head in
                        let seq = (head?.seq ?? 0) + 1
                        return AuditRecord(seq: seq, at: Millis(i), actor: "writer-\(w)", action: "x", target: "t", detail: "{}",
                                           prev: head?.hash ?? "genesis", hash: "h\(seq)-w\(w)")
                    }
                } catch { failures.add("\(error)") }
            }
        }
        #expect(failures.all.isEmpty)
        var records: [AuditRecord] = []
        try f.store.forEachAudit { records.append($0) }
        #expect(records.map(\.seq) == Array(1...Int64(2 * perWriter)))
        for (a, b) in zip(records, records.dropFirst()) { #expect(b.prev == a.hash) }
        #expect(Set(records.map(\.actor)) == ["writer-0", "writer-1"])
    }

    /// The active lease on a shared store: one holder at a time, and a holder that another
    /// server has replaced cannot commit (fencing), while the new holder can.
    @Test(arguments: StoreKind.available.filter { $0 == .postgres })
    func theActiveLeaseIsExclusiveAndFencesCommits(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let one = try #require(f.store as? any SharedStore)
        let twoStore = try f.second()
        let two = try #require(twoStore as? any SharedStore)
        #expect(try one.tryTakeActive(holder: "one", url: "http://one:1"))
        #expect(try !two.tryTakeActive(holder: "two", url: "http://two:2"))
        #expect(try two.activeServer().holder == "one" && two.activeServer().url == "http://one:1")
        try f.store.commit(log: batch(1, ["a"]), alerts: [alert(1)], deliveries: [])
        // Another server recorded as active (as a takeover does once the lease came free):
        // the first one's next commit stores nothing.
        try twoStore.setMeta("active_holder", "two")
        #expect(throws: LostActiveLease.self) {
            try f.store.commit(log: batch(2, ["b"]), alerts: [alert(2)], deliveries: [])
        }
        #expect(try f.store.logCount() == 1 && f.store.maxAlertId() == 1)
        // The new holder's commits (not fenced by the old holder's record) go through.
        try twoStore.commit(log: batch(2, ["b"]), alerts: [alert(2)], deliveries: [])
        #expect(try twoStore.logCount() == 2)
    }

    @Test(arguments: StoreKind.available)
    func silencesFeedbackReceiversAndTheOutbox(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        let id1 = try s.addSilence(Silence(rule: "r1", zone: nil, entity: "a", severity: nil, startsAt: 0, endsAt: 1000, creator: "c", comment: "x", createdAt: 0))
        let id2 = try s.addSilence(Silence(rule: nil, zone: "z", entity: nil, severity: "high", startsAt: 0, endsAt: 500, creator: "c", comment: "", createdAt: 0))
        #expect(id2 > id1)
        #expect(try s.endSilence(id: id1, at: 300) && s.endSilence(id: id2, at: 900) && !s.endSilence(id: 999, at: 1))
        #expect(try s.silences().map(\.endsAt) == [300, 500])   // never later than it was
        #expect(try s.silences()[0].entity == "a" && s.silences()[1].entity == nil && s.silences()[1].severity == "high")

        try s.addReceiver(Receiver(id: "wh_a", url: "http://x/", secret: "s", minSeverity: nil, createdAt: 1))
        try s.addReceiver(Receiver(id: "wh_b", url: "http://y/", secret: "t", minSeverity: "high", createdAt: 2))
        #expect(try s.receivers().map(\.id) == ["wh_a", "wh_b"] && s.receivers()[1].minSeverity == "high")
        var ds: [Delivery] = []
        for i in 1...6 { ds.append(Delivery(receiver: i % 2 == 0 ? "wh_a" : "wh_b", alertId: Int64(i), nextAttemptAt: Millis(100 - i), updatedAt: 0)) }
        try s.commit(log: nil, alerts: (1...6).map { alert(Int64($0), created: Millis($0)) }, deliveries: ds)
        #expect(try s.pendingDeliveryCount() == 6)
        // Due ones in order of next attempt, then id.
        let due = try s.dueDeliveries(now: 96, limit: 10)
        #expect(due.map(\.alertId) == [6, 5, 4])
        var d = due[0]
        d.state = "dead"; d.attempts = 8; d.lastError = "HTTP 500"; d.updatedAt = 7
        try s.updateDelivery(d)
        #expect(try s.deliveries(state: "dead", receiver: nil, afterId: 0, limit: 10) == [d])
        #expect(try s.deliveries(state: nil, receiver: "wh_a", afterId: 0, limit: 10).map(\.alertId) == [2, 4, 6])
        #expect(try s.deliveries(state: nil, receiver: nil, afterId: due[2].id, limit: 1).map(\.alertId) == [5])
        #expect(try s.redrive(ids: [d.id, 999], now: 50) == 1)
        #expect(try s.pendingDeliveryCount() == 6)
        #expect(try s.deliveries(state: "pending", receiver: nil, afterId: 0, limit: 10).first { $0.id == d.id }?.nextAttemptAt == 50)
        // Deleting a receiver: its pending deliveries become dead letters.
        #expect(try s.deleteReceiver(id: "wh_b") && !s.deleteReceiver(id: "wh_b"))
        #expect(try s.deliveries(state: "dead", receiver: "wh_b", afterId: 0, limit: 10).count == 3)
        #expect(try s.redrive(ids: nil, now: 60) == 3)

        let fb1 = try s.addFeedback(Feedback(alertId: 2, verdict: "useful", comment: "ok", by: "op", at: 10))
        let fb2 = try s.addFeedback(Feedback(alertId: 3, verdict: "false_positive", comment: "", by: "op", at: 11))
        #expect(fb2 > fb1)
        #expect(try s.feedback(alertId: 3).map(\.verdict) == ["false_positive"] && s.feedback(alertId: nil).count == 2)
    }

    @Test(arguments: StoreKind.available)
    func retentionDeletesOldestFirstWithinItsLimit(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        try s.addReceiver(Receiver(id: "wh", url: "http://x/", secret: "s", minSeverity: nil, createdAt: 1))
        for i in 0..<5 {
            try s.commit(log: batch(Int64(1 + i * 2), ["{}", "{}"], storedAt: Millis(i * 100)),
                         alerts: [alert(Int64(i + 1), created: Millis(i * 100))],
                         deliveries: [Delivery(receiver: "wh", alertId: Int64(i + 1), nextAttemptAt: 0, updatedAt: 0)])
            _ = try s.addFeedback(Feedback(alertId: Int64(i + 1), verdict: "useful", comment: "", by: "op", at: 0))
        }
        #expect(try s.deleteLog(storedBefore: 250, limit: 2) == 4)
        #expect(try s.firstLogSeq() == 5 && s.logCount() == 6)
        #expect(try s.deleteLog(storedBefore: 250, limit: 2) == 2)
        #expect(try s.deleteLog(storedBefore: 250, limit: 2) == 0)
        #expect(try s.deleteAlerts(createdBefore: 250, limit: 2) == 2)
        #expect(try s.deleteAlerts(createdBefore: 250, limit: 2) == 1)
        #expect(try s.alerts(AlertQuery()).map(\.id) == [4, 5])
        // Their deliveries and feedback went with them.
        #expect(try s.deliveries(state: nil, receiver: nil, afterId: 0, limit: 10).map(\.alertId) == [4, 5])
        #expect(try s.feedback(alertId: nil).map(\.alertId) == [4, 5])
    }

    @Test(arguments: StoreKind.available)
    func erasureRewritesEveryCopyAndNothingElse(kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        try s.putCatalog(.entities, [CatalogItem(id: "acct-2", json: #"{"id":"acct-2"}"#, updatedAt: 1),
                                     CatalogItem(id: "acct-20", json: #"{"id":"acct-20","tags":{"peer":"acct-2"}}"#, updatedAt: 1)])
        try s.commit(log: batch(1, [#"{"entity":"acct-2","time":1}"#, #"{"entity":"acct-20","counterpart":"acct-2","time":2}"#, #"{"entity":"acct-20","time":3}"#]),
                     alerts: [alert(1, entity: "acct-2"), alert(2, entity: "acct-20"), alert(3, entity: nil, pair: ("acct-20", "acct-2"))], deliveries: [])
        _ = try s.addSilence(Silence(rule: nil, zone: nil, entity: "acct-2", severity: nil, startsAt: 0, endsAt: 1, creator: "c", comment: "mute acct-2", createdAt: 0))
        let (lines, alerts) = try s.eraseEntity(id: "acct-2", pseudonym: "anon-1", seqs: [1])
        #expect(lines == 1 && alerts == 2)
        #expect(try s.logLines([1, 2, 3]) == [1: "#erased", 2: #"{"entity":"acct-20","counterpart":"anon-1","time":2}"#, 3: #"{"entity":"acct-20","time":3}"#])
        #expect(try s.alert(id: 1)?.entity == "anon-1" && s.alert(id: 1)?.line.contains("acct-2\"") == false)
        #expect(try s.alert(id: 2) == alert(2, entity: "acct-20"))
        #expect(try s.alert(id: 3)?.pairB == "anon-1" && s.alert(id: 3)?.pairA == "acct-20")
        #expect(try s.catalog(.entities).map(\.id) == ["acct-20"])
        #expect(try s.catalogItem(.entities, id: "acct-20")?.json == #"{"id":"acct-20","tags":{"peer":"anon-1"}}"#)
        #expect(try s.silences().first?.entity == "anon-1" && s.silences().first?.comment == "mute anon-1")
        try s.compact()
    }

    /// A flush of the notifier: its state and its group notifications in one commit; both
    /// read back, and erasure reaches them.
    @Test(arguments: StoreKind.available)
    func groupNotificationsCommitWithTheNotifierState(_ kind: StoreKind) throws {
        let f = try Fixture(kind)
        let s = f.store
        try s.addReceiver(Receiver(id: "wh_1", url: "http://127.0.0.1:1/", secret: "whsec_x", minSeverity: nil, createdAt: 0))
        try s.commit(log: nil, alerts: [alert(1, entity: "acct-2"), alert(2, entity: "acct-20")], deliveries: [Delivery(receiver: "wh_1", alertId: 1, nextAttemptAt: 5, updatedAt: 5)])
        let body = #"{"key":"grp-00000000000000aa-1","alerts":[{"labels":{"entity":"acct-2"}},{"labels":{"entity":"acct-20"}}]}"#
        try s.commitNotifications(state: #"{"cursor":2,"groups":{"root:{entity=\"acct-2\"}":{}}}"#,
                                  deliveries: [Delivery(receiver: "wh_1", alertId: 2, notification: body, nextAttemptAt: 7, updatedAt: 7)])
        let all = try s.deliveries(state: nil, receiver: nil, afterId: 0, limit: 10)
        #expect(all.count == 2 && all[0].notification == nil && all[1].notification == body && all[1].alertId == 2)
        #expect(try s.dueDeliveries(now: 10, limit: 10).map(\.notification) == [nil, body])
        #expect(try s.meta(NotifyMeta.state)?.contains("\"cursor\":2") == true)
        _ = try s.eraseEntity(id: "acct-2", pseudonym: "anon-1", seqs: [])
        let erased = try s.deliveries(state: nil, receiver: nil, afterId: 0, limit: 10)[1].notification!
        #expect(!erased.contains("\"acct-2\"") && erased.contains("\"anon-1\"") && erased.contains("\"acct-20\""))
        let state = try s.meta(NotifyMeta.state)!
        #expect(!state.contains("acct-2\\\"") && state.contains("anon-1"))
    }
}



/// Errors collected from several threads.
final class NIOLockedFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
