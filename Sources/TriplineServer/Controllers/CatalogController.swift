import Foundation
import Hummingbird
import TriplineCore
import TriplineStore

/// Rules, zones and entities: create, read, update, delete, versions, rule statistics and
/// backtests, an entity's timeline, export and erasure. Every change goes through the engine
/// host, which stores it and rebuilds the engine from the log between batches.
struct CatalogController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "GET", path: "/v1/rules", roles: read), \.listRules),
        (RouteSpec(method: "POST", path: "/v1/rules", roles: write), \.postRules),
        (RouteSpec(method: "GET", path: "/v1/rules/{id}", roles: read), \.getRule),
        (RouteSpec(method: "PUT", path: "/v1/rules/{id}", roles: write), \.putRule),
        (RouteSpec(method: "DELETE", path: "/v1/rules/{id}", roles: write), \.deleteRule),
        (RouteSpec(method: "GET", path: "/v1/rules/{id}/versions", roles: read), \.ruleVersions),
        (RouteSpec(method: "GET", path: "/v1/rules/{id}/stats", roles: read), \.ruleStats),
        (RouteSpec(method: "POST", path: "/v1/rules/backtest", roles: write, cluster: false), \.backtest),
        (RouteSpec(method: "GET", path: "/v1/zones", roles: read, standby: true), \.listZones),
        (RouteSpec(method: "POST", path: "/v1/zones", roles: write), \.postZones),
        (RouteSpec(method: "GET", path: "/v1/zones/{id}", roles: read, standby: true), \.getZone),
        (RouteSpec(method: "PUT", path: "/v1/zones/{id}", roles: write), \.putZone),
        (RouteSpec(method: "DELETE", path: "/v1/zones/{id}", roles: write), \.deleteZone),
        (RouteSpec(method: "GET", path: "/v1/entities", roles: read, standby: true), \.listEntities),
        (RouteSpec(method: "POST", path: "/v1/entities", roles: write), \.postEntities),
        (RouteSpec(method: "GET", path: "/v1/entities/{id}", roles: read, standby: true), \.getEntity),
        (RouteSpec(method: "PUT", path: "/v1/entities/{id}", roles: write), \.putEntity),
        (RouteSpec(method: "DELETE", path: "/v1/entities/{id}", roles: write, cluster: false), \.deleteEntity),
        (RouteSpec(method: "GET", path: "/v1/entities/{id}/timeline", roles: read, cluster: false), \.timeline),
        (RouteSpec(method: "GET", path: "/v1/entities/{id}/export", roles: write, cluster: false), \.exportEntity),
    ] }
}

extension CatalogController {
    // MARK: - Rules

    func ruleJSON(_ v: RuleVersion, watermark: Millis) -> J {
        var fields: [(String, J)] = [("id", .str(v.rule)), ("version", .int(v.version))]
        if v.deleted {
            fields.append(("status", .str("deleted")))
        } else {
            var status = "active"
            var expires: J = .null
            if case .success(let doc) = JSONDocumentParser.parse(v.json, file: "rule"), let e = doc["expires"]?.stringValue,
               case .success(let t) = EventTime.parseRFC3339(e) {
                expires = .time(t)
                if watermark != .min && t <= watermark { status = "expired" }
            }
            fields += [("status", .str(status)), ("expires", expires)]
        }
        fields += [("created_at", .time(v.createdAt)), ("created_by", .str(v.createdBy))]
        if !v.deleted { fields.append(("rule", .raw(v.json))) }
        return .obj(fields)
    }

    func watermark() async throws -> Millis { try await host.perform { $0.pipeline.watermark } }

    var listRules: Handler {
        { [self] _, _, _ in
            var latest: [String: RuleVersion] = [:]
            for v in try store.ruleVersions(nil) { latest[v.rule] = v }
            let wm = try await watermark()
            let list = latest.values.filter { !$0.deleted }.sorted { $0.rule < $1.rule }.map { ruleJSON($0, watermark: wm) }
            return API.json(.obj([("rules", .arr(list))]))
        }
    }

