import Testing
import TriplineTesting
@testable import TriplineCore

/// The time core alone, no engine: events and times in, decisions and due work out, against
/// a naive model of spec sections 2 and 3 (late, duplicates inside the dedup window, the
/// watermark, buffering in time then arrival order, timers in deadline order, expiry).
@Suite struct TimeCoreTests {
    struct Arrival {
        var entity: Int32
        var time: Millis
        var id: Int32   // -1: no given id
    }

    /// What the naive model and the time core both produce for a stream: each offer's
    /// outcome, and the order events are applied in (by arrival number).
    struct Trace: Equatable {
        var outcomes: [String] = []
        var applied: [Int] = []
        var watermarks: [Millis] = []
    }

    static func naive(_ stream: [Arrival], lateness: Millis, window: Millis) -> Trace {
        var trace = Trace()
        var watermark = Millis.min, maxTime = Millis.min
        var remembered: [String: Millis] = [:]   // "entity/id" -> accepted time (latest)
        var buffer: [(time: Millis, arrival: Int)] = []
        for (n, a) in stream.enumerated() {
            let k = "\(a.entity)/\(a.id)"
            if a.id >= 0, let s = remembered[k], s + window >= watermark {
                trace.outcomes.append("duplicate")
            } else if a.time < watermark {
                trace.outcomes.append("late")
            } else {
                if a.id >= 0 { remembered[k] = a.time }
                maxTime = max(maxTime, a.time)
                buffer.append((a.time, n))
                watermark = max(watermark, maxTime - lateness)
                trace.outcomes.append("accepted")
                // Everything the watermark reached, in time then arrival order.
                let ready = buffer.filter { $0.time <= watermark }.sorted { ($0.time, $0.arrival) < ($1.time, $1.arrival) }
                buffer.removeAll { $0.time <= watermark }
                trace.applied += ready.map(\.arrival)
            }
            trace.watermarks.append(watermark)
        }
        trace.applied += buffer.sorted { ($0.time, $0.arrival) < ($1.time, $1.arrival) }.map(\.arrival)
        return trace
    }

    static func core(_ stream: [Arrival], lateness: Millis, window: Millis) -> Trace {
        var trace = Trace()
        var t = TimeCore(allowedLateness: lateness, window: window, external: false, expiries: [])
        for (n, a) in stream.enumerated() {
            var ev = Event(entity: a.entity, time: a.time, type: 0)
            ev.givenId = a.id
            ev.value = Double(n)   // the arrival number rides along
            switch t.offer(ev, assignedForm: { _, _ in nil }) {
            case .duplicate: trace.outcomes.append("duplicate")
            case .late: trace.outcomes.append("late")
            case .applyNow:
                trace.outcomes.append("accepted")
                trace.applied.append(n)
            case .buffered:
                trace.outcomes.append("accepted")
            }
            while let item = t.nextReady() { trace.applied.append(Int(item.event.value)) }
            trace.watermarks.append(t.watermark)
        }
        while let item = t.nextBuffered(upTo: .max) { trace.applied.append(Int(item.event.value)) }
        return trace
    }

    @Test(arguments: Array(1...300) as [UInt64])
    func offersMatchTheNaiveModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let lateness = Millis(rng.next() % 4) * 500
        let window = [0, 1000, 3000, 60_000][Int(rng.next() % 4)] as Millis
        var time: Millis = 10_000
        let stream: [Arrival] = (0..<Int(50 + rng.next() % 150)).map { _ in
            time += Millis(rng.next() % 700)
            let jitter = Millis(rng.next() % 2500)
            return Arrival(entity: Int32(rng.next() % 4), time: max(0, time - jitter),
                           id: rng.next() % 3 == 0 ? -1 : Int32(rng.next() % 12))
        }
        let expected = Self.naive(stream, lateness: lateness, window: window)
        let got = Self.core(stream, lateness: lateness, window: window)
        #expect(got.outcomes == expected.outcomes, "lateness \(lateness) window \(window)")
        #expect(got.watermarks == expected.watermarks)
        #expect(got.applied == expected.applied)
        #expect(Set(got.applied).count == got.applied.count)
    }

    @Test func anOutsideWatermarkAloneMovesTime() {
        var t = TimeCore(allowedLateness: 0, window: 0, external: true, expiries: [])
        for (i, time) in [5000, 3000, 4000].enumerated() {
            var ev = Event(entity: 1, time: Millis(time), type: 0)
            ev.value = Double(i)
            #expect(t.offer(ev, assignedForm: { _, _ in nil }) == .buffered(.assigned(entity: 1, n: UInt32(i + 1))))
        }
        #expect(t.watermark == .min && t.nextReady() == nil)
        t.moveWatermark(to: 4000)
        #expect(t.nextReady()?.event.time == 3000)
        #expect(t.nextReady()?.event.time == 4000)
        #expect(t.nextReady() == nil)
        // Before the outside watermark now: late.
        #expect(t.offer(Event(entity: 2, time: 3999, type: 0), assignedForm: { _, _ in nil }) == .late(.assigned(entity: 2, n: 1)))
        t.moveWatermark(to: 100)   // never back
        #expect(t.watermark == 4000)
    }

    @Test(arguments: Array(1...50) as [UInt64])
    func timersComeDueInDeadlineOrderAndExpiriesInTimeOrder(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let expiries = (0..<5).map { (Millis(rng.next() % 10_000), Int32($0)) }
        var t = TimeCore(allowedLateness: 0, window: 0, external: false, expiries: expiries)
        var naive: [(Millis, Int)] = []
        for i in 0..<200 {
            let d = Millis(rng.next() % 10_000)
            t.timers.schedule(deadline: d, rule: 0, a: Int32(i))
            naive.append((d, i))
        }
        var fired: [Int32] = []
        var now: Millis = 0
        while now < 10_000 {
            now += Millis(rng.next() % 900)
            t.reach(now)
            while let timer = t.nextTimer(upTo: now) {
                #expect(timer.deadline <= now)
                fired.append(timer.a)
            }
            #expect(t.expired.allSatisfy { $0.at <= now })
            #expect(t.expired.count == expiries.filter { $0.0 <= now }.count)
        }
        // Equal deadlines in the order they were set.
        #expect(fired == naive.filter { $0.0 <= now }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map { Int32($0.1) })
        #expect(t.expired.map(\.at) == expiries.map(\.0).filter { $0 <= now }.sorted())
    }
}
