import Testing
@testable import TriplineCore
import TriplineTesting

/// The per-entity records the memory figures in Benchmarks/README.md rest on, and the packed
/// latest event of the entity record.
@Suite struct StateLayoutTests {
    @Test func entityRecordIs64BytesAndAProximitySlot32() {
        #expect(MemoryLayout<Engine.EntityState>.stride == 64)
        #expect(MemoryLayout<IntMap<ProximityEvaluator.Latest>.Slot>.stride == 32)
    }

    @Test func aCubeHeadSlotIs8Bytes() {
        #expect(MemoryLayout<HeadTable.Slot>.stride == 8)
    }

    @Test func anAbsenceRecordIs32BytesAndItsSlot40() {
        #expect(MemoryLayout<AbsenceEvaluator.Seen>.stride == 32)
        #expect(MemoryLayout<IntMap<AbsenceEvaluator.Seen>.Slot>.stride == 40)
    }

    /// The latest position's event is kept as 32 bits and a flag: given ids and assigned ones
    /// come back as they went in, over the whole range of both, and the ready bit sharing the
    /// flag byte is left alone.
    @Test func latestEventRoundTripsThroughTheRecord() {
        var rng = SplitMix64(seed: 7)
        for e in [Int32(0), 1, 4095, Int32.max] {
            var r = Engine.EntityState()
            #expect(!r.ready)
            #expect(r.lastRef(e) == .assigned(entity: e, n: 0))
            r.ready = true
            var refs: [EventRef] = [.given(0), .given(Int32.max), .assigned(entity: e, n: 0), .assigned(entity: e, n: .max), .given(1)]
            for _ in 0..<200 {
                let x = UInt32(truncatingIfNeeded: rng.next())
                refs.append(x & 1 == 0 ? .given(Int32(bitPattern: x >> 1)) : .assigned(entity: e, n: x))
            }
            for ref in refs {
                r.setLastRef(ref, e)
                #expect(r.lastRef(e) == ref)
                #expect(r.ready)
            }
            r.ready = false
            #expect(r.lastRef(e) == refs.last!)
        }
    }
}