    var getRule: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            guard let v = try store.ruleVersions(id).last else { throw APIError.notFound("no rule \"\(id)\"") }
            if v.deleted { throw APIError.notFound("rule \"\(id)\" was deleted (version \(v.version)); GET /v1/rules/\(id)/versions lists its history") }
            return API.json(ruleJSON(v, watermark: try await watermark()))
        }
    }

    var ruleVersions: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            let vs = try store.ruleVersions(id)
            if vs.isEmpty { throw APIError.notFound("no rule \"\(id)\"") }
            let wm = try await watermark()
            return API.json(.obj([("id", .str(id)), ("versions", .arr(vs.map { ruleJSON($0, watermark: wm) }))]))
        }
    }

    func saveRules(_ req: Request, pathId: String?, token: TokenRecord?) async throws -> Response {
        // A dry run answers 200 either way: {valid, errors} (a form validating as you type).
        if req.uri.queryParameters.get("dry_run") == "true" {
            do {
                return try await saveRulesChecked(req, pathId: pathId, token: token)
            } catch let e as APIError where e.status == .unprocessableContent || e.status == .badRequest {
                return API.json(.obj([("valid", .bool(false)), ("message", .str(e.message)), ("errors", .arr(e.errors))]))
            } catch let e as ValidationFailure {
                return API.json(.obj([("valid", .bool(false)), ("message", .str("\(e.errors.count) problem(s)")), ("errors", .arr(e.errors.map { J.error($0) }))]))
            }
        }
        return try await saveRulesChecked(req, pathId: pathId, token: token)
    }

    func saveRulesChecked(_ req: Request, pathId: String?, token: TokenRecord?) async throws -> Response {
        let bytes = try await body(req)
        let doc = try Submissions.parse(bytes, contentType: req.headers[.contentType], file: "request").get()
        var rules = try Submissions.rules(doc, file: "request", pathId: pathId, sensitive: settings.options.sensitive).get()
        let author = who(token)
        let now = now()
        // Every rule expires: 90 days unless it says otherwise, never beyond the maximum.
        var problems: [TriplineError] = []
        var defaulted = Set<String>()
        for i in rules.indices {
            if let e = rules[i].0.expires {
                if e > now + settings.ruleMaxLifetime {
                    problems.append(TriplineError(.invalidValue, "rule \"\(rules[i].0.id)\": expires \(EventTime.format(e)) is beyond the longest lifetime this server allows (\(DurationText.format(settings.ruleMaxLifetime)) from now, \(EventTime.format(now + settings.ruleMaxLifetime))); choose an earlier date and renew the rule when it runs out",
                                                  at: SourceLocation(file: "request", pointer: (rules.count > 1 || doc["rules"] != nil ? "/rules/\(i)" : "") + "/expires")))
                }
            } else {
                let e = now + settings.ruleDefaultLifetime
                rules[i].0.expires = e
                rules[i].1 = String(rules[i].1.dropLast()) + #","expires":"# + JSONText.quoted(EventTime.format(e)) + "}"
                defaulted.insert(rules[i].0.id)
            }
        }
        if !problems.isEmpty { throw APIError.invalid(ValidationFailure(problems), what: "rules") }
        if req.uri.queryParameters.get("dry_run") == "true" {
            return API.json(.obj([("valid", .bool(true)), ("rules", .arr(rules.map { .obj([("id", .str($0.0.id)), ("rule", .raw($0.1))]) }))]))
        }
        let submitted = rules
        let defaultedIds = defaulted
        let results = try await host.changeCatalog { [audit] store, _ -> [J] in
            var out: [J] = []
            var versions: [RuleVersion] = []
            for (rule, json) in submitted {
                let last = try store.ruleVersions(rule.id).last
                // The same text again (with the defaulted expiry) is no change.
                let same = last.map { l in
                    l.json == json || (defaultedIds.contains(rule.id) && (Self.expires(l.json) ?? .min) > now && Self.withoutExpires(l.json) == Self.withoutExpires(json))
                } ?? false
                if let last, !last.deleted, same {
                    out.append(.obj([("id", .str(rule.id)), ("version", .int(last.version)), ("changed", .bool(false))]))
                    continue
                }
                let v = RuleVersion(rule: rule.id, version: (last?.version ?? 0) + 1, json: json, deleted: false, createdAt: now, createdBy: author)
                versions.append(v)
                out.append(.obj([("id", .str(rule.id)), ("version", .int(v.version)), ("changed", .bool(true))]))
            }
            try store.appendRuleVersions(versions)
            for v in versions {
                try audit.record(actor: author, action: v.version == 1 ? "rule.create" : "rule.update", target: v.rule,
                                 detail: .obj([("version", .int(v.version)), ("rule", .raw(v.json))]))
            }
            return out
        }
        return API.json(.obj([("rules", .arr(results))]))
    }

    static func expires(_ json: String) -> Millis? {
        guard case .success(let d) = JSONDocumentParser.parse(json, file: "rule"), let e = d["expires"]?.stringValue,
              case .success(let t) = EventTime.parseRFC3339(e) else { return nil }
        return t
    }

    static func withoutExpires(_ json: String) -> String {
        guard case .success(let d) = JSONDocumentParser.parse(json, file: "rule"), case .object(let m) = d.value else { return json }
        return DocJSON.encode(DocNode(.object(m.filter { $0.key != "expires" }), line: d.line, column: d.column))
    }

    var postRules: Handler { { [self] req, _, tok in try await saveRules(req, pathId: nil, token: tok) } }
    var putRule: Handler { { [self] req, ctx, tok in try await saveRules(req, pathId: try param(ctx), token: tok) } }

    var deleteRule: Handler {
        { [self] _, ctx, tok in
            let id = try param(ctx)
            let author = who(tok)
            let now = now()
            let found = try await host.changeCatalog { [audit] store, _ -> Bool in
                guard let last = try store.ruleVersions(id).last, !last.deleted else { return false }
                try store.appendRuleVersions([RuleVersion(rule: id, version: last.version + 1, json: "", deleted: true, createdAt: now, createdBy: author)])
                try audit.record(actor: author, action: "rule.delete", target: id, detail: .obj([("version", .int(last.version + 1))]))
                return true
            }
            if !found { throw APIError.notFound("no rule \"\(id)\"") }
            return Response(status: .noContent)
        }
    }

    var ruleStats: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            guard try store.ruleVersions(id).last != nil else { throw APIError.notFound("no rule \"\(id)\"") }
            let st = try store.ruleStats(id)
            let judged = st.useful + st.falsePositive
            let median: J = st.firstFeedbackDelays.isEmpty ? .null : .num(Double(st.firstFeedbackDelays[st.firstFeedbackDelays.count / 2]) / 1000)
            return API.json(.obj([
                ("rule", .str(id)), ("firings", .int(st.firing)), ("resolutions", .int(st.resolved)),
                ("feedback", .obj([("useful", .int(st.useful)), ("false_positive", .int(st.falsePositive))])),
                ("precision", judged == 0 ? .null : .num(Double(st.useful) / Double(judged))),
                ("median_seconds_to_first_feedback", median),
            ]))
        }
    }

    /// Evaluates a draft rule over stored history (or uploaded events) without enabling it,
    /// and compares with the current version of the rule it would replace.
    var backtest: Handler {
        { [self] req, _, tok in
            let doc = try await jsonBody(req)
            guard let ruleNode = doc["rule"] else { throw APIError.badRequest("send {\"rule\": <rule object or YAML text>, \"last\": \"24h\" | \"since\": T, \"until\": T, \"events\": \"<NDJSON>\"}") }
            var node = ruleNode
            if let text = ruleNode.stringValue {
                node = try Submissions.parse(Array(text.utf8), contentType: "application/yaml", file: "rule").get()
            }
            let draft = try Submissions.rules(node, file: "rule", pathId: nil, sensitive: settings.options.sensitive).get()
            guard draft.count == 1 else { throw APIError.badRequest("backtest one rule at a time") }
            let rule = draft[0].0
            let (catalog, watermark) = try await host.perform { s in (s.catalog, s.pipeline.watermark) }
            var since = try timeField(doc, "since")
            if let last = doc["last"]?.stringValue {
                guard case .success(let ms) = DurationText.parse(last) else { throw APIError.badRequest("/last must be a duration such as 24h, at most 36525d") }
                since = watermark == .min ? nil : watermark - ms
            }
            let until = try timeField(doc, "until")
            var current: Rule?
            var currentVersion: Int?
            if let v = try store.ruleVersions(rule.id).last, !v.deleted, case .success(let cd) = JSONDocumentParser.parse(v.json, file: "rule") {
                var r = DocReader(file: "rule")
                current = RuleCodec.decodeRule(cd, "", &r, settings.options.sensitive)
                currentVersion = v.version
            }
            let uploaded = doc["events"]?.stringValue
            let store = self.store
            let sensitive = settings.options.sensitive
            let lateness = settings.options.allowedLateness
            let dedupWindow = settings.options.dedupWindow
            let from = since, currentRule = current
            // Run beside the engine, on the events as they were stored (or uploaded).
            let result = try await Task.detached { () throws -> (Int, [String], [String]?) in
                func run(_ r: Rule) throws -> (Int, [String]) {
                    let pipeline = Pipeline(zones: catalog.zones, entities: catalog.entities, rules: [r],
                                            options: PipelineOptions(allowedLateness: lateness, dedupWindow: dedupWindow, sensitive: sensitive))
                    var n = 0
                    func take(_ ev: Event) {
                        if let from, ev.time < from { return }
                        if let until, ev.time > until { return }
                        pipeline.ingest(ev)
                        n += 1
                    }
                    if let uploaded {
                        // Uploaded NDJSON: every line must be an event (records and blank lines aside).
                        var k = 0
                        for l in uploaded.split(separator: "\n", omittingEmptySubsequences: false) {
                            k += 1
                            var s = String(l)
                            try s.withUTF8 { line in
                                if line.isEmpty || LogRecord.isRecord(line) || line.allSatisfy({ $0 == 32 }) { return }
                                switch pipeline.decode(line, number: k) {
                                case .success(let ev): take(ev)
                                case .failure(let e): throw ValidationFailure(e)
                                }
                            }
                        }
                    } else {
                        try store.forEachLogBatch { b in
                            b.forEachLine { line, seq in
                                switch pipeline.read(logLine: line, number: Int(seq)) {
                                case .event(let ev): take(ev)
                                case .advance(let t):
                                    // A logged watermark advance (operator or idle advance): the
                                    // live engine's timers fired there, so the backtest's fire there too.
                                    if let from, t < from { return }
                                    pipeline.advance(until: until.map { min($0, t) } ?? t)
                                case .skip: break
                                }
                            }
                        }
                    }
                    pipeline.finish(until: until)
                    var alerts: [NamedAlert] = []
                    pipeline.drainAlerts(into: &alerts)
                    return (n, alerts.map(\.line))
                }
                let (n, d) = try run(rule)
                let c = try currentRule.map { try run($0).1 }
                return (n, d, c)
            }.value
            let (scanned, drafted, currentAlerts) = result
            var fields: [(String, J)] = [
                ("rule", .str(rule.id)), ("events_scanned", .int(scanned)),
                ("since", since.map { .time($0) } ?? .null), ("until", until.map { .time($0) } ?? .null),
                ("count", .int(drafted.count)), ("alerts", .arr(drafted.prefix(1000).map { .raw($0) })),
            ]
            if let currentAlerts {
                let a = Set(drafted), b = Set(currentAlerts)
                fields.append(("current", .obj([("version", .int(currentVersion!)), ("count", .int(currentAlerts.count))])))
                fields.append(("diff", .obj([
                    ("added", .arr(drafted.filter { !b.contains($0) }.prefix(200).map { .raw($0) })),
                    ("removed", .arr(currentAlerts.filter { !a.contains($0) }.prefix(200).map { .raw($0) })),
                    ("unchanged", .int(drafted.filter { b.contains($0) }.count)),
                ])))
            } else {
                fields.append(("current", .null))
            }
            try audit.record(actor: who(tok), action: "rule.backtest", target: rule.id,
                             detail: .obj([("events", .int(scanned)), ("alerts", .int(drafted.count)), ("uploaded", .bool(uploaded != nil))]))
            return API.json(.obj(fields))
        }
    }

    // MARK: - Zones

    var listZones: Handler {
        { [self] _, _, _ in
            let items = try store.catalog(.zones)
            return API.json(.obj([("type", .str("FeatureCollection")), ("features", .arr(items.map { .raw($0.json) }))]))
        }
    }

    var getZone: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            guard let z = try store.catalogItem(.zones, id: id) else { throw APIError.notFound("no zone \"\(id)\"") }
            // The zone's version, the one alerts of its edits name as "zone_version" (a zone
            // stored before versions were kept is at 1).
            let version = Int(try store.meta("zone.version." + id) ?? "") ?? 1
            var r = API.json(.raw(z.json))
            r.headers[.eTag] = "\"\(version)\""
            return r
        }
    }

    func saveZones(_ req: Request, pathId: String?, token: TokenRecord?) async throws -> Response {
        let bytes = try await body(req)
        let doc = try Submissions.parse(bytes, contentType: "application/json", file: "request").get()
        let zones = try Submissions.zones(doc, file: "request", pathId: pathId, sensitive: settings.options.sensitive).get()
        let now = now()
        let author = who(token)
        try await host.changeCatalog { [audit] store, _ in
            try store.putCatalog(.zones, zones.map { CatalogItem(id: $0.0.id, json: $0.1, updatedAt: now) })
            try audit.record(actor: author, action: "zone.put", target: zones.count == 1 ? zones[0].0.id : "zones",
                             detail: .obj([("zones", .arr(zones.map { .str($0.0.id) }))]))
        }
        return API.json(.obj([("zones", .arr(zones.map { .str($0.0.id) }))]))
    }

    var postZones: Handler { { [self] req, _, tok in try await saveZones(req, pathId: nil, token: tok) } }
    var putZone: Handler { { [self] req, ctx, tok in try await saveZones(req, pathId: try param(ctx), token: tok) } }

    var deleteZone: Handler {
        { [self] _, ctx, tok in
            let id = try param(ctx)
            let author = who(tok)
            let found = try await host.changeCatalog { [audit] store, _ in
                let f = try store.deleteCatalog(.zones, id: id)
                if f { try audit.record(actor: author, action: "zone.delete", target: id) }
                return f
            }
            if !found { throw APIError.notFound("no zone \"\(id)\"") }
            return Response(status: .noContent)
        }
    }

    // MARK: - Entities

    var listEntities: Handler {
        { [self] req, _, _ in
            let limit = max(1, try intParam(req, "limit", default: 1000, max: 100_000))
            let after = req.uri.queryParameters.get("after") ?? ""
            let items = try store.catalog(.entities).filter { $0.id > after }.prefix(limit)
            let next: J = items.count == limit ? .str(items.last!.id) : .null
            return API.json(.obj([("entities", .arr(items.map { .raw($0.json) })), ("next", next)]))
        }
    }

    var getEntity: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            guard let e = try store.catalogItem(.entities, id: id) else { throw APIError.notFound("no registered entity \"\(id)\"") }
            return API.json(.raw(e.json))
        }
    }

    func saveEntities(_ req: Request, pathId: String?, token: TokenRecord?) async throws -> Response {
        let bytes = try await body(req)
        let list = try Submissions.entities(bytes, file: "request", pathId: pathId, sensitive: settings.options.sensitive).get()
        let now = now()
        let author = who(token)
        try await host.changeCatalog { [audit] store, _ in
            try store.putCatalog(.entities, list.map { CatalogItem(id: $0.0.id, json: $0.1, updatedAt: now) })
            try audit.record(actor: author, action: "entity.put", target: list.count == 1 ? audit.pseudonym(list[0].0.id) : "entities",
                             detail: .obj([("count", .int(list.count)), ("entities", .arr(list.map { .str(audit.pseudonym($0.0.id)) }))]))
        }
        return API.json(.obj([("entities", .int(list.count))]))
    }

    var postEntities: Handler { { [self] req, _, tok in try await saveEntities(req, pathId: nil, token: tok) } }
    var putEntity: Handler { { [self] req, ctx, tok in try await saveEntities(req, pathId: try param(ctx), token: tok) } }

    var deleteEntity: Handler {
        { [self] req, ctx, tok in
            let id = try param(ctx)
            if req.uri.queryParameters.get("erase") == "true" { return try await erase(id, token: tok) }
            let author = who(tok)
            let found = try await host.changeCatalog { [audit] store, _ in
                let f = try store.deleteCatalog(.entities, id: id)
                if f { try audit.record(actor: author, action: "entity.delete", target: audit.pseudonym(id)) }
                return f
            }
            if !found { throw APIError.notFound("no registered entity \"\(id)\"") }
            return Response(status: .noContent)
        }
    }

    var timeline: Handler {
        { [self] req, ctx, tok in
            let id = try param(ctx)
            let from = try timeParam(req, "from"), to = try timeParam(req, "to")
            let limit = max(1, try intParam(req, "limit", default: 1000, max: 10_000))
            let t = try await host.timeline(entity: id, from: from, to: to, limit: limit)
            var q = AlertQuery()
            q.entity = id
            q.from = from
            q.to = to
            q.limit = limit
            let alerts = try store.alerts(q)
            try audit.record(actor: who(tok), action: "entity.timeline", target: audit.pseudonym(id),
                             detail: .obj([("from", from.map { .time($0) } ?? .null), ("to", to.map { .time($0) } ?? .null),
                                           ("events", .int(t.events.count)), ("alerts", .int(alerts.count))]))
            return API.json(.obj([
                ("entity", .str(id)), ("from", from.map { .time($0) } ?? .null), ("to", to.map { .time($0) } ?? .null),
                ("events", .arr(t.events.map { .obj([("seq", .int($0.0)), ("event", .raw($0.1))]) })),
                ("events_truncated", .bool(t.truncated)),
                ("alerts", .arr(alerts.map(\.json))),
            ]))
        }
    }
}

