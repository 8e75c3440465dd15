/// Writes rules back as a JSON rule file `{"rules": [...]}` that `RuleCodec` reads to the
/// same rules (tested as a round trip). Durations are written in the largest exact unit.
public enum RuleEncoder {
    public static func file(_ rules: [Rule]) -> String {
        "{\"rules\":[\n" + rules.map(encode).joined(separator: ",\n") + "\n]}\n"
    }

    public static func encode(_ r: Rule) -> String {
        var f: [(String, String)] = [("id", str(r.id)), ("kind", str(r.kind.rawValue)), ("purpose", str(r.purpose)),
                                     ("owner", str(r.owner)), ("severity", str(r.severity.rawValue)), ("match", selector(r.match, classKey: "kind"))]
        if let z = r.zones { f.append(("zones", selector(z, classKey: "category"))) }
        if let j = r.jitter {
            switch j.enterAfter {
            case .fixes(let k): if k != 1 { f.append(("enter_after", String(k))) }
            case .duration(let d): f.append(("enter_after", duration(d)))
            }
            if j.exitMarginM != 0 { f.append(("exit_margin_m", num(j.exitMarginM))) }
        }
        if r.cooldown > 0 { f.append(("cooldown", duration(r.cooldown))) }
        if let e = r.expires { f.append(("expires", str(EventTime.format(e)))) }
        if !r.labels.isEmpty { f.append(("labels", obj(r.labels.sorted { $0.key < $1.key }.map { ($0.key, str($0.value)) }))) }
        if !r.annotations.isEmpty { f.append(("annotations", obj(r.annotations.sorted { $0.key < $1.key }.map { ($0.key, str($0.value)) }))) }
        switch r.parameters {
        case .enter, .exit: break
        case .dwell(let m): f.append(("min", duration(m)))
        case .gathering(let n, let w): f += [("min_count", String(n)), ("window", duration(w))]
        case .proximity(let d, let w, let other):
            f += [("distance_m", num(d)), ("within", duration(w))]
            if let other { f.append(("other", selector(other, classKey: "kind"))) }
        case .frequency(let n, let w, let e, let by):
            f += [("count", String(n)), ("window", duration(w)), ("event", filter(e))]
            if let by { f.append(("by", group(by))) }
        case .aggregate(let fn, let of, let w, let e, let bound, let by):
            f += [("fn", str(fn.rawValue)), ("of", field(of)), ("window", duration(w)), ("event", filter(e))]
            switch bound {
            case .above(let v): f.append(("above", num(v)))
            case .below(let v): f.append(("below", num(v)))
            }
            if let by { f.append(("by", group(by))) }
        case .novelty(let n, let w, let h, let cp):
            f += [("count", String(n)), ("window", duration(w)), ("lookback", duration(h))]
            if let cp {
                var c: [(String, String)] = []
                if let p = cp.prefix { c.append(("prefix", list(p))) }
                if let p = cp.notPrefix { c.append(("not_prefix", list(p))) }
                f.append(("counterpart", obj(c)))
            }
        case .threshold(let metric, let c):
            f.append(("metric", str(metric)))
            switch c {
            case .above(let v): f.append(("above", num(v)))
            case .below(let v): f.append(("below", num(v)))
            case .baseline(let w, let fa, let m):
                f.append(("baseline", obj([("window", duration(w)), ("factor", num(fa)), ("min_samples", String(m))])))
            }
        case .sequence(let steps, let within):
            f.append(("steps", "[" + steps.map(step).joined(separator: ",") + "]"))
            if let within { f.append(("within", duration(within))) }
        case .absence(let d, let e):
            f.append(("for", duration(d)))
            if let e { f.append(("event", filter(e))) }
        case .speed(let v): f.append(("max_kmh", num(v)))
        }
        return obj(f)
    }

    static func str(_ s: String) -> String { JSONText.quoted(s) }

    static func step(_ st: SequenceStep) -> String {
        switch st {
        case .enter(let z): return obj([("enter", selector(z, classKey: "category"))])
        case .exit(let z): return obj([("exit", selector(z, classKey: "category"))])
        case .event(let e): return obj([("event", filter(e))])
        case .absent(let inner, let d):
            var f = [("absent", step(inner))]
            if let d { f.append(("for", duration(d))) }
            return obj(f)
        }
    }

    static func group(_ g: GroupBy) -> String {
        switch g {
        case .counterpart: return str("counterpart")
        case .attr(let a): return obj([("attr", str(a))])
        }
    }

    static func field(_ g: AggregateField) -> String {
        switch g {
        case .value: return str("value")
        case .counterpart: return str("counterpart")
        case .attr(let a): return obj([("attr", str(a))])
        }
    }

    static func num(_ d: Double) -> String {
        var out: [UInt8] = []
        JSONText.appendNumber(d, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func list(_ l: [String]) -> String { "[" + l.map(str).joined(separator: ",") + "]" }

    static func obj(_ f: [(String, String)]) -> String { "{" + f.map { str($0.0) + ":" + $0.1 }.joined(separator: ",") + "}" }

    static func duration(_ ms: Millis) -> String {
        for (u, k) in [("d", Millis(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms % k == 0 && ms > 0 {
            return str("\(ms / k)\(u)")
        }
        return str("\(ms)ms")
    }

    static func selector(_ s: Selector, classKey: String) -> String {
        var f: [(String, String)] = []
        if let c = s.classes { f.append((classKey, list(c))) }
        if let t = s.tags { f.append(("tags", obj(t.keys.sorted().map { ($0, list(t[$0]!)) }))) }
        if let i = s.ids { f.append(("ids", list(i))) }
        return obj(f)
    }

    static func filter(_ e: EventFilter) -> String {
        var f: [(String, String)] = [("type", str(e.type))]
        if let m = e.metric { f.append(("metric", str(m))) }
        if !e.attrs.isEmpty {
            f.append(("attrs", obj(e.attrs.keys.sorted().map { k in
                switch e.attrs[k]! {
                case .string(let s): return (k, str(s))
                case .number(let d): return (k, num(d))
                case .bool(let b): return (k, b ? "true" : "false")
                }
            })))
        }
        if let z = e.zones { f.append(("zones", selector(z, classKey: "category"))) }
        return obj(f)
    }
}
