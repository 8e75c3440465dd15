import TriplineCore
import Yams

/// Reads YAML (and therefore most JSON) into the core's located `DocNode` tree.
public enum YAMLDocument {
    /// Parses YAML text. Plain scalars resolve as in YAML 1.1 for booleans (`yes`, `no`,
    /// `on`, `off`, `true`, `false`), nulls and numbers; quoted scalars are always strings.
    public static func parse(_ text: String, file: String) -> Result<DocNode, TriplineErrors> {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            return .failure(TriplineErrors([describe(e, file: file)]))
        } catch {
            return .failure(TriplineErrors([TriplineError(.syntax, "invalid YAML: \(error)", at: SourceLocation(file: file))]))
        }
        guard let node else {
            return .failure(TriplineErrors([TriplineError(.syntax, "the file is empty; a rule file is {rules: [...]}", at: SourceLocation(file: file, line: 1))]))
        }
        var errors: [TriplineError] = []
        let doc = convert(node, file: file, pointer: "", errors: &errors)
        return errors.isEmpty ? .success(doc) : .failure(TriplineErrors(errors))
    }

    static func describe(_ e: YamlError, file: String) -> TriplineError {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            let ctx = context.map { " \($0.text)" } ?? ""
            return TriplineError(.syntax, "invalid YAML: \(problem)\(ctx)", at: SourceLocation(file: file, line: mark.line, column: mark.column))
        case .duplicatedKeysInMapping(let duplicates, _):
            return TriplineError(.syntax, "invalid YAML: duplicate keys \(duplicates.joined(separator: ", "))", at: SourceLocation(file: file))
        default:
            return TriplineError(.syntax, "invalid YAML: \(e)", at: SourceLocation(file: file))
        }
    }

    static func convert(_ node: Node, file: String, pointer: String, errors: inout [TriplineError]) -> DocNode {
        let line = node.mark?.line ?? 0
        let column = node.mark?.column ?? 0
        switch node {
        case .scalar(let s):
            if s.string.utf8.contains(0) {
                errors.append(TriplineError(.syntax, "U+0000 (NUL) is not allowed in text: no id or name needs it, and PostgreSQL cannot store it", at: SourceLocation(file: file, line: line, column: column, pointer: pointer)))
            }
            return DocNode(scalar(s), line: line, column: column)
        case .sequence(let seq):
            var items: [DocNode] = []
            for (i, n) in seq.enumerated() {
                items.append(convert(n, file: file, pointer: pointer + "/\(i)", errors: &errors))
            }
            return DocNode(.array(items), line: line, column: column)
        case .mapping(let m):
            var members: [DocNode.Member] = []
            var seen = Set<String>()
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    errors.append(TriplineError(.syntax, "mapping keys must be plain strings", at: SourceLocation(file: file, line: k.mark?.line ?? line, column: k.mark?.column ?? 0, pointer: pointer)))
                    continue
                }
                let key = ks.string
                let p = pointer + "/" + pointerToken(key)
                if key.utf8.contains(0) {
                    errors.append(TriplineError(.syntax, "U+0000 (NUL) is not allowed in text: no id or name needs it, and PostgreSQL cannot store it", at: SourceLocation(file: file, line: k.mark?.line ?? line, column: k.mark?.column ?? 0, pointer: p)))
                    continue
                }
                if !seen.insert(key).inserted {
                    errors.append(TriplineError(.syntax, "duplicate key \"\(key)\"", at: SourceLocation(file: file, line: k.mark?.line ?? line, column: k.mark?.column ?? 0, pointer: p)))
                    continue
                }
                members.append(.init(key: key, node: convert(v, file: file, pointer: p, errors: &errors)))
            }
            return DocNode(.object(members), line: line, column: column)
        case .alias:
            errors.append(TriplineError(.syntax, "YAML aliases are not supported in rule files; write the value out", at: SourceLocation(file: file, line: line, column: column, pointer: pointer)))
            return DocNode(.null, line: line, column: column)
        }
    }

    static func scalar(_ s: Node.Scalar) -> DocNode.Value {
        if s.style != .plain && s.style != .any { return .string(s.string) }
        let t = s.string
        switch t {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return .bool(true)
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return .bool(false)
        default: break
        }
        if let v = number(t) { return v }
        return .string(t)
    }

    static func number(_ t: String) -> DocNode.Value? {
        let b = Array(t.utf8)
        guard let first = b.first, first == 45 || first == 43 || first == 46 || (first >= 48 && first <= 57) else {
            if [".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN"].contains(t) {
                return .number(t.contains("nan") || t.contains("NaN") || t.contains("NAN") ? .nan : (t.hasPrefix("-") ? -.infinity : .infinity), isInteger: false)
            }
            return nil
        }
        // Integers: optional sign, digits (underscores not accepted).
        var i = 0
        if b[0] == 45 || b[0] == 43 { i = 1 }
        guard i < b.count else { return nil }
        var allDigits = true
        for k in i..<b.count where !(b[k] >= 48 && b[k] <= 57) { allDigits = false }
        if allDigits, let v = Double(t) { return .number(v, isInteger: true) }
        // Floats: a digit must be present and the text must parse entirely.
        guard b.contains(where: { $0 >= 48 && $0 <= 57 }) else { return nil }
        guard b.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 101 || $0 == 69 || $0 == 45 || $0 == 43 }) else { return nil }
        if let v = Double(t) { return .number(v, isInteger: false) }
        return nil
    }
}

/// Decodes a rule file in YAML or JSON (YAML is a superset of JSON's syntax).
public enum RuleFile {
    public static func decode(_ text: String, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[Rule], TriplineErrors> {
        let trimmed = text.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
        if file.hasSuffix(".json") || trimmed.first == "{" && !file.hasSuffix(".yaml") && !file.hasSuffix(".yml") {
            return RuleCodec.decodeJSON(text, file: file, sensitive: sensitive)
        }
        switch YAMLDocument.parse(text, file: file) {
        case .failure(let e): return .failure(e)
        case .success(let doc): return RuleCodec.decode(doc, file: file, sensitive: sensitive)
        }
    }
}
