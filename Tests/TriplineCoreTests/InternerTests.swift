import Testing
import TriplineTesting
@testable import TriplineCore

/// The interner against a dictionary: the same string always gets the same id while it is
/// held, ids of released strings are reused, and the strings kept by `retain` keep their ids
/// and bytes through the arena's compaction and the table's rebuilds (which hash the arena's
/// bytes again). A compact table (entity names) fills to 4/5, the other kind to 1/2.
@Suite struct InternerTests {
    @Test(arguments: Array(1...8) as [UInt64], [false, true])
    func agreesWithADictionaryThroughReleasesAndReuse(seed: UInt64, compact: Bool) {
        var rng = SplitMix64(seed: seed)
        // Lengths 1 to 50 (the hash reads 8 bytes at a time, then a tail), shared prefixes,
        // multi-byte UTF-8.
        let pool: [String] = (0..<3_000).map { i in
            let n = Int(rng.next() % 41)
            let base = i % 3 == 0 ? "truck-" : (i % 3 == 1 ? "" : "é-")
            return base + String(i, radix: 36) + String(repeating: "x", count: n)
        }
        var interner = Interner(capacity: 4, compact: compact)
        var tableSizes = Set<Int>()
        func loadHolds() -> Bool {
            tableSizes.insert(interner.table.count)
            return compact ? interner.liveCount * 5 <= interner.table.count * 4 : interner.liveCount * 2 <= interner.table.count
        }
        var idOf: [String: Int32] = [:]
        var stringOf: [Int32: String] = [:]
        var released = 0
        for round in 0..<6 {
            for _ in 0..<2_500 {
                let s = pool[Int(rng.next() % UInt64(pool.count))]
                let id = interner.intern(s)
                if let known = idOf[s] {
                    #expect(id == known, "round \(round): \(s)")
                } else {
                    #expect(stringOf[id] == nil, "id \(id) handed out twice")
                    #expect(Int(id) < interner.count)
                    idOf[s] = id
                    stringOf[id] = s
                }
            }
            #expect(interner.liveCount == idOf.count)
            #expect(loadHolds())
            for (s, id) in idOf {
                #expect(interner.lookup(s) == id)
                #expect(interner.string(id) == s)
            }
            // Keep about half.
            var live = [Bool](repeating: false, count: interner.count)
            for (_, id) in idOf where rng.next() % 2 == 0 { live[Int(id)] = true }
            interner.retain(live)
            for (s, id) in idOf where !live[Int(id)] {
                idOf[s] = nil
                stringOf[id] = nil
                released += 1
                #expect(interner.lookup(s) == nil)
            }
            #expect(interner.liveCount == idOf.count)
            #expect(loadHolds())
            for (s, id) in idOf {
                #expect(interner.lookup(s) == id)
                #expect(interner.string(id) == s)
            }
        }
        #expect(released > 1_000)
        // The table grew and was rebuilt smaller by `retain`: more than one size was seen.
        #expect(tableSizes.count > 1)
    }
}
