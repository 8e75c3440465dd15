import Foundation
import TriplineCore

/// An alert's labels: built-in ones (`AlertLabels.builtIn`) and its rule's.
public typealias LabelSet = [String: String]

/// One matcher, as Alertmanager writes them: `name="value"`, `name!="value"`,
/// `name=~"regex"`, `name!~"regex"`. A regex matches the whole value. A label an alert does
/// not have has the value "" (so `zone=""` matches alerts without a zone).
public struct Matcher: Sendable, CustomStringConvertible {
    public enum Op: String, Sendable, CaseIterable {
        case equal = "=", notEqual = "!=", regex = "=~", notRegex = "!~"
    }
    public let name: String
    public let op: Op
    public let value: String
    let regex: NSRegularExpression?

    public init(name: String, op: Op, value: String) throws {
        self.name = name
        self.op = op
        self.value = value
        if op == .regex || op == .notRegex {
            // Anchored at both ends: the regex matches the whole value, as in Alertmanager.
            regex = try NSRegularExpression(pattern: "\\A(?:" + value + ")\\z")
        } else {
            regex = nil
        }
    }

    public func matches(_ labels: LabelSet) -> Bool {
        let v = labels[name] ?? ""
        switch op {
        case .equal: return v == value
        case .notEqual: return v != value
        case .regex: return Matcher.whole(regex!, v)
        case .notRegex: return !Matcher.whole(regex!, v)
        }
    }

    static func whole(_ re: NSRegularExpression, _ v: String) -> Bool {
        re.firstMatch(in: v, range: NSRange(v.startIndex..., in: v)) != nil
    }

    public var description: String { name + op.rawValue + JSONText.quoted(value) }

    /// Parses `name op value`; the value may be double-quoted (with `\"` and `\\` escapes) or
    /// bare. Returns an error sentence on failure.
    public static func parse(_ text: String) -> Result<Matcher, MatcherError> {
        let s = Array(text.utf8)
        var i = 0
        func skipSpace() { while i < s.count, s[i] == 32 || s[i] == 9 { i += 1 } }
        skipSpace()
        let nameStart = i
        while i < s.count, s[i] == 95 || (s[i] | 32 >= 97 && s[i] | 32 <= 122) || (s[i] >= 48 && s[i] <= 57) { i += 1 }
        let name = String(decoding: s[nameStart..<i], as: UTF8.self)
        guard !name.isEmpty, AlertLabels.isValidName(name) else {
            return .failure(MatcherError("\"\(text)\" does not start with a label name; write a matcher such as severity=\"critical\" or rule=~\"exit|speed\""))
        }
        skipSpace()
        var op: Op?
        if i + 1 < s.count {
            let two = String(decoding: s[i...(i + 1)], as: UTF8.self)
            if let o = Op(rawValue: two), o != .equal { op = o; i += 2 }
        }
        if op == nil, i < s.count, s[i] == 61 { op = .equal; i += 1 }
        guard let op else {
            return .failure(MatcherError("\"\(text)\": after the label name \(name) comes one of =, !=, =~, !~"))
        }
        skipSpace()
        var value = ""
        if i < s.count, s[i] == 34 {
            i += 1
            var bytes: [UInt8] = []
            var closed = false
            while i < s.count {
                if s[i] == 92, i + 1 < s.count {
                    let n = s[i + 1]
                    bytes.append(n == 110 ? 10 : n)
                    i += 2
                    continue
                }
                if s[i] == 34 { closed = true; i += 1; break }
                bytes.append(s[i])
                i += 1
            }
            guard closed else { return .failure(MatcherError("\"\(text)\": the quoted value is not closed with \"")) }
            value = String(decoding: bytes, as: UTF8.self)
            skipSpace()
            guard i == s.count else {
                return .failure(MatcherError("\"\(text)\": unexpected text after the quoted value; write one matcher per list item"))
            }
        } else {
            value = String(decoding: s[i...], as: UTF8.self)
            while value.last == " " { value.removeLast() }
            if value.contains("\"") {
                return .failure(MatcherError("\"\(text)\": a bare value may not contain \"; quote the whole value"))
            }
        }
        do {
            return .success(try Matcher(name: name, op: op, value: value))
        } catch {
            return .failure(MatcherError("\"\(text)\": \(JSONText.quoted(value)) is not a valid regular expression; check its brackets, repetitions and escapes"))
        }
    }
}

public struct MatcherError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

extension [Matcher] {
    /// True when every matcher matches (an empty list matches everything).
    public func matchAll(_ labels: LabelSet) -> Bool { allSatisfy { $0.matches(labels) } }
}