// MARK: - Export and erasure
extension CatalogController {
    /// Everything stored about an entity: registration, events, alerts, their feedback, and
    /// the audit records that name its pseudonym.
    var exportEntity: Handler {
        { [self] _, ctx, tok in
            let id = try param(ctx)
            let pseudo = audit.pseudonym(id)
            let item = try store.catalogItem(.entities, id: id)
            let t = try await host.timeline(entity: id, from: nil, to: nil, limit: 10_000_000)
            var q = AlertQuery()
            q.entity = id
            q.limit = 10_000_000
            let alerts = try store.alerts(q)
            var feedback: [J] = []
            for a in alerts { feedback += try store.feedback(alertId: a.id).map(\.json) }
            var refs: [J] = []
            try store.forEachAudit { r in if r.target == pseudo || r.detail.contains(pseudo) { refs.append(r.json) } }
            if item == nil && t.events.isEmpty && alerts.isEmpty { throw APIError.notFound("nothing is stored about \"\(id)\"") }
            try audit.record(actor: who(tok), action: "entity.export", target: pseudo,
                             detail: .obj([("events", .int(t.events.count)), ("alerts", .int(alerts.count)), ("audit_records", .int(refs.count))]))
            return API.json(.obj([
                ("entity", .str(id)), ("pseudonym", .str(pseudo)), ("registration", item.map { .raw($0.json) } ?? .null),
                ("events", .arr(t.events.map { .obj([("seq", .int($0.0)), ("event", .raw($0.1))]) })),
                ("alerts", .arr(alerts.map(\.json))), ("feedback", .arr(feedback)), ("audit_references", .arr(refs)),
            ]))
        }
    }

