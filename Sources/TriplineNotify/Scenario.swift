import TriplineCore

/// A timeline of alerts and the notifications they should cause, in a compact text form, run
/// against a policy on a simulated clock (docs/notifications.md runs its examples this way):
///
///     start 2026-03-02T08:00:00Z
///     at 0s      firing   sensor-silent  entity=truck-7 kind=absence severity=high
///     at 10s     firing   exit           entity=truck-7 zone=depot-1 kind=exit
///     at 30s  -> oncall firing: sensor-silent[truck-7]
///
/// - `start TIME` (optional, default 2026-03-02T00:00:00Z, a Monday) sets the clock's origin.
/// - `at T firing|resolved RULE label=value ...` is an alert at T (a duration after the start,
///   or an RFC 3339 time). The labels name its key (`entity`, `zone`, `pair`, `group`) and any
///   others; `kind` decides whether it is instant (enter, exit, sequence, speed; default
///   threshold, a stateful kind) and `severity` defaults to medium.
/// - `at T -> RECEIVER STATUS: ALERT, ALERT; resolved: ALERT` is a notification expected at T;
///   an ALERT is written `rule[key values]`.
/// - Lines starting with `#` are comments.
///
/// The notifications produced must equal the expected ones, no more and no fewer, up to the
/// last time the scenario names.
public struct NotifyScenario {
    public struct Input {
        public var at: Millis
        public var alert: NotifyAlert
        public var line: Int
    }
    public var start: Millis
    public var inputs: [Input] = []
    /// Expected notifications as text (`Self.describe`), with their time and line.
    public var expected: [(at: Millis, text: String, line: Int)] = []

    public static let defaultStart: Millis = 1_772_409_600_000 // 2026-03-02T00:00:00Z, a Monday

    static let instantKinds: Set<String> = ["enter", "exit", "sequence", "speed"]

    /// `firstLine`: the line of the file the text starts on (errors and diffs name file lines).
    public static func parse(_ text: String, file: String, firstLine: Int = 1) -> Result<NotifyScenario, TriplineErrors> {
        var s = NotifyScenario(start: defaultStart)
        var errors: [TriplineError] = []
        var nextId: Int64 = 1
        func fail(_ line: Int, _ msg: String) {
            errors.append(TriplineError(.invalidValue, msg, at: SourceLocation(file: file, line: line, column: 1, pointer: "")))
        }
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = i + firstLine
            let t = raw.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            let words = t.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if words[0] == "start" {
                guard words.count == 2, case .success(let v) = EventTime.parseRFC3339(words[1]) else {
                    fail(line, "write start followed by an RFC 3339 time, such as start 2026-03-02T22:00:00Z")
                    continue
                }
                s.start = v
                continue
            }
            guard words[0] == "at", words.count >= 3 else {
                fail(line, "a line is \"start TIME\", \"at T firing|resolved RULE label=value...\" or \"at T -> RECEIVER STATUS: ALERTS\"")
                continue
            }
            var at: Millis
            if case .success(let v) = EventTime.parseRFC3339(words[1]) {
                at = v
            } else if case .success(let d) = DurationText.parse(words[1]) {
                at = s.start + d
            } else if words[1] == "0" {
                at = s.start
            } else {
                fail(line, "\"\(words[1])\" is neither a duration after the start (such as 90s or 1h5m) nor an RFC 3339 time")
                continue
            }
            if words[2] == "->" {
                let rest = t[t.range(of: "->")!.upperBound...].trimmingCharacters(in: .whitespaces)
                s.expected.append((at, rest.split(whereSeparator: { $0 == " " }).joined(separator: " "), line))
                continue
            }
            guard words[2] == "firing" || words[2] == "resolved", words.count >= 4 else {
                fail(line, "after the time comes firing or resolved and a rule id, or -> and an expected notification")
                continue
            }
            var labels: LabelSet = ["rule": words[3], "severity": "medium", "kind": "threshold"]
            var bad = false
            for w in words.dropFirst(4) {
                guard let eq = w.firstIndex(of: "="), eq != w.startIndex else {
                    fail(line, "\"\(w)\" is not label=value")
                    bad = true
                    break
                }
                labels[String(w[..<eq])] = String(w[w.index(after: eq)...])
            }
            if bad { continue }
            let alert = NotifyAlert(id: nextId, fingerprint: fingerprint(labels), firing: words[2] == "firing",
                                    instant: instantKinds.contains(labels["kind"]!), time: at, labels: labels)
            nextId += 1
            s.inputs.append(Input(at: at, alert: alert, line: line))
        }
        return errors.isEmpty ? .success(s) : .failure(TriplineErrors(errors))
    }

    static let keyLabels = ["entity", "zone", "pair", "group"]

    /// Rule and key values, as alerts are written in scenarios: `rule[v1 v2]`.
    public static func fingerprint(_ labels: LabelSet) -> String {
        let key = keyLabels.compactMap { labels[$0] }
        return (labels["rule"] ?? "") + "[" + key.joined(separator: " ") + "]"
    }

    /// A notification as a scenario writes it: `RECEIVER STATUS: ALERT, ...; resolved: ALERT, ...`.
    public static func describe(_ n: GroupNotification) -> String {
        var s = n.receiver + " " + n.status + ":"
        if !n.firing.isEmpty { s += " " + n.firing.map { fingerprint($0.labels) }.joined(separator: ", ") }
        if !n.resolved.isEmpty {
            if !n.firing.isEmpty { s += ";" }
            s += " resolved: " + n.resolved.map { fingerprint($0.labels) }.joined(separator: ", ")
        }
        return s
    }

    /// Runs the scenario; returns the notifications as `(time, text)`.
    public func run(_ policy: NotificationPolicy) -> [(at: Millis, text: String)] {
        let notifier = Notifier(policy: policy)
        var out: [(Millis, String)] = []
        let end = max(inputs.map(\.at).max() ?? start, expected.map(\.at).max() ?? start)
        func until(_ t: Millis) {
            while let d = notifier.nextDue, d <= t {
                for n in notifier.advance(to: d) { out.append((d, NotifyScenario.describe(n))) }
            }
        }
        for input in inputs.sorted(by: { $0.at < $1.at }) {
            until(input.at)
            notifier.add(input.alert, now: input.at)
        }
        until(end)
        return out
    }

    /// `90_000` as `1m30s`.
    public static func formatDuration(_ ms: Millis) -> String {
        if ms == 0 { return "0s" }
        var rest = ms / 1000, out = ""
        for (u, k) in [("d", Millis(86_400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= k {
            out += "\(rest / k)\(u)"
            rest %= k
        }
        return out
    }

    /// The differences between what ran and what was expected, as readable lines (empty when
    /// they agree).
    public func check(_ policy: NotificationPolicy) -> [String] {
        let got = run(policy)
        func fmt(_ t: Millis) -> String {
            let d = t - start
            return d >= 0 && d % 1000 == 0 ? NotifyScenario.formatDuration(d) : EventTime.format(t)
        }
        var missing = expected.map { (at: $0.at, text: $0.text, line: $0.line) }
        var extra: [(Millis, String)] = []
        for (t, text) in got {
            if let k = missing.firstIndex(where: { $0.at == t && $0.text == text }) {
                missing.remove(at: k)
            } else {
                extra.append((t, text))
            }
        }
        return missing.map { "line \($0.line): expected at \(fmt($0.at)) -> \($0.text), but it was not sent" }
            + extra.map { "unexpected at \(fmt($0.0)) -> \($0.1)" }
    }
}
