import Testing
import TriplineTesting
@testable import TriplineCore

/// Alerts keep up to two event references and two named numbers inline (`AlertEvidence`,
/// `AlertDetails`) and otherwise arrays; both forms must read and write the same.
@Suite struct AlertFormTests {
    static let names: [AlertDetails.Name] = [.kmh, .distanceM, .count, .value, .baseline, .dwellS, .silentS, .spanS]

    /// A number drawn from the shapes alert details take: whole, fractional, tiny, huge, negative.
    static func number(_ rng: inout SplitMix64) -> Double {
        let r = rng.next()
        switch r % 6 {
        case 0: return Double(r % 1_000_000)
        case 1: return Double(r % 100_000_000) / 1000
        case 2: return Double(bitPattern: (r >> 3) & 0x7FEF_FFFF_FFFF_FFFF)
        case 3: return -Double(r % 10_000_000) / 7
        case 4: return Double(r % 1000) * 1e-9
        default: return Double(r % 1000) * 1e17
        }
    }

    @Test func numbersAreWrittenAsTheirDescription() {
        var rng = SplitMix64(seed: 7)
        var fixed: [Double] = [0.1, 1e15, 1e15 + 0.5, 1e16, 123456789.125, 5e-324, .leastNormalMagnitude, .greatestFiniteMagnitude,
                               -0.5, 0.000001, 0.0000001, 9007199254740993, 1 / 3, 2.5e-5]
        for _ in 0..<50_000 { fixed.append(Self.number(&rng)) }
        var out: [UInt8] = [1, 2, 3]
        for d in fixed where d.isFinite {
            out.removeSubrange(3...)
            JSONText.appendNumber(d, to: &out)
            let expected = d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : d.description
            #expect(Array(out[..<3]) == [1, 2, 3])
            #expect(String(decoding: out[3...], as: UTF8.self) == expected, "\(d)")
        }
    }

    @Test func inlineFormsReadAsTheirArrays() {
        let a = EventRef.assigned(entity: 3, n: 9), b = EventRef.given(4)
        #expect(AlertEvidence.none.array.isEmpty && AlertEvidence.none.count == 0)
        #expect(AlertEvidence.one(a).array == [a] && AlertEvidence.one(a)[0] == a)
        #expect(AlertEvidence.two(a, b).array == [a, b] && AlertEvidence.two(a, b)[1] == b)
        let many = (0..<150).map { EventRef.assigned(entity: 1, n: UInt32($0)) }
        #expect(AlertEvidence(many).array == many && AlertEvidence(many).count == 150)
        #expect(AlertEvidence(many).prefix(100).array == Array(many.prefix(100)))
        #expect(AlertEvidence([a, b]).array == [a, b] && AlertEvidence([a]).array == [a] && AlertEvidence([]).count == 0)
        for n in Self.names {
            let one = AlertDetails.number(n, 2.5).array
            #expect(one.count == 1 && one[0].0 == n.string && one[0].1 == .number(2.5))
        }
        let two = AlertDetails.numbers(.value, 1, .baseline, -3.25).array
        #expect(two.map(\.0) == ["value", "baseline"] && two.map(\.1) == [.number(1), .number(-3.25)])
        let list: [(String, DetailValue)] = [("members", .strings(["a", "b"])), ("kmh", .null)]
        let kept = AlertDetails(list).array
        #expect(kept.map(\.0) == ["members", "kmh"] && kept.map(\.1) == [.strings(["a", "b"]), .null])
        #expect(AlertDetails([]).count == 0 && AlertDetails.none.array.isEmpty)
    }

    /// The encoder's inline path writes the bytes of its list path, for every detail name.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func inlineAlertsWriteTheLinesOfListAlerts(seed: UInt64) {
        let engine = Engine(zones: MixedStreams.zones, entities: MixedStreams.entities, rules: AllKindsDifferentialTests.rules)
        let e = engine.symbols.entities.intern("truck-1")
        let given = engine.symbols.eventIds.intern("ev\"1")
        var rng = SplitMix64(seed: seed)
        for i in 0..<2000 {
            let n1 = Self.names[Int(rng.next() % 8)], n2 = Self.names[Int(rng.next() % 8)]
            let v1 = Self.number(&rng), v2 = Self.number(&rng)
            let r1 = EventRef.assigned(entity: e, n: UInt32(rng.next() % 1000)), r2 = EventRef.given(given)
            let key: AlertKey = i % 3 == 0 ? .entity(e) : i % 3 == 1 ? .entityZone(e, Int32(rng.next() % UInt64(engine.zones.count))) : AlertKey(pairA: e, pairB: e)
            let rule = Int32(rng.next() % UInt64(engine.rules.count))
            let count = Int(rng.next() % 3)
            let inline: AlertDetails = count == 0 ? .none : count == 1 ? .number(n1, v1) : .numbers(n1, v1, n2, v2)
            let listed = AlertDetails(Array([(n1.string, DetailValue.number(v1)), (n2.string, .number(v2))].prefix(count)))
            let refs: AlertEvidence = i % 2 == 0 ? .two(r1, r2) : .one(r2)
            let x = Alert(rule: rule, key: key, firing: i % 2 == 0, time: Millis(i) * 1000, evidence: refs, details: inline)
            let y = Alert(rule: rule, key: key, firing: i % 2 == 0, time: Millis(i) * 1000, evidence: refs, details: listed)
            #expect(count == 0 || listed.inline < 0)
            var a: [UInt8] = [], b: [UInt8] = []
            AlertEncoder().append(x, engine: engine, to: &a)
            AlertEncoder().append(y, engine: engine, to: &b)
            #expect(a == b)
        }
    }
}
