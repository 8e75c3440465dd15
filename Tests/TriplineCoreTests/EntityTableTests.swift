import Testing
@testable import TriplineCore
import TriplineTesting

/// `EntityTable` against a plain dictionary, over id streams that keep it a hash table and
/// ones that turn it into an array, with look-ups and in-place changes between inserts.
@Suite struct EntityTableTests {
    struct V: EntityTableValue, Equatable {
        var a: Int64
        var b: Int32
        static var vacant: V { V(a: -1, b: 0) }
        var isVacant: Bool { a == -1 }
    }

    /// Runs `steps` random operations: inserts and exchanges (half of them of an id from
    /// `nextId`, half of one already held), in-place changes and look-ups (half of a held id,
    /// half of any id up to past the largest). Checks every answer against the reference,
    /// then every held id and every id below 50,000.
    func run(seed: UInt64, steps: Int, nextId: (inout SplitMix64) -> Int32) -> EntityTable<V> {
        var rng = SplitMix64(seed: seed)
        var table = EntityTable<V>()
        var reference: [Int32: V] = [:]
        var seen: [Int32] = []
        var limit: Int32 = 0
        for _ in 0..<steps {
            let op = rng.next() % 10
            let held = rng.next() & 1 == 0 && !seen.isEmpty
            let id = held ? seen[Int(rng.next() % UInt64(seen.count))]
                : op < 5 ? nextId(&rng) : Int32(rng.next() % UInt64(limit + 64))
            switch op {
            case 0..<5:
                let v = V(a: Int64(rng.next() % 1_000_000), b: Int32(truncatingIfNeeded: rng.next()))
                if reference[id] == nil { seen.append(id) }
                if rng.next() & 1 == 0 {
                    table.insert(id, v)
                } else {
                    let old = table.exchange(id, v)
                    #expect(old == reference[id], "exchange \(id)")
                }
                reference[id] = v
                limit = max(limit, id + 1)
            case 5..<7:
                let delta = Int32(rng.next() % 7)
                let got = table.modify(id) { $0.b &+= delta; return $0.b }
                if reference[id] != nil { reference[id]!.b &+= delta }
                #expect(got == reference[id]?.b, "modify \(id)")
            default:
                #expect(table[id] == reference[id], "lookup \(id)")
                #expect(table.contains(id) == (reference[id] != nil))
            }
            table.prefetch(id)
        }
        #expect(table.count == reference.count)
        for id in reference.keys { #expect(table[id] == reference[id], "final \(id)") }
        for id in 0..<min(limit + 100, 50_000) { #expect(table[id] == reference[id], "final \(id)") }
        return table
    }

    /// Every entity id in turn, as the engine assigns them: the table turns into an array
    /// that costs about the value's stride per id (growing by an eighth), well under the hash
    /// table's 24-byte slots at 2/5 to 4/5 full.
    @Test func consecutiveIdsBecomeAnArray() {
        for seed in UInt64(1)...4 {
            var next: Int32 = 0
            let t = run(seed: seed, steps: 20_000) { _ in defer { next += 1 }; return next }
            let dense = t.isDense, bytes = t.memoryBytes, count = t.count
            #expect(dense, "seed \(seed)")
            #expect(count > 4_000)
            #expect(bytes <= (count * 9 / 8 + 64) * MemoryLayout<V>.stride, "seed \(seed)")
        }
    }

    /// Every other id: the array takes at most 3/4 of the doubled hash table, so it is taken
    /// when the table is next full.
    @Test func halfTheIdsBecomeAnArray() {
        let t = run(seed: 9, steps: 40_000) { rng in Int32(rng.next() % 4_000) * 2 }
        let dense = t.isDense, count = t.count
        #expect(count > 3_277)
        #expect(dense)
    }

    /// A few ids out of a large range: it stays a hash table.
    @Test func sparseIdsStayAHashTable() {
        for seed in UInt64(1)...4 {
            let t = run(seed: seed, steps: 20_000) { rng in Int32(rng.next() % 5_000_000) }
            let dense = t.isDense
            #expect(!dense, "seed \(seed)")
        }
    }

    /// Spread-out ids first, then the low ids fill in: it turns into an array part way (when
    /// 4,096 slots are full), keeping the values it held.
    @Test func switchesPartWayKeepingEveryValue() {
        var step = 0
        let t = run(seed: 3, steps: 60_000) { rng in
            step += 1
            return step < 1_500 ? Int32(rng.next() % 8_000) : Int32(rng.next() % 6_000)
        }
        let dense = t.isDense, count = t.count
        #expect(count > 3_277)
        #expect(dense)
    }

    /// A threshold's latest reading: 8 bytes in the array; the pattern that marks an absent
    /// entity is not a reading any value becomes (a NaN with that pattern is kept as `.nan`).
    @Test func latestReadingIs8BytesAndNeverVacant() {
        typealias R = ThresholdEvaluator.LatestReading
        #expect(MemoryLayout<R>.stride == 8)
        #expect(R.vacant.isVacant)
        for v in [0.0, -0.0, 1.5, -1e300, .infinity, -.infinity, .nan, Double(bitPattern: R.vacantBits)] {
            #expect(!R(v).isVacant, "\(v.bitPattern)")
        }
        #expect(R(Double(bitPattern: R.vacantBits)).value.isNaN)
        var t = EntityTable<R>()
        #expect(t.exchange(3, R(Double(bitPattern: R.vacantBits))) == nil)
        #expect(t[3]?.value.isNaN == true)
    }

    @Test func proximityRecordIs20BytesInTheArray() {
        #expect(MemoryLayout<ProximityEvaluator.Latest>.stride == 20)
        #expect(ProximityEvaluator.Latest.vacant.isVacant)
    }
}
