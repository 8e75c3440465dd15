import Foundation
import TriplineCore

/// One recurring period, as Alertmanager's `time_intervals` entries: every field given must
/// hold (an absent field holds always). Times are minutes of the local day, start inclusive,
/// end exclusive (`24:00` is the end of the day); all fields are read in `location`, an IANA
/// time zone (UTC when absent), so "22:00 to 24:00" follows daylight saving time.
public struct TimeRange: Sendable, Equatable {
    public var times: [ClosedRange<Int>]? = nil      // minutes [start, end - 1]
    public var weekdays: [ClosedRange<Int>]? = nil   // 0 = Sunday ... 6 = Saturday
    public var daysOfMonth: [ClosedRange<Int>]? = nil // 1...31, or negative from the end (-1 = last day)
    public var months: [ClosedRange<Int>]? = nil     // 1...12
    public var years: [ClosedRange<Int>]? = nil
    public var location: String = "UTC"

    public init() {}

    public func contains(_ t: Millis) -> Bool {
        guard let tz = TimeZone(identifier: location) else { return false }
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = tz
        let date = Date(timeIntervalSince1970: Double(t) / 1000)
        let c = cal.dateComponents([.year, .month, .day, .weekday, .hour, .minute], from: date)
        guard let year = c.year, let month = c.month, let day = c.day, let wd = c.weekday, let h = c.hour, let m = c.minute else { return false }
        if let times, !times.contains(where: { $0.contains(h * 60 + m) }) { return false }
        if let weekdays, !weekdays.contains(where: { $0.contains(wd - 1) }) { return false }
        if let months, !months.contains(where: { $0.contains(month) }) { return false }
        if let years, !years.contains(where: { $0.contains(year) }) { return false }
        if let daysOfMonth {
            let n = cal.range(of: .day, in: .month, for: date)?.count ?? 31
            let ok = daysOfMonth.contains { r in
                // Negative days count from the end: -1 is the last day of this month.
                let lo = r.lowerBound < 0 ? n + 1 + r.lowerBound : r.lowerBound
                let hi = r.upperBound < 0 ? n + 1 + r.upperBound : r.upperBound
                return lo <= day && day <= hi
            }
            if !ok { return false }
        }
        return true
    }
}

/// A named list of periods; it holds at `t` when any of them does.
public struct NamedTimeInterval: Sendable, Equatable {
    public var name: String
    public var ranges: [TimeRange]
    public init(name: String, ranges: [TimeRange]) {
        self.name = name
        self.ranges = ranges
    }
    public func contains(_ t: Millis) -> Bool { ranges.contains { $0.contains(t) } }
}

enum TimeIntervalCodec {
    static let weekdayNames = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    static let monthNames = ["january", "february", "march", "april", "may", "june", "july", "august",
                             "september", "october", "november", "december"]

    static func decode(_ node: DocNode, _ p: String, _ r: inout DocReader) -> NamedTimeInterval? {
        guard let f = r.object(node, p, allowed: ["name", "time_intervals"], what: "time interval") else { return nil }
        guard let (nn, np) = r.require(f, "name", parent: node, pointer: p, what: "time interval"),
              let name = r.string(nn, np, what: "name") else { return nil }
        guard let (ln, lp) = r.require(f, "time_intervals", parent: node, pointer: p, what: "time interval \"\(name)\"",
                                       hint: "a list of periods such as {weekdays: ['monday:friday'], times: [{start_time: '22:00', end_time: '24:00'}]}") else { return nil }
        guard let items = ln.elements, !items.isEmpty else {
            r.fail(ln, lp, "time_intervals must be a non-empty list of periods, found \(ln.typeName)")
            return nil
        }
        var ranges: [TimeRange] = []
        let before = r.errors.count
        for (i, item) in items.enumerated() {
            if let tr = range(item, lp + "/\(i)", &r) { ranges.append(tr) }
        }
        return r.errors.count == before ? NamedTimeInterval(name: name, ranges: ranges) : nil
    }

