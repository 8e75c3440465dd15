import Testing
@testable import TriplineCore
import TriplineTesting

/// The `threshold` baseline's sliding window against a naive mean: the baseline of a reading
/// at t is the mean of the readings in [t - B, t), and readings of the same millisecond are
/// not part of it. Windows of hundreds of readings drive the window through its compaction
/// (dropping the evicted front once it is more than 64 readings and half the array), which
/// the rule-level differential tests, with a few readings per entity, do not reach.
@Suite struct BaselineWindowTests {
    @Test(arguments: Array(1...6) as [UInt64])
    func meanAndCountMatchANaiveWindow(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let window: Millis = 1_000 + Millis(rng.next() % 5_000)
        var b = ThresholdEvaluator.Baseline()
        var all: [(t: Millis, v: Double)] = []
        var t: Millis = 1_000_000
        var compactions = 0
        for i in 0..<6_000 {
            // Mostly small steps, some repeats of the same millisecond, some long gaps that
            // empty the window.
            let r = rng.next() % 1_000
            t += r < 150 ? 0 : (r < 998 ? Millis(rng.next() % 40) : window + Millis(rng.next() % 100))
            let v = Double(Int(rng.next() % 2_001) - 1_000) / 8
            let headBefore = b.head
            let (n, mean) = b.record(v, at: t, window: window)
            if b.head == 0 && headBefore > 64 && b.readings.count > 1 { compactions += 1 }
            let inside = all.filter { $0.t >= t - window && $0.t < t }
            #expect(n == inside.count, "reading \(i) at \(t)")
            if !inside.isEmpty {
                let naive = inside.reduce(0.0) { $0 + $1.v } / Double(inside.count)
                #expect(abs(mean - naive) <= 1e-9 * max(1, abs(naive)), "reading \(i) at \(t): \(mean) vs \(naive)")
            }
            all.append((t, v))
            #expect(b.readings.count - b.head <= all.filter { $0.t >= t - window }.count)
        }
        #expect(compactions > 0, "the window never compacted")
    }
}
