/// Event time: milliseconds since the Unix epoch (UTC).
public typealias Millis = Int64

/// The bounds every time and duration lies in (spec v1.2). Every time that enters Tripline
/// (an event's `time`, `--until`, a watermark command, `expires`, a silence's start or end, a
/// query parameter) passes through `EventTime.parseRFC3339`, `EventTime.fromNumber` or
/// `EventTime.parseText`, and every duration through `DurationText.parse`; each refuses a value
/// outside these bounds. So every time is in [0, maxTime] and every duration in
/// [0, maxDuration], and any sum of a time and a few durations stays below 2^49: no arithmetic
/// of the engine, the server or the CLI on these values can overflow an Int64.
public enum TimeBounds {
    /// 1970-01-01T00:00:00.000Z.
    public static let minTime: Millis = 0
    /// 9999-12-31T23:59:59.999Z.
    public static let maxTime: Millis = 253_402_300_799_999
    /// 100 years of 365.25 days: 36,525 days.
    public static let maxDuration: Millis = 36_525 * 86_400_000
    /// The text used in messages for the time range.
    public static let rangeText = "1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z (epoch ms 0 to 253402300799999)"

    /// `t + d` saturating at the ends of Int64: for derived values only (deadlines of bounded
    /// times and durations never come near the ends).
    @inline(__always)
    public static func add(_ t: Millis, _ d: Millis) -> Millis {
        let (s, o) = t.addingReportingOverflow(d)
        return o ? (d > 0 ? .max : .min) : s
    }
}

/// Parsing and formatting of event times (spec section 2 and 4).
public enum EventTime {
    /// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
    
    public static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    
    static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    
    static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    
    static func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Why an RFC 3339 text was refused.
    public enum ParseFailure: Error, Sendable {
        case malformed(String)
    }

    /// Parses RFC 3339 with an offset (`T`/`Z` in either case, digits beyond the millisecond
    /// truncated) from raw UTF-8 bytes. Returns epoch milliseconds or a reason.
    
