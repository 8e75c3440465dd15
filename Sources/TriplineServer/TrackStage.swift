import Foundation
import TriplineCore

/// Keeps `LatestPositions` (what spatial queries, the map and `GET /v1/positions` read)
/// behind the engine thread, on a serial queue of its own: the engine thread hands over each
/// batch's accepted events and goes on to the next batch.
///
/// Why: at 100,000 entities, tracking a position touches the entity's slots in the position
/// index and its recent track, about ten cache lines at random places. It was about 30 % of
/// the engine thread's time per batch (perf, `Benchmarks/server_ingest.py`), and the engine
/// thread paces the server's ingest.
///
/// Every reader is on the host thread and reaches the positions through
/// `HostState.latest`, whose getter first waits for the tracking already handed over. So a
/// read still sees every batch applied before it, as before; it waits at most for the
/// tracking of the batches applied since the last read.
final class TrackStage: @unchecked Sendable {
    private let queue = DispatchQueue(label: "tripline-tracks")
    /// Tracking was handed over since the last `wait()` (host thread only).
    private var pending = false
    /// Batches tracked on the stage (host thread only; for tests and metrics).
    private(set) var batches = 0
    /// Tests only: runs on the stage before each batch is tracked.
    var beforeBatch: (@Sendable () -> Void)?

    /// Tracks `events[i]` for each i in `accepted`, in that order, on the stage (host thread).
    func submit(_ latest: LatestPositions, _ events: [Event], _ accepted: [Int32]) {
        pending = true
        batches += 1
        let work = Work(latest: latest, events: events, accepted: accepted, before: beforeBatch)
        queue.async { work.run() }
    }

    /// Returns once everything handed over has been tracked (host thread).
    @inline(__always)
    func wait() {
        guard pending else { return }
        queue.sync {}
        pending = false
    }

    /// One batch's tracking. `LatestPositions` is touched by one thread at a time: the stage
    /// while work is pending, the host thread only after `wait()`.
    private struct Work: @unchecked Sendable {
        let latest: LatestPositions
        let events: [Event]
        let accepted: [Int32]
        let before: (@Sendable () -> Void)?
        func run() {
            before?()
            events.withUnsafeBufferPointer { evs in
                for i in accepted { latest.track(evs[Int(i)]) }
            }
        }
    }
}
