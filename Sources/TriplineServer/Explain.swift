import Foundation
import Hummingbird
import TriplineCore
import TriplineStore

public struct RuleStats: Sendable {
    public var firing = 0
    public var resolved = 0
    public var useful = 0
    public var falsePositive = 0
    /// Per alert with feedback: first feedback time minus alert creation time.
    public var firstFeedbackDelays: [Millis] = []
}

extension AlertStore {
    public func ruleStats(_ rule: String) throws -> RuleStats {
        var q = AlertQuery()
        q.rule = rule
        q.limit = Int.max
        var st = RuleStats()
        var created: [Int64: Millis] = [:]
        for a in try alerts(q) {
            if a.firing { st.firing += 1 } else { st.resolved += 1 }
            created[a.id] = a.createdAt
        }
        var first: [Int64: Millis] = [:]
        for f in try feedback(alertId: nil) where created[f.alertId] != nil {
            if f.verdict == "useful" { st.useful += 1 } else { st.falsePositive += 1 }
            first[f.alertId] = min(first[f.alertId] ?? .max, f.at)
        }
        st.firstFeedbackDelays = first.map { $0.value - created[$0.key]! }.sorted()
        return st
    }
}

extension EngineHost {
    /// Finds the logged lines of evidence ids: assigned ids (`<entity>#<n>`) through the
    /// timeline index, given ids by reading the candidate entities' events.
    public func resolveEvidence(_ ids: [String], candidates: [String]) async throws -> [String: (Int64, String)] {
        let plan: ([String: Int64], [Int64]) = try await perform { s in
            var direct: [String: Int64] = [:]
            var scan: [Int64] = []
            for id in ids {
                if let hash = id.lastIndex(of: "#"), let n = Int(id[id.index(after: hash)...]), n >= 1,
                   let e = s.pipeline.entityNumber(String(id[..<hash])), Int(e) < s.timeline.count, n <= s.timeline[Int(e)].count {
                    direct[id] = s.timeline[Int(e)][n - 1].seq
                }
            }
            if direct.count < ids.count {
                for c in candidates {
                    if let e = s.pipeline.entityNumber(c), Int(e) < s.timeline.count { scan += s.timeline[Int(e)].map(\.seq) }
                }
            }
            return (direct, scan)
        }
        let lines = try store.logLines(Array(plan.0.values) + plan.1)
        var out: [String: (Int64, String)] = [:]
        for (id, seq) in plan.0 { if let l = lines[seq] { out[id] = (seq, l) } }
        let wanted = Set(ids).subtracting(out.keys)
        if !wanted.isEmpty {
            for seq in plan.1 {
                guard let l = lines[seq], case .success(let doc) = JSONDocumentParser.parse(l, file: "log"),
                      let given = doc["id"]?.stringValue, wanted.contains(given) else { continue }
                out[given] = (seq, l)
            }
        }
        return out
    }
}
