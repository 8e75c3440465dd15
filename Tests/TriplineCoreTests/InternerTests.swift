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

    /// Records keep their length in one to three bytes: strings at each boundary of that
    /// spelling, and the empty one, keep their ids and bytes through compaction and reuse,
    /// and a string one byte shorter or longer than a held one is not taken for it.
    @Test func lengthsAtTheBoundariesOfTheirSpelling() {
        let lengths = [0, 1, 7, 8, 127, 128, 129, 16_383, 16_384, 16_385, 70_000]
        func text(_ n: Int, _ c: Character) -> String { String(repeating: c, count: n) }
        var interner = Interner(capacity: 4)
        var ids: [String: Int32] = [:]
        for n in lengths { ids[text(n, "a")] = interner.intern(text(n, "a")) }
        for n in lengths { ids[text(n, "b")] = interner.intern(text(n, "b")) }
        #expect(ids.count == 2 * lengths.count - 1)   // one empty string
        #expect(Set(ids.values).count == ids.count)
        for (s, id) in ids {
            #expect(interner.lookup(s) == id)
            #expect(interner.string(id) == s)
        }
        // A record is compared by length and bytes (a tag of the hash, matched first, rarely
        // lets another string through, so the record is asked directly here).
        for (str, id) in ids {
            let offset = Int(interner.starts[Int(id)])
            var exact = Array(str.utf8)
            #expect(exact.withUnsafeBufferPointer { interner.match(offset, $0) } == id)
            if !exact.isEmpty {
                let shorter = Array(exact.dropLast())
                #expect(shorter.withUnsafeBufferPointer { interner.match(offset, $0) } == nil)
            }
            exact.append(exact.last ?? 97)
            #expect(exact.withUnsafeBufferPointer { interner.match(offset, $0) } == nil)
        }
        for n in lengths where n > 0 {
            if !lengths.contains(n - 1) { #expect(interner.lookup(text(n - 1, "a")) == nil) }
            if !lengths.contains(n + 1) { #expect(interner.lookup(text(n + 1, "a")) == nil) }
        }
        // Release the "a" strings, compact, and reuse their ids for "c" strings.
        var live = [Bool](repeating: false, count: interner.count)
        for (s, id) in ids where s.first != "a" && !s.isEmpty { live[Int(id)] = true }
        live[Int(ids[""]!)] = true
        interner.retain(live)
        for n in lengths where n > 0 { #expect(interner.lookup(text(n, "a")) == nil) }
        for (s, id) in ids where s.first != "a" {
            #expect(interner.lookup(s) == id)
            #expect(interner.string(id) == s)
        }
        let released = Set(lengths.filter { $0 > 0 }.map { ids[text($0, "a")]! })
        for n in lengths where n > 0 {
            let id = interner.intern(text(n, "c"))
            #expect(released.contains(id))
            #expect(interner.string(id) == text(n, "c"))
        }
        #expect(interner.count == 2 * lengths.count - 1)
    }
}