    static func range(_ node: DocNode, _ p: String, _ r: inout DocReader) -> TimeRange? {
        guard let f = r.object(node, p, allowed: ["times", "weekdays", "days_of_month", "months", "years", "location"], what: "period") else { return nil }
        var tr = TimeRange()
        let before = r.errors.count
        if let (n, np) = f["location"], let s = r.string(n, np, what: "location") {
            if TimeZone(identifier: s) == nil {
                r.fail(n, np, "location \"\(s)\" is not an IANA time zone such as Europe/Amsterdam, America/Chicago or UTC")
            } else {
                tr.location = s
            }
        }
        if let (n, np) = f["times"] {
            if let items = n.elements, !items.isEmpty {
                var out: [ClosedRange<Int>] = []
                for (i, it) in items.enumerated() {
                    let ip = np + "/\(i)"
                    guard let tf = r.object(it, ip, allowed: ["start_time", "end_time"], what: "times entry") else { continue }
                    guard let (sn, sp) = r.require(tf, "start_time", parent: it, pointer: ip, what: "times entry", hint: "HH:MM"),
                          let (en, ep) = r.require(tf, "end_time", parent: it, pointer: ip, what: "times entry", hint: "HH:MM, up to 24:00") else { continue }
                    guard let s = clock(sn, sp, &r, allow24: false), let e = clock(en, ep, &r, allow24: true) else { continue }
                    if e <= s {
                        r.fail(en, ep, "end_time must be after start_time (a period across midnight is two entries: 22:00-24:00 and 00:00-06:00)")
                        continue
                    }
                    out.append(s...(e - 1))
                }
                tr.times = out
            } else {
                r.fail(n, np, "times must be a non-empty list of {start_time, end_time}, found \(n.typeName)")
            }
        }
        if let (n, np) = f["weekdays"] {
            tr.weekdays = ranges(n, np, &r, what: "weekdays", names: weekdayNames, bounds: 0...6, numeric: false)
        }
        if let (n, np) = f["months"] {
            tr.months = ranges(n, np, &r, what: "months", names: monthNames, bounds: 1...12, numeric: true)
        }
        if let (n, np) = f["days_of_month"] {
            tr.daysOfMonth = ranges(n, np, &r, what: "days_of_month", names: [], bounds: -31...31, numeric: true)
            for d in tr.daysOfMonth ?? [] where d.contains(0) || (d.lowerBound < 0) != (d.upperBound < 0) && d.lowerBound != d.upperBound {
                r.fail(n, np, "days_of_month: 0 is not a day, and a range may not mix days from the start and from the end (1:31 or -7:-1)")
                break
            }
        }
        if let (n, np) = f["years"] {
            tr.years = ranges(n, np, &r, what: "years", names: [], bounds: 1970...9999, numeric: true)
        }
        return r.errors.count == before ? tr : nil
    }

    static func clock(_ n: DocNode, _ p: String, _ r: inout DocReader, allow24: Bool) -> Int? {
        guard let s = r.string(n, p, what: "time") else { return nil }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, parts[0].count == 2, parts[1].count == 2, let h = Int(parts[0]), let m = Int(parts[1]),
           (0...59).contains(m), (0...23).contains(h) || (allow24 && h == 24 && m == 0) {
            return h * 60 + m
        }
        r.fail(n, p, "\"\(s)\" is not a time of day HH:MM (00:00 to \(allow24 ? "24:00" : "23:59"))")
        return nil
    }

    /// Items such as `monday`, `monday:friday`, `3`, `1:5`, `-3:-1`.
    static func ranges(_ n: DocNode, _ p: String, _ r: inout DocReader, what: String, names: [String], bounds: ClosedRange<Int>, numeric: Bool) -> [ClosedRange<Int>]? {
        guard let items = r.stringList(n, p, what: what) else { return nil }
        var out: [ClosedRange<Int>] = []
        for (i, item) in items.enumerated() {
            let ip = n.elements == nil ? p : p + "/\(i)"
            let node = n.elements?[i] ?? n
            func one(_ t: Substring) -> Int? {
                let low = t.lowercased()
                if let k = names.firstIndex(of: low) { return k + (numeric ? bounds.lowerBound : 0) }
                if numeric, let v = Int(low), bounds.contains(v) { return v }
                return nil
            }
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let a = one(parts[0]), let b = parts.count == 2 ? one(parts[1]) : a, a <= b else {
                let example = names.isEmpty ? "\(bounds.lowerBound == -31 ? "1, 1:5 or -3:-1" : "2026 or 2026:2027")" : "\(names[1]) or \(names[1]):\(names[5])"
                r.fail(node, ip, "\(what) item \"\(item)\" is not a value or a range low:high such as \(example)")
                continue
            }
            out.append(a...b)
        }
        return out
    }
}
