import Foundation
import TriplineCore
import TriplineStore
import TriplineYAML

/// Writes a document tree back as compact JSON (members in document order). Rules, zones and
/// entities are stored in this form, whatever format they arrived in.
public enum DocJSON {
    public static func encode(_ n: DocNode) -> String {
        var out: [UInt8] = []
        append(n, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ n: DocNode, to out: inout [UInt8]) {
        switch n.value {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let d, let isInteger):
            if isInteger, abs(d) < 9e15 { out += Array(String(Int64(d)).utf8) } else { out += Array("\(d)".utf8) }
        case .string(let s): JSONText.appendString(s, to: &out)
        case .array, .pair:
            out.append(91)
            for (i, e) in (n.elements ?? []).enumerated() {
                if i > 0 { out.append(44) }
                append(e, to: &out)
            }
            out.append(93)
        case .object(let m):
            out.append(123)
            for (i, e) in m.enumerated() {
                if i > 0 { out.append(44) }
                JSONText.appendString(e.key, to: &out)
                out.append(58)
                append(e.node, to: &out)
            }
            out.append(125)
        }
    }
}

/// A request body that failed validation: every problem with its location.
public struct ValidationFailure: Error, Sendable {
    public var errors: [TriplineError]
    public init(_ errors: [TriplineError]) { self.errors = errors }
    public init(_ e: TriplineError) { errors = [e] }
}

/// Decoding of what clients submit (one object or a collection) into validated items plus
/// the canonical JSON each is stored as.
public enum Submissions {
    /// Parses a body as JSON, or as YAML when the content type says so or it does not look like JSON.
    public static func parse(_ body: [UInt8], contentType: String?, file: String) -> Result<DocNode, ValidationFailure> {
        let text: String
        switch UTF8Text.decode(body, file: file) {
        case .success(let t): text = t
        case .failure(let e): return .failure(ValidationFailure(e))
        }
        let ct = (contentType ?? "").lowercased()
        let firstByte = body.first { $0 != 32 && $0 != 10 && $0 != 13 && $0 != 9 }
        if ct.contains("yaml") || (!ct.contains("json") && firstByte != UInt8(ascii: "{") && firstByte != UInt8(ascii: "[")) {
            return YAMLDocument.parse(text, file: file).mapError { ValidationFailure($0.errors) }
        }
        return JSONDocumentParser.parse(text, file: file).mapError { ValidationFailure($0) }
    }

    /// Rules: one rule object, or `{rules: [...]}`. With `pathId`, the body is one rule whose
    /// id must be that one (or absent).
    public static func rules(_ doc: DocNode, file: String, pathId: String?, sensitive: SensitiveTags) -> Result<[(Rule, String)], ValidationFailure> {
        var r = DocReader(file: file)
        var nodes: [(DocNode, String)] = []
        if pathId == nil, let list = doc["rules"], doc.members?.count == 1 {
            guard let items = list.elements else {
                r.fail(list, "/rules", "\"rules\" must be a list of rules, found \(list.typeName)")
                return .failure(ValidationFailure(r.errors))
            }
            nodes = items.enumerated().map { ($1, "/rules/\($0)") }
        } else {
            var node = doc
            if let pathId, case .object(var members) = doc.value {
                if let idNode = doc["id"] {
                    if idNode.stringValue != pathId {
                        r.fail(idNode, "/id", "the rule id in the body (\(DocJSON.encode(idNode))) differs from the id in the path (\"\(pathId)\"); omit it or make them equal")
                        return .failure(ValidationFailure(r.errors))
                    }
                } else {
                    members.insert(.init(key: "id", node: DocNode(.string(pathId), line: doc.line, column: doc.column)), at: 0)
                    node = DocNode(.object(members), line: doc.line, column: doc.column)
                }
            }
            nodes = [(node, "")]
        }
        var out: [(Rule, String)] = []
        var seen: Set<String> = []
        for (n, p) in nodes {
            if let rule = RuleCodec.decodeRule(n, p, &r, sensitive) {
                if !seen.insert(rule.id).inserted {
                    r.fail(n, p + "/id", "duplicate rule id \"\(rule.id)\" in one request", code: .duplicateId)
                }
                out.append((rule, DocJSON.encode(n)))
            }
        }
        if out.isEmpty && r.errors.isEmpty { r.fail(doc, "", "no rule in the request: send one rule object or {\"rules\": [...]}") }
        return r.errors.isEmpty ? .success(out) : .failure(ValidationFailure(r.errors))
    }

    /// Zones: a GeoJSON Feature or FeatureCollection.
    public static func zones(_ doc: DocNode, file: String, pathId: String?, sensitive: SensitiveTags) -> Result<[(Zone, String)], ValidationFailure> {
        var r = DocReader(file: file)
        var nodes: [(DocNode, String)] = []
        if doc["type"]?.stringValue == "FeatureCollection" && pathId == nil {
            guard let list = doc["features"]?.elements else {
                r.fail(doc, "/features", "a FeatureCollection needs \"features\": [...]")
                return .failure(ValidationFailure(r.errors))
            }
            nodes = list.enumerated().map { ($1, "/features/\($0)") }
        } else {
            nodes = [(doc, "")]
        }
        var out: [(Zone, String)] = []
        var seen: Set<String> = []
        for (n, p) in nodes {
            if let z = ZoneCodec.feature(n, p, &r, sensitive) {
                if let pathId, z.id != pathId {
                    r.fail(n, p + "/properties/id", "the zone id in the body (\"\(z.id)\") differs from the id in the path (\"\(pathId)\")")
                }
                if !seen.insert(z.id).inserted { r.fail(n, p + "/properties/id", "duplicate zone id \"\(z.id)\" in one request", code: .duplicateId) }
                out.append((z, DocJSON.encode(n)))
            }
        }
        if out.isEmpty && r.errors.isEmpty { r.fail(doc, "", "no zone in the request: send a GeoJSON Feature or FeatureCollection") }
        return r.errors.isEmpty ? .success(out) : .failure(ValidationFailure(r.errors))
    }