    /// `DELETE /v1/entities/{id}?erase=true`: removes the entity's events and registration,
    /// replaces its id in alerts by its pseudonym, records the erasure, and rebuilds.
    func erase(_ id: String, token: TokenRecord?) async throws -> Response {
        let pseudo = audit.pseudonym(id)
        let author = who(token)
        let result: (Int, Int)? = try await host.changeCatalog { [audit, host] store, s in
            var seqs: [Int64] = []
            if let e = s.pipeline.entityNumber(id), Int(e) < s.timeline.count { seqs = s.timeline[Int(e)].map(\.seq) }
            var q = AlertQuery()
            q.entity = id
            q.limit = 1
            let registered = try store.catalogItem(.entities, id: id) != nil
            let hasAlerts = !(try store.alerts(q)).isEmpty
            if seqs.isEmpty && !registered && !hasAlerts { return nil }
            let r = try host.notifyGate.erasing { try store.eraseEntity(id: id, pseudonym: pseudo, seqs: seqs) }
            try audit.record(actor: author, action: "entity.erase", target: pseudo,
                             detail: .obj([("events", .int(r.0)), ("alerts_pseudonymised", .int(r.1)), ("registration", .bool(registered))]))
            return r
        }
        guard let result else { throw APIError.notFound("nothing is stored about \"\(id)\"") }
        try store.compact()
        return API.json(.obj([("erased_events", .int(result.0)), ("alerts_pseudonymised", .int(result.1)), ("pseudonym", .str(pseudo))]))
    }
}
