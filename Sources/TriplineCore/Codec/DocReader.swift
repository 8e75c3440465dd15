import Foundation

/// Walks a `DocNode` tree collecting every error with its location, so that a whole file's
/// problems are reported at once.
public struct DocReader {
    public let file: String
    public var errors: [TriplineError] = []

    public init(file: String) { self.file = file }

    public func location(_ node: DocNode, _ pointer: String) -> SourceLocation {
        SourceLocation(file: file, line: node.line, column: node.column, pointer: pointer)
    }

    public mutating func fail(_ node: DocNode, _ pointer: String, _ message: String, code: TriplineError.Code = .invalidValue) {
        errors.append(TriplineError(code, message, at: location(node, pointer)))
    }

    /// Reads an object, reporting unknown members (with a suggestion when one is close).
    public mutating func object(_ node: DocNode, _ pointer: String, allowed: [String], what: String) -> [String: (DocNode, String)]? {
        guard let members = node.members else {
            fail(node, pointer, "\(what) must be an object, found \(node.typeName)")
            return nil
        }
        var out: [String: (DocNode, String)] = [:]
        for m in members {
            let p = pointer + "/" + pointerToken(m.key)
            if !allowed.contains(m.key) {
                var msg = "unknown field \"\(m.key)\" in \(what)"
                if let near = DocReader.closest(m.key, allowed) { msg += " (did you mean \"\(near)\"?)" }
                msg += "; allowed: \(allowed.joined(separator: ", "))"
                fail(m.node, p, msg, code: .unknownField)
                continue
            }
            out[m.key] = (m.node, p)
        }
        return out
    }

    public static func closest(_ s: String, _ options: [String]) -> String? {
        func dist(_ a: [Character], _ b: [Character]) -> Int {
            var prev = Array(0...b.count)
            for i in 1...max(1, a.count) where !a.isEmpty {
                var cur = [i] + Array(repeating: 0, count: b.count)
                for j in 1...max(1, b.count) where !b.isEmpty {
                    cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                }
                prev = cur
            }
            return prev[b.count]
        }
        let a = Array(s.lowercased())
        let best = options.map { ($0, dist(a, Array($0.lowercased()))) }.min { $0.1 < $1.1 }
        if let best, best.1 <= max(1, s.count / 3) { return best.0 }
        return nil
    }

    public mutating func require(_ fields: [String: (DocNode, String)], _ key: String, parent: DocNode, pointer: String, what: String, hint: String = "") -> (DocNode, String)? {
        if let v = fields[key] { return v }
        fail(parent, pointer, "\(what) is missing required field \"\(key)\"\(hint.isEmpty ? "" : ": " + hint)", code: .missingField)
        return nil
    }