    /// Entities: one object, an array of objects, or NDJSON (one object per line).
    public static func entities(_ body: [UInt8], file: String, pathId: String?, sensitive: SensitiveTags) -> Result<[(EntityInfo, String)], ValidationFailure> {
        var r = DocReader(file: file)
        var out: [(EntityInfo, String)] = []
        var seen: Set<String> = []
        func take(_ n: DocNode, _ p: String) {
            var sub = DocReader(file: file)
            if let e = EntityCodec.entity(n, &sub, sensitive) {
                if let pathId, e.id != pathId {
                    sub.fail(n, p + "/id", "the entity id in the body (\"\(e.id)\") differs from the id in the path (\"\(pathId)\")")
                }
                if !seen.insert(e.id).inserted { sub.fail(n, p + "/id", "duplicate entity id \"\(e.id)\" in one request", code: .duplicateId) }
                if sub.errors.isEmpty { out.append((e, DocJSON.encode(n))) }
            }
            // Pointers of a sub-document are relative: prefix them with its place.
            for var e in sub.errors {
                if var loc = e.location { loc.pointer = p + loc.pointer; e.location = loc }
                r.errors.append(e)
            }
        }
        let first = body.first { $0 != 32 && $0 != 10 && $0 != 13 && $0 != 9 }
        if first == UInt8(ascii: "[") {
            switch body.withUnsafeBufferPointer({ JSONDocumentParser.parse($0, file: file) }) {
            case .failure(let e): return .failure(ValidationFailure(e))
            case .success(let doc):
                for (i, n) in (doc.elements ?? []).enumerated() { take(n, "/\(i)") }
            }
        } else {
            var lineNo = 0
            var start = 0
            body.withUnsafeBufferPointer { p in
                while start <= p.count {
                    var end = start
                    while end < p.count && p[end] != 10 { end += 1 }
                    lineNo += 1
                    var lineEnd = end
                    if lineEnd > start && p[lineEnd - 1] == 13 { lineEnd -= 1 }
                    let line = UnsafeBufferPointer(rebasing: p[start..<lineEnd])
                    start = end + 1
                    if line.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
                    switch JSONDocumentParser.parse(line, file: file, lineOffset: lineNo - 1) {
                    case .failure(let e): r.errors.append(e)
                    case .success(let doc): take(doc, "")
                    }
                }
            }
        }
        if out.isEmpty && r.errors.isEmpty {
            return .failure(ValidationFailure(TriplineError(.missingField, "no entity in the request: send {\"id\": ..., \"kind\": ..., \"tags\": {...}}, an array of them, or NDJSON",
                                                            at: SourceLocation(file: file))))
        }
        return r.errors.isEmpty ? .success(out) : .failure(ValidationFailure(r.errors))
    }
}

/// What the engine runs on: current zones, entities and rule versions.
public struct Catalog: Sendable {
    public var zones: [Zone] = []
    public var entities: [EntityInfo] = []
    public var rules: [Rule] = []
    public var versions: [Int] = []
    public var ruleJSON: [String] = []
    /// Each loaded zone's stored text by id (what tells an edited zone from an unchanged one).
    public var zoneJSON: [String: String] = [:]

    /// Loads the catalog from the store. Stored items were validated when written; one that
    /// no longer passes (say, after the sensitive list was extended) is left out and reported.
    public static func load(_ store: any TriplineStore, sensitive: SensitiveTags) throws -> (Catalog, [String]) {
        var c = Catalog()
        var problems: [String] = []
        for item in try store.catalog(.zones) {
            switch JSONDocumentParser.parse(item.json, file: "zone \(item.id)") {
            case .failure(let e): problems.append(e.description)
            case .success(let doc):
                var r = DocReader(file: "zone \(item.id)")
                if let z = ZoneCodec.feature(doc, "", &r, sensitive) {
                    c.zones.append(z)
                    c.zoneJSON[z.id] = item.json
                } else { problems += r.errors.map(\.description) }
            }
        }
        for item in try store.catalog(.entities) {
            switch JSONDocumentParser.parse(item.json, file: "entity \(item.id)") {
            case .failure(let e): problems.append(e.description)
            case .success(let doc):
                var r = DocReader(file: "entity \(item.id)")
                if let e = EntityCodec.entity(doc, &r, sensitive) { c.entities.append(e) } else { problems += r.errors.map(\.description) }
            }
        }
        var latest: [String: RuleVersion] = [:]
        for v in try store.ruleVersions(nil) { latest[v.rule] = v }
        for v in latest.values.sorted(by: { $0.rule < $1.rule }) where !v.deleted {
            switch JSONDocumentParser.parse(v.json, file: "rule \(v.rule) v\(v.version)") {
            case .failure(let e): problems.append(e.description)
            case .success(let doc):
                var r = DocReader(file: "rule \(v.rule) v\(v.version)")
                if let rule = RuleCodec.decodeRule(doc, "", &r, sensitive) {
                    c.rules.append(rule)
                    c.versions.append(v.version)
                    c.ruleJSON.append(v.json)
                } else {
                    problems += r.errors.map(\.description)
                }
            }
        }
        return (c, problems)
    }
}
