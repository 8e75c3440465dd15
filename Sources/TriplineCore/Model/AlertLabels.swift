import Mustache

/// The labels an alert carries into notification routing, and the annotation templates a rule
/// may give its alerts.
///
/// Every alert has the built-in labels below (those that apply to its key); a rule adds its own
/// `labels`. A rule label may not reuse a built-in name, so a matcher on `rule` or `zone` always
/// means the same thing.
public enum AlertLabels {
    /// Built-in label names: `rule` (id), `kind`, `severity`, and from the key `entity`,
    /// `zone`, `zone_category`, `pair` ("a,b", sorted) and `group` (a `by` value).
    public static let builtIn = ["rule", "kind", "severity", "entity", "zone", "zone_category", "pair", "group"]
    /// The annotation names a rule may set.
    public static let annotationNames = ["summary", "description", "runbook_url"]

    /// A label name as Prometheus and Alertmanager write them: `[A-Za-z_][A-Za-z0-9_]*`.
    public static func isValidName(_ s: String) -> Bool {
        guard let f = s.utf8.first, f == 95 || (f | 32 >= 97 && f | 32 <= 122) else { return false }
        return s.utf8.allSatisfy { $0 == 95 || ($0 | 32 >= 97 && $0 | 32 <= 122) || ($0 >= 48 && $0 <= 57) }
    }

    /// Decodes a rule's `labels` object: names as `isValidName`, not built-in, not sensitive;
    /// values non-empty strings.
    public static func decodeRuleLabels(_ node: DocNode, _ pointer: String, _ r: inout DocReader, _ sensitive: SensitiveTags) -> [String: String]? {
        guard let members = node.members else {
            r.fail(node, pointer, "labels must be an object of string values such as {team: depot-ops}, found \(node.typeName)")
            return nil
        }
        var out: [String: String] = [:]
        var ok = true
        for m in members {
            let p = pointer + "/" + pointerToken(m.key)
            if sensitive.isSensitive(m.key) {
                r.fail(m.node, p, "label \"\(m.key)\" is a sensitive category and is refused: Tripline does not collect, select or route on it; remove the label", code: .sensitiveTag)
                ok = false
                continue
            }
            if !isValidName(m.key) {
                r.fail(m.node, p, "label name \"\(m.key)\" is not valid: use letters, digits and _ (not first a digit), as in team or site_code")
                ok = false
                continue
            }
            if builtIn.contains(m.key) {
                r.fail(m.node, p, "label \"\(m.key)\" is built in: every alert already carries it (\(builtIn.joined(separator: ", "))); choose another name")
                ok = false
                continue
            }
            guard let s = m.node.stringValue else {
                r.fail(m.node, p, "label \"\(m.key)\" must be a string, found \(m.node.typeName) (in YAML quote values like '8' or 'yes')")
                ok = false
                continue
            }
            if s.isEmpty {
                r.fail(m.node, p, "label \"\(m.key)\" is empty; an empty label is the same as no label, so remove it")
                ok = false
                continue
            }
            out[m.key] = s
        }
        return ok ? out : nil
    }

    /// Decodes a rule's `annotations`: `summary`, `description`, `runbook_url`, each a
    /// Mustache template that must parse.
    public static func decodeAnnotations(_ node: DocNode, _ pointer: String, _ r: inout DocReader) -> [String: String]? {
        guard let f = r.object(node, pointer, allowed: annotationNames, what: "annotations") else { return nil }
        var out: [String: String] = [:]
        var ok = true
        for (name, (n, p)) in f {
            guard let s = r.string(n, p, what: "annotation \(name)") else {
                ok = false
                continue
            }
            if let e = AnnotationTemplate.check(s) {
                r.fail(n, p, "annotation \(name) is not a valid template: \(e)")
                ok = false
                continue
            }
            out[name] = s
        }
        return ok ? out : nil
    }
}

/// An annotation or payload template: Mustache (https://mustache.github.io), rendered as
/// plain text (`{{x}}` does not escape HTML).
public struct AnnotationTemplate: Sendable {
    let template: MustacheTemplate

    public init(_ text: String) throws {
        template = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + text)
    }

    /// The parse error of `text` as a sentence with its line and column, or nil when it parses.
    public static func check(_ text: String) -> String? {
        do {
            _ = try MustacheTemplate(string: text)
            return nil
        } catch let e as MustacheTemplate.ParserError {
            return "\(e.error) at line \(e.context.lineNumber), column \(e.context.columnNumber): \(e.context.line)"
        } catch {
            return "\(error)"
        }
    }

    /// Renders over `context` (dictionaries of strings, numbers, lists and dictionaries).
    public func render(_ context: [String: Any]) -> String { template.render(context) }
}