    public static func parseRFC3339(_ p: UnsafeBufferPointer<UInt8>) -> Result<Millis, ParseFailure> {
        let n = p.count
        @inline(__always) func digit(_ i: Int) -> Int64? {
            guard i < n else { return nil }
            let c = p[i]
            return (c >= 48 && c <= 57) ? Int64(c - 48) : nil
        }
        @inline(__always) func num(_ i: Int, _ len: Int) -> Int64? {
            var v: Int64 = 0
            for k in 0..<len {
                guard let d = digit(i + k) else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard n >= 20 else {
            return .failure(.malformed("too short for RFC 3339 (expected e.g. 2026-03-01T08:00:00Z)"))
        }
        guard let y = num(0, 4), p[4] == 45, let mo = num(5, 2), p[7] == 45, let d = num(8, 2) else {
            return .failure(.malformed("the date must be YYYY-MM-DD"))
        }
        guard p[10] == 84 || p[10] == 116 else { return .failure(.malformed("expected 'T' between date and time")) }
        guard let h = num(11, 2), p[13] == 58, let mi = num(14, 2), p[16] == 58, let s = num(17, 2) else {
            return .failure(.malformed("the time must be hh:mm:ss"))
        }
        guard mo >= 1 && mo <= 12 else { return .failure(.malformed("month \(mo) is out of range 01-12")) }
        guard d >= 1 && d <= daysInMonth(y, mo) else { return .failure(.malformed("day \(d) does not exist in \(y)-\(mo)")) }
        guard h <= 23 else { return .failure(.malformed("hour \(h) is out of range 00-23")) }
        guard mi <= 59 else { return .failure(.malformed("minute \(mi) is out of range 00-59")) }
        guard s <= 59 else { return .failure(.malformed("second \(s) is out of range 00-59 (leap seconds are not accepted)")) }
        var i = 19
        var ms: Int64 = 0
        if i < n && p[i] == 46 {
            i += 1
            var digits = 0
            while i < n, let dg = digit(i) {
                if digits < 3 { ms = ms * 10 + dg }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return .failure(.malformed("a '.' must be followed by fraction digits")) }
            if digits == 1 { ms *= 100 } else if digits == 2 { ms *= 10 }
        }
        guard i < n else { return .failure(.malformed("missing offset: end with 'Z' or '+hh:mm'")) }
        var offsetMin: Int64 = 0
        let c = p[i]
        if c == 90 || c == 122 {
            i += 1
        } else if c == 43 || c == 45 {
            guard let oh = num(i + 1, 2), i + 3 < n, p[i + 3] == 58, let om = num(i + 4, 2), oh <= 23, om <= 59 else {
                return .failure(.malformed("the offset must be 'Z' or +hh:mm / -hh:mm"))
            }
            offsetMin = oh * 60 + om
            if c == 45 { offsetMin = -offsetMin }
            i += 6
        } else {
            return .failure(.malformed("missing offset: end with 'Z' or '+hh:mm'"))
        }
        guard i == n else { return .failure(.malformed("unexpected text after the offset")) }
        let days = daysFromCivil(y, mo, d)
        let secs = days * 86400 + h * 3600 + mi * 60 + s - offsetMin * 60
        let t = secs * 1000 + ms
        guard t >= TimeBounds.minTime && t <= TimeBounds.maxTime else {
            return .failure(.malformed("out of range: times lie in \(TimeBounds.rangeText)"))
        }
        return .success(t)
    }

    /// A JSON number as epoch milliseconds: whole and within the time bounds, or nil. Never
    /// traps, whatever the double (1e300, -0, NaN, 2^64).
    public static func fromNumber(_ d: Double) -> Millis? {
        guard d.isFinite, d == d.rounded(), d >= Double(TimeBounds.minTime), d <= Double(TimeBounds.maxTime) else { return nil }
        return Millis(d)
    }

    /// Text that is either epoch milliseconds (digits only) or RFC 3339, within the time bounds.
    public static func parseText(_ s: String) -> Result<Millis, ParseFailure> {
        if !s.isEmpty, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            guard s.utf8.count <= 15, let v = Millis(s), v <= TimeBounds.maxTime else {
                return .failure(.malformed("epoch milliseconds out of range: times lie in \(TimeBounds.rangeText)"))
            }
            return .success(v)
        }
        return parseRFC3339(s)
    }

    /// Parses RFC 3339 from a String.
    public static func parseRFC3339(_ s: String) -> Result<Millis, ParseFailure> {
        var s = s
        return s.withUTF8 { parseRFC3339($0) }
    }

    /// Formats epoch milliseconds as RFC 3339 UTC with exactly three fractional digits.
    public static func format(_ t: Millis) -> String {
        var out = [UInt8]()
        out.reserveCapacity(24)
        append(t, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the RFC 3339 form of `t` to a byte buffer.
    
    public static func append(_ t: Millis, to out: inout [UInt8]) {
        var days = t / 86_400_000
        var rem = t % 86_400_000
        if rem < 0 { rem += 86_400_000; days -= 1 }
        let (y, m, d) = civilFromDays(days)
        let ms = rem % 1000
        let secOfDay = rem / 1000
        @inline(__always) func two(_ v: Int64) { out.append(UInt8(48 + v / 10)); out.append(UInt8(48 + v % 10)) }
        if y < 0 || y > 9999 {
            let ys = String(y)
            out.append(contentsOf: ys.utf8)
        } else {
            two(y / 100); two(y % 100)
        }
        out.append(45); two(m); out.append(45); two(d); out.append(84)
        two(secOfDay / 3600); out.append(58); two((secOfDay / 60) % 60); out.append(58); two(secOfDay % 60)
        out.append(46)
        out.append(UInt8(48 + ms / 100)); out.append(UInt8(48 + (ms / 10) % 10)); out.append(UInt8(48 + ms % 10))
        out.append(90)
    }
}

/// Rule durations: `500ms`, `30s`, `5m`, `2h`, `7d` or combined (`1h30m`), units in
/// decreasing order, each at most once.
public enum DurationText {
    /// Parses a duration into milliseconds, or returns a message saying what is wrong.
    public static func parse(_ text: String) -> Result<Millis, TriplineError> {
        let units: [(String, Millis)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
        let bytes = Array(text.utf8)
        if bytes.isEmpty {
            return .failure(TriplineError(.invalidValue, "empty duration; write e.g. 30s, 5m, 1h30m"))
        }
        var i = 0
        var total: Millis = 0
        var lastRank = -1
        while i < bytes.count {
            var v: Millis = 0
            var nd = 0
            while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Millis(bytes[i] - 48))
                if o1 || o2 { return .failure(TriplineError(.invalidValue, "duration '\(text)' is longer than 100 years (36525d), the longest Tripline accepts")) }
                v = a
                nd += 1
                i += 1
            }
            guard nd > 0 else {
                return .failure(TriplineError(.invalidValue, "duration '\(text)' is not of the form 1h30m (a number before each unit; units ms, s, m, h, d)"))
            }
            var unit = ""
            while i < bytes.count, !(bytes[i] >= 48 && bytes[i] <= 57) {
                unit.append(Character(UnicodeScalar(bytes[i])))
                i += 1
            }
            guard let rank = units.firstIndex(where: { $0.0 == unit }) else {
                let u = unit.isEmpty ? "no unit" : "unit '\(unit)'"
                return .failure(TriplineError(.invalidValue, "duration '\(text)' has \(u); use ms, s, m, h or d (e.g. 30s, 1h30m)"))
            }
            guard rank > lastRank else {
                return .failure(TriplineError(.invalidValue, "duration '\(text)': units must appear in decreasing order, each at most once (e.g. 1h30m)"))
            }
            lastRank = rank
            let (p, o) = v.multipliedReportingOverflow(by: units[rank].1)
            let (s, o2) = total.addingReportingOverflow(p)
            if o || o2 { return .failure(TriplineError(.invalidValue, "duration '\(text)' is longer than 100 years (36525d), the longest Tripline accepts")) }
            total = s
            if total > TimeBounds.maxDuration {
                return .failure(TriplineError(.invalidValue, "duration '\(text)' is longer than 100 years (36525d), the longest Tripline accepts"))
            }
        }
        return .success(total)
    }

    /// Formats milliseconds back into the duration language (for messages and docs).
    public static func format(_ ms: Millis) -> String {
        if ms == 0 { return "0s" }
        var r = ms
        var s = ""
        for (u, f) in [("d", Millis(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where r >= f {
            s += "\(r / f)\(u)"
            r %= f
        }
        return s
    }
}