    public mutating func string(_ node: DocNode, _ pointer: String, what: String, nonEmpty: Bool = true) -> String? {
        guard let s = node.stringValue else {
            fail(node, pointer, "\(what) must be a string, found \(node.typeName)")
            return nil
        }
        if nonEmpty && s.utf8.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 10 || $0 == 13 }) {
            fail(node, pointer, "\(what) must not be empty")
            return nil
        }
        return s
    }

    public mutating func number(_ node: DocNode, _ pointer: String, what: String) -> Double? {
        guard let d = node.numberValue else {
            fail(node, pointer, "\(what) must be a number, found \(node.typeName)")
            return nil
        }
        guard d.isFinite else {
            fail(node, pointer, "\(what) must be a finite number")
            return nil
        }
        return d
    }

    public mutating func integer(_ node: DocNode, _ pointer: String, what: String, min: Int) -> Int? {
        guard case .number(let d, _) = node.value, d.isFinite, d == d.rounded(), abs(d) < 1e15 else {
            fail(node, pointer, "\(what) must be a whole number, found \(node.typeName == "a number" ? "\(node.numberValue!)" : node.typeName)")
            return nil
        }
        guard Int(d) >= min else {
            fail(node, pointer, "\(what) must be at least \(min), found \(Int(d))")
            return nil
        }
        return Int(d)
    }

    /// A duration such as `30s` or `1h30m`; zero only when `allowZero`.
    public mutating func duration(_ node: DocNode, _ pointer: String, what: String, allowZero: Bool = false) -> Millis? {
        guard let s = node.stringValue else {
            fail(node, pointer, "\(what) must be a duration string such as \"30s\", \"5m\" or \"1h30m\", found \(node.typeName)")
            return nil
        }
        switch DurationText.parse(s) {
        case .failure(let e):
            fail(node, pointer, "\(what): \(e.message)")
            return nil
        case .success(let v):
            if v == 0 && !allowZero {
                fail(node, pointer, "\(what) must be greater than zero (got \"\(s)\"); only cooldown may be 0")
                return nil
            }
            return v
        }
    }

    /// A string or a non-empty list of strings.
    public mutating func stringList(_ node: DocNode, _ pointer: String, what: String) -> [String]? {
        if let s = node.stringValue { return [s] }
        guard let a = node.elements else {
            fail(node, pointer, "\(what) must be a string or a list of strings, found \(node.typeName) (in YAML quote values like '8' or 'yes')")
            return nil
        }
        if a.isEmpty {
            fail(node, pointer, "\(what) is an empty list, which would match nothing; remove the field to match all, or list values")
            return nil
        }
        var out: [String] = []
        for (i, e) in a.enumerated() {
            guard let s = e.stringValue else {
                fail(e, pointer + "/\(i)", "\(what) must contain strings only, found \(e.typeName) (in YAML quote values like '8' or 'yes')")
                return nil
            }
            out.append(s)
        }
        return out
    }

    /// A string-to-string map (tags).
    public mutating func stringMap(_ node: DocNode, _ pointer: String, what: String, sensitive: SensitiveTags) -> [String: String]? {
        guard let members = node.members else {
            fail(node, pointer, "\(what) must be an object of string values, found \(node.typeName)")
            return nil
        }
        var out: [String: String] = [:]
        var ok = true
        for m in members {
            let p = pointer + "/" + pointerToken(m.key)
            if sensitive.isSensitive(m.key) {
                fail(m.node, p, "tag \"\(m.key)\" is a sensitive category and is refused: Tripline does not collect or select on it (spec section 6); remove the tag", code: .sensitiveTag)
                ok = false
                continue
            }
            guard let s = m.node.stringValue else {
                fail(m.node, p, "tag \"\(m.key)\" must be a string, found \(m.node.typeName)")
                ok = false
                continue
            }
            out[m.key] = s
        }
        return ok ? out : nil
    }

    /// A selector of entities (`classKey` = "kind") or zones (`classKey` = "category").
    public mutating func selector(_ node: DocNode, _ pointer: String, classKey: String, what: String, sensitive: SensitiveTags) -> Selector? {
        guard let f = object(node, pointer, allowed: [classKey, "tags", "ids"], what: what) else { return nil }
        var sel = Selector()
        var ok = true
        if let (n, p) = f[classKey] {
            if let v = stringList(n, p, what: "\(what) \(classKey)") { sel.classes = v } else { ok = false }
        }
        if let (n, p) = f["ids"] {
            if let v = stringList(n, p, what: "\(what) ids") { sel.ids = v } else { ok = false }
        }
        if let (n, p) = f["tags"] {
            if let members = n.members {
                var tags: [String: [String]] = [:]
                for m in members {
                    let mp = p + "/" + pointerToken(m.key)
                    if sensitive.isSensitive(m.key) {
                        fail(m.node, mp, "\(what) names the sensitive tag \"\(m.key)\": rules may not select on it (spec section 6); remove it", code: .sensitiveTag)
                        ok = false
                        continue
                    }
                    if let v = stringList(m.node, mp, what: "tag \"\(m.key)\"") { tags[m.key] = v } else { ok = false }
                }
                if members.isEmpty {
                    fail(n, p, "\(what) tags is empty; remove it to match all")
                    ok = false
                }
                sel.tags = tags
            } else {
                fail(n, p, "\(what) tags must be an object such as {cargo: hazmat}, found \(n.typeName)")
                ok = false
            }
        }
        return ok ? sel : nil
    }
}
