import ArgumentParser
import Foundation
import TriplineCore
import TriplineNotify

/// `tripline bench-notify`: alerts through a notification policy on a simulated clock.
/// Reports notifications sent, the delay from each alert's arrival to the first notification
/// listing it (p50, p99, max), the notifier's cost per alert (wall clock), and its state size.
struct BenchNotify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-notify",
        abstract: "Measure the notifier: N alerts through a policy with G groups (build with -c release).")
    @Option(help: "Alerts in all.") var alerts = 100_000
    @Option(help: "Groups (distinct zones; the policy groups by zone).") var groups = 1000
    @Option(help: "Alerts per second of the simulated clock.") var rate = 100
    @Option(name: .customLong("resolve-after"), help: "A stateful alert resolves after a random time up to twice this.") var resolveAfter = "2m"
    @Option(name: .customLong("group-wait")) var groupWait = "30s"
    @Option(name: .customLong("group-interval")) var groupInterval = "5m"
    @Option(name: .customLong("repeat-interval")) var repeatInterval = "4h"
    @Option(help: "Share of alerts of an instant kind (the rest fire and later resolve).") var instant = 0.3
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run() throws {
        let yaml = "{\"route\": {\"receiver\": \"ops\", \"group_by\": [\"zone\"], \"group_wait\": \"\(groupWait)\", \"group_interval\": \"\(groupInterval)\", \"repeat_interval\": \"\(repeatInterval)\"}}"
        let doc = try JSONDocumentParser.parse(yaml, file: "policy").get()
        let policy = try NotificationPolicy.decode(doc, file: "policy", receivers: nil).get()
        let notifier = Notifier(policy: policy)
        let meanResolve = try CLI.parseDuration(resolveAfter, option: "--resolve-after")
        var pending: [(at: Millis, fp: String, labels: LabelSet)] = []   // resolutions, sorted by time
        var g = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> UInt64 {
            g ^= g << 13; g ^= g >> 7; g ^= g << 17
            return g
        }
        let t0: Millis = 1_772_409_600_000
        var arrival = [Millis](repeating: -1, count: alerts + 1)
        var resolution = [Bool](repeating: false, count: alerts + 1)
        var firstNotified = [Millis](repeating: -1, count: alerts + 1)
        var firing: [String: (Int64, LabelSet)] = [:]
        var notifications = 0, listed = 0
        var peakStateBytes = 0
        var nanos: UInt64 = 0
        let rssBefore = BenchIds.rssBytes()
        func take(_ ns: [GroupNotification]) {
            notifications += ns.count
            for n in ns {
                for a in n.firing + n.resolved {
                    listed += 1
                    if a.id <= alerts, firstNotified[Int(a.id)] < 0 { firstNotified[Int(a.id)] = n.at }
                }
            }
        }
        func until(_ t: Millis) {
            while let d = notifier.nextDue, d <= t {
                let s = DispatchTime.now().uptimeNanoseconds
                let ns = notifier.advance(to: d)
                nanos += DispatchTime.now().uptimeNanoseconds - s
                take(ns)
            }
        }
        for i in 1...alerts {
            let t = t0 + Millis(i) * 1000 / Millis(rate)
            until(t)
            if let r = pending.first, r.at <= t {
                // A firing key resolves.
                pending.removeFirst()
                firing[r.fp] = nil
                arrival[i] = t
                resolution[i] = true
                let a = NotifyAlert(id: Int64(i), fingerprint: r.fp, firing: false, instant: false, time: t, labels: r.labels)
                let s = DispatchTime.now().uptimeNanoseconds
                notifier.add(a, now: t)
                nanos += DispatchTime.now().uptimeNanoseconds - s
                continue
            }
            let zone = Int(next() % UInt64(groups))
            let entity = Int(next() % UInt64(groups * 5))
            let isInstant = Double(next() % 1000) / 1000 < instant
            let rule = isInstant ? "moved" : "hot"
            let labels: LabelSet = ["rule": rule, "kind": isInstant ? "exit" : "threshold", "severity": "high", "entity": "e\(entity)", "zone": "z\(zone)"]
            let fp = rule + "|e\(entity)|z\(zone)"
            if !isInstant && firing[fp] != nil { continue }   // fires already: no new transition
            let a = NotifyAlert(id: Int64(i), fingerprint: fp, firing: true, instant: isInstant, time: t, labels: labels)
            arrival[i] = t
            if !isInstant {
                firing[fp] = (Int64(i), labels)
                let at = t + Millis(next() % UInt64(2 * meanResolve + 1))
                let k = pending.firstIndex { $0.at > at } ?? pending.count
                pending.insert((at, fp, labels), at: k)
            }
            let s = DispatchTime.now().uptimeNanoseconds
            notifier.add(a, now: t)
            nanos += DispatchTime.now().uptimeNanoseconds - s
            if i % 10_000 == 0 {
                peakStateBytes = max(peakStateBytes, (try? JSONEncoder().encode(notifier.state).count) ?? 0)
            }
        }
        let end = t0 + Millis(alerts) * 1000 / Millis(rate)
        // One group interval past the last alert (plus the wait of groups born at the end)
        // flushes every alert that arrived; the groups still firing would go on reminding.
        until(end + policy.root.groupWait + policy.root.groupInterval)
        var delays: [Millis] = []
        var never = 0, neverResolutions = 0, emitted = 0
        for i in 1...alerts where arrival[i] >= 0 {
            emitted += 1
            if firstNotified[i] >= 0 {
                delays.append(firstNotified[i] - arrival[i])
            } else if resolution[i] {
                neverResolutions += 1
            } else {
                never += 1
            }
        }
        delays.sort()
        func pct(_ p: Double) -> Double { delays.isEmpty ? 0 : Double(delays[min(delays.count - 1, Int(Double(delays.count) * p))]) / 1000 }
        let rssAfter = BenchIds.rssBytes()
        print("firing at the end: \(firing.count)")
        print("alerts \(alerts), groups \(groups), rate \(rate)/s simulated, group_wait \(groupWait), group_interval \(groupInterval), instant share \(instant), stateful alerts resolve within 2 x \(resolveAfter)")
        print("notifications sent: \(notifications) (\(String(format: "%.1f", Double(listed) / Double(max(1, notifications)))) alerts listed each on average)")
        print("alerts emitted: \(emitted); firing alerts never listed: \(never); resolutions not sent: \(neverResolutions) (their alert resolved before it was notified as firing)")
        print(String(format: "delay alert -> first notification listing it: p50 %.1f s, p99 %.1f s, max %.1f s", pct(0.5), pct(0.99), pct(1.0)))
        print("flushes: \(notifier.flushes), looking at \(notifier.alertsLookedAt) alerts in all")
        print(String(format: "notifier cost: %.0f ns per alert (add + flushes), %.0f alerts/s", Double(nanos) / Double(alerts), Double(alerts) / (Double(nanos) / 1e9)))
        print(String(format: "state: peak %.1f KiB as saved JSON; RSS growth %.1f MiB", Double(peakStateBytes) / 1024, Double(rssAfter - rssBefore) / 1_048_576))
    }
}
