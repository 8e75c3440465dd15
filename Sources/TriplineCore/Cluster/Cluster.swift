/// The cluster's split of one engine (spec section 0: every path gives the same alerts).
///
/// - The **gateway** runs the time core for every entity at once, in arrival order: it
///   numbers arrivals, drops duplicates and late events, and moves the watermark exactly as a
///   single process does. Each accepted event becomes a record for the partition of its
///   entity (`Partitioner`), stamped with the watermark right after it was offered, the
///   arrival number of its assigned id, and a dense global number of accepted events.
/// - A **partition worker** runs the entity-keyed rules over its partition's records, taking
///   the gateway's decisions as given (`Pipeline.ingestAccepted`) and the stamped watermark
///   after each event (`Pipeline.watermarkReached`). Entity-keyed rules see only their entity's
///   events and timers, which come in the same order as in one process.
/// - The **cross-entity stage** runs `gathering` and `proximity` over the positions of every
///   partition, merged back into the gateway's order by the global accepted number.
///
/// Alerts of all stages merged in canonical order (`ClusterAlerts.merge`) are the alerts of
/// one process.

/// Rules that relate several entities (and so need every partition's positions).
public enum ClusterRules {
    public static func isCrossEntity(_ r: Rule) -> Bool {
        switch r.kind {
        case .gathering, .proximity: return true
        default: return false
        }
    }

    /// The ids of the entity-keyed rules and of the cross-entity rules.
    public static func split(_ rules: [Rule]) -> (entity: Set<String>, cross: Set<String>) {
        var e = Set<String>(), c = Set<String>()
        for r in rules { if isCrossEntity(r) { c.insert(r.id) } else { e.insert(r.id) } }
        return (e, c)
    }
}

/// `p = hash(entity id) mod P` with a hash that is the same in every process and release
/// (FNV-1a, 64 bits, over the id's UTF-8 bytes; Swift's `Hasher` is seeded per process).
public struct Partitioner: Sendable {
    public let count: Int
    public init(count: Int) {
        precondition(count > 0)
        self.count = count
    }

    public func partition<C: Collection>(ofUTF8 bytes: C) -> Int where C.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return Int(h % UInt64(count))
    }

    public func partition(of entity: String) -> Int { partition(ofUTF8: entity.utf8) }
}

/// One record of a partition's input.
public enum ClusterRecord: Equatable, Sendable {
    /// An accepted event: its global accepted number, the watermark right after the gateway
    /// offered it, the n of its assigned id `<entity>#<n>` (0 when it has an id of its own),
    /// and its JSON text.
    case event(accepted: UInt64, watermark: Millis, assigned: UInt32, text: ArraySlice<UInt8>)
    /// The watermark reached `t` (timers in quiet partitions fire); `after`: the accepted
    /// number of the last event before it.
    case watermark(Millis, after: UInt64, step: UInt32 = 0)
    /// An advance to `t` (an operator's command, idle advance, the end of a replay): buffered
    /// events up to `t` are applied, timers due by `t` fire, and every alert group closes.
    /// `step`: its place among the gateway's steps (drops and advances) since event `after`.
    case advance(Millis, after: UInt64, step: UInt32 = 0)
    /// An arrival the gateway did not accept (late or duplicate), for rebuilding the gateway's
    /// time core from the stream: stages ignore it. `step` as for `advance`.
    case dropped(after: UInt64, step: UInt32, text: ArraySlice<UInt8>)
    /// Accepted number `n` will never come (its record was lost with a gateway that died while
    /// publishing it): the cross-entity stage stops waiting for it.
    case void(UInt64)
    /// The catalog changed to `version` here (after event `after`, at `step`), when the
    /// gateway's watermark was `watermark`: each stage rebuilds its engine on the new catalog
    /// from the start of the stream, as one server rebuilds from its log.
    case catalog(after: UInt64, step: UInt32, watermark: Millis, version: String)
}

/// The byte form of records, one per line:
/// `e <accepted> <watermark> <assigned> <json>`, `w <after> <watermark>`,
/// `a <after> <until> <step>`, `d <after> <step> <json>`, `v <accepted>`,
/// `c <after> <step> <watermark> <version>` (`w` also takes a trailing step).
/// (Event JSON never holds a raw newline: the decoder refuses one inside a string, and
/// NDJSON lines and array elements come without one.)
public enum ClusterRecords {
    public static func append(_ r: ClusterRecord, to out: inout [UInt8]) {
        switch r {
        case .event(let a, let w, let n, let text):
            out.append(UInt8(ascii: "e"))
            out.append(32)
            appendInt(Int64(bitPattern: a), &out)
            out.append(32)
            appendInt(w, &out)
            out.append(32)
            appendInt(Int64(n), &out)
            out.append(32)
            appendText(text, &out)
        case .watermark(let w, let after, let step):
            appendMarker(UInt8(ascii: "w"), after, w, &out)
            out.append(32)
            appendInt(Int64(step), &out)
        case .catalog(let after, let step, let w, let version):
            out.append(UInt8(ascii: "c"))
            out.append(32)
            appendInt(Int64(bitPattern: after), &out)
            out.append(32)
            appendInt(Int64(step), &out)
            out.append(32)
            appendInt(w, &out)
            out.append(32)
            out.append(contentsOf: version.utf8.lazy.map { $0 == 10 || $0 == 32 ? UInt8(ascii: "_") : $0 })
        case .advance(let t, let after, let step):
            appendMarker(UInt8(ascii: "a"), after, t, &out)
            out.append(32)
            appendInt(Int64(step), &out)
        case .dropped(let after, let step, let text):
            out.append(UInt8(ascii: "d"))
            out.append(32)
            appendInt(Int64(bitPattern: after), &out)
            out.append(32)
            appendInt(Int64(step), &out)
            out.append(32)
            appendText(text, &out)
        case .void(let n):
            out.append(UInt8(ascii: "v"))
            out.append(32)
            appendInt(Int64(bitPattern: n), &out)
        }
        out.append(10)
    }

    /// Event text, any line break made a space (none is expected: see above). Copied whole,
    /// then scanned: the gateway writes every event this way.
    static func appendText(_ text: ArraySlice<UInt8>, _ out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: text)
        out.withUnsafeMutableBufferPointer { p in
            for i in start..<p.count where p[i] == 10 || p[i] == 13 { p[i] = 32 }
        }
    }

    static func appendMarker(_ kind: UInt8, _ after: UInt64, _ value: Millis, _ out: inout [UInt8]) {
        out.append(kind)
        out.append(32)
        appendInt(Int64(bitPattern: after), &out)
        out.append(32)
        appendInt(value, &out)
    }

    static func appendInt(_ v: Int64, _ out: inout [UInt8]) {
        if v == .min {
            out.append(contentsOf: Array("-9223372036854775808".utf8))
            return
        }
        var x = v
        if x < 0 {
            out.append(UInt8(ascii: "-"))
            x = -x
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(ascii: "0") + UInt8(x % 10)
                x /= 10
                n += 1
            } while x > 0
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }

    public struct Malformed: Error, CustomStringConvertible, Sendable {
        public var offset: Int
        public var description: String { "malformed cluster record at byte \(offset)" }
    }

    /// Calls `body` with each record of `bytes`, in order.
    public static func forEach(in bytes: [UInt8], _ body: (ClusterRecord) throws -> Void) throws {
        var i = 0
        let n = bytes.count
        func int(_ i: inout Int) throws -> Int64 {
            var neg = false
            if i < n && bytes[i] == UInt8(ascii: "-") { neg = true; i += 1 }
            let start = i
            var v: UInt64 = 0
            while i < n, bytes[i] >= 48, bytes[i] <= 57 {
                v = v &* 10 &+ UInt64(bytes[i] - 48)
                i += 1
            }
            guard i > start else { throw Malformed(offset: i) }
            return neg ? Int64(bitPattern: 0 &- v) : Int64(bitPattern: v)
        }
        /// A space, then a number.
        func next(_ i: inout Int) throws -> Int64 {
            guard i < n, bytes[i] == 32 else { throw Malformed(offset: i) }
            i += 1
            return try int(&i)
        }
        func small(_ v: Int64, _ i: Int) throws -> UInt32 {
            guard v >= 0, v <= Int64(UInt32.max) else { throw Malformed(offset: i) }
            return UInt32(v)
        }
        /// A trailing step, when there is one (records written before steps existed have none).
        func optionalStep(_ i: inout Int) throws -> UInt32 {
            guard i < n, bytes[i] == 32 else { return 0 }
            return try small(try next(&i), i)
        }
        /// A space, then the rest of the line (not empty).
        func rest(_ i: inout Int) throws -> ArraySlice<UInt8> {
            guard i < n, bytes[i] == 32 else { throw Malformed(offset: i) }
            i += 1
            let start = i
            while i < n && bytes[i] != 10 { i += 1 }
            guard i > start else { throw Malformed(offset: i) }
            return bytes[start..<i]
        }
        while i < n {
            let kind = bytes[i]
            guard i + 1 < n, bytes[i + 1] == 32 else { throw Malformed(offset: i) }
            i += 2
            let first = UInt64(bitPattern: try int(&i))
            switch kind {
            case UInt8(ascii: "e"):
                let w = try next(&i)
                let assigned = try small(try next(&i), i)
                try body(.event(accepted: first, watermark: w, assigned: assigned, text: try rest(&i)))
            case UInt8(ascii: "w"):
                let w = try next(&i)
                try body(.watermark(w, after: first, step: try optionalStep(&i)))
            case UInt8(ascii: "a"):
                let t = try next(&i)
                try body(.advance(t, after: first, step: try optionalStep(&i)))
            case UInt8(ascii: "c"):
                let step = try small(try next(&i), i)
                let w = try next(&i)
                try body(.catalog(after: first, step: step, watermark: w, version: String(decoding: try rest(&i), as: UTF8.self)))
            case UInt8(ascii: "d"):
                let step = try small(try next(&i), i)
                try body(.dropped(after: first, step: step, text: try rest(&i)))
            case UInt8(ascii: "v"):
                try body(.void(first))
            default:
                throw Malformed(offset: i - 2)
            }
            guard i < n, bytes[i] == 10 else { throw Malformed(offset: i) }
            i += 1
        }
    }
}

/// The gateway's half of the engine: the time core for every entity, in arrival order, with
/// no rules. Offers batches and fills one record buffer per partition.
public final class ClusterGateway {
    public let partitioner: Partitioner
    let pipeline: Pipeline
    /// Per interned entity: its partition (-1: not computed yet).
    var partitionOf: [Int32] = []
    /// Accepted events so far (the next record's number is this + 1).
    public internal(set) var accepted: UInt64 = 0
    /// Drops and advances since the last accepted event (their records' `step`).
    var step: UInt32 = 0
    /// Each partition's records not taken yet.
    public internal(set) var pending: [[UInt8]]
    /// With `crossStream`: the cross-entity stage's records in the gateway's order, not taken
    /// yet (`takeCross`): accepted positions, and every marker. Other accepted events appear
    /// only as the watermark they moved (a `w` record, when it moved), which is all such a
    /// stage does with them. In one process this replaces merging every partition's records
    /// (`ClusterMerger`) into the same order.
    public internal(set) var pendingCross: [UInt8] = []
    let crossStream: Bool
    /// The watermark the cross stream last carried.
    var crossWatermark: Millis = .min

    /// What became of an offered batch.
    public struct Offered: Sendable {
        public var received = 0
        public var duplicates = 0
        /// Positions in the batch of the late events.
        public var late: [Int] = []
        public var watermark: Millis = .min
    }

    /// `symbols`: the names the time core starts with, when batches decoded elsewhere are
    /// offered (`offer(decoded:text:late:)`): those their decoder started with.
    public init(partitions: Int, entities: [EntityInfo], options: PipelineOptions, symbols: Symbols? = nil, crossStream: Bool = false) {
        partitioner = Partitioner(count: partitions)
        var o = options
        o.rules = []
        o.watermark = .events
        pipeline = Pipeline(zones: [], entities: entities, rules: [], options: o, symbols: symbols)
        pending = Array(repeating: [], count: partitions)
        self.crossStream = crossStream
    }

    public var watermark: Millis { pipeline.watermark }
    public var maxTime: Millis { pipeline.maxTime }
    public var stats: EngineStats { pipeline.stats }
    /// The time core (a pipeline with no zones and no rules): watermark, statistics, entity names.
    public var timeCore: Pipeline { pipeline }

    func partition(_ entity: Int32) -> Int {
        let e = Int(entity)
        if e >= partitionOf.count { partitionOf.append(contentsOf: repeatElement(-1, count: e + 1 - partitionOf.count)) }
        if partitionOf[e] < 0 { partitionOf[e] = Int32(partitioner.partition(of: pipeline.entityName(entity))) }
        return Int(partitionOf[e])
    }

    /// Decodes the batch (all or nothing: every error, nothing offered) and offers its events
    /// in order, adding a record for each accepted one to its partition. `check` may refuse a
    /// decoded event (as `Pipeline.decode`); `accepted` sees each accepted event.
    public func offer(_ texts: EventTexts, check: (Event, Int) -> TriplineError? = { _, _ in nil },
                      accepted onAccepted: (Event) -> Void = { _ in }) -> Result<Offered, InvalidEvents> {
        let events: [Event]
        switch pipeline.decode(texts, check: check) {
        case .success(let evs): events = evs
        case .failure(let e): return .failure(e)
        }
        var r = Offered()
        r.received = events.count
        offer(events, text: { texts.bytes[texts.starts[$0]..<texts.ends[$0]] }, into: &r, accepted: onAccepted, late: { _ in })
        return .success(r)
    }

    /// Offers a batch decoded on another thread (by a `BatchDecoder` that started from this
    /// gateway's `symbols`): its names, then its events in order; `text(i)` is event i's JSON
    /// text, `late` gets the position of each late event.
    public func offer(decoded batch: DecodedBatch, text: (Int) -> ArraySlice<UInt8>, late: (Int) -> Void = { _ in }) -> Offered {
        pipeline.adopt(batch)
        var r = Offered()
        r.received = batch.events.count
        offer(batch.events, text: text, into: &r, accepted: { _ in }, late: late)
        return r
    }

    func offer(_ events: [Event], text: (Int) -> ArraySlice<UInt8>, into r: inout Offered, accepted onAccepted: (Event) -> Void, late: (Int) -> Void) {
        for (i, ev) in events.enumerated() {
            switch pipeline.ingest(ev) {
            case .duplicate:
                r.duplicates += 1
                dropped(ev, text(i))
            case .late:
                r.late.append(i)
                late(i)
                dropped(ev, text(i))
            case .accepted(let ref):
                onAccepted(ev)
                accepted += 1
                step = 0
                let p = partition(ev.entity)
                let record = ClusterRecord.event(accepted: accepted, watermark: pipeline.watermark, assigned: ref.isGiven ? 0 : ref.sequence, text: text(i))
                ClusterRecords.append(record, to: &pending[p])
                if crossStream {
                    if ev.isPosition {
                        ClusterRecords.append(record, to: &pendingCross)
                        crossWatermark = pipeline.watermark
                    } else if pipeline.watermark != crossWatermark {
                        crossWatermark = pipeline.watermark
                        ClusterRecords.append(.watermark(crossWatermark, after: accepted, step: step), to: &pendingCross)
                    }
                }
            }
        }
        pipeline.compactIds()
        r.watermark = pipeline.watermark
    }

    /// A late or duplicate arrival, recorded in its entity's partition for a gateway rebuilt
    /// from the stream (it moved the entity's arrival count).
    func dropped(_ ev: Event, _ text: ArraySlice<UInt8>) {
        step += 1
        ClusterRecords.append(.dropped(after: accepted, step: step, text: text), to: &pending[partition(ev.entity)])
    }

    /// Tells every partition the current watermark (so that timers fire where no event comes).
    public func markWatermark() {
        let w = pipeline.watermark
        for p in pending.indices { ClusterRecords.append(.watermark(w, after: accepted, step: step), to: &pending[p]) }
        if crossStream {
            crossWatermark = w
            ClusterRecords.append(.watermark(w, after: accepted, step: step), to: &pendingCross)
        }
    }

    /// The catalog changes to `version` here, for every partition (the time core has no rules:
    /// nothing changes in it).
    public func catalogChange(version: String) {
        step += 1
        for p in pending.indices {
            ClusterRecords.append(.catalog(after: accepted, step: step, watermark: pipeline.watermark, version: version), to: &pending[p])
        }
        if crossStream {
            ClusterRecords.append(.catalog(after: accepted, step: step, watermark: pipeline.watermark, version: version), to: &pendingCross)
        }
    }

    /// An advance to `until` for every partition (the gateway's own watermark moves too).
    public func advance(until: Millis) {
        pipeline.advance(until: until)
        step += 1
        for p in pending.indices { ClusterRecords.append(.advance(until, after: accepted, step: step), to: &pending[p]) }
        if crossStream {
            crossWatermark = pipeline.watermark
            ClusterRecords.append(.advance(until, after: accepted, step: step), to: &pendingCross)
        }
    }

    /// Takes each partition's records (empty where there are none).
    public func take() -> [[UInt8]] {
        let out = pending
        for p in pending.indices { pending[p].removeAll(keepingCapacity: true) }
        return out
    }

    /// Takes the cross-entity stage's records (`crossStream`).
    public func takeCross() -> [UInt8] {
        let out = pendingCross
        pendingCross.removeAll(keepingCapacity: true)
        return out
    }
}

/// A partition worker's engine, or the cross-entity stage's: the rules it runs, fed with
/// records.
public final class ClusterStage {
    public let pipeline: Pipeline
    /// Applies only positions (the cross-entity stage: its rules read nothing else).
    let positionsOnly: Bool
    /// The last accepted number applied.
    public private(set) var lastAccepted: UInt64 = 0
    /// Every alert with a time up to this is out (`drainAlerts`): alerts at the watermark
    /// itself stay open until it moves past, or an advance closes them.
    public private(set) var completeThrough: Millis = .min

    public init(zones: [Zone], retiredZones: [Zone] = [], entities: [EntityInfo], rules: [Rule], only: Set<String>, options: PipelineOptions,
                positionsOnly: Bool = false) {
        var o = options
        o.rules = only
        o.watermark = .external
        pipeline = Pipeline(zones: zones, retiredZones: retiredZones, entities: entities, rules: rules, options: o)
        self.positionsOnly = positionsOnly
    }

    /// Applies one record.
    public func apply(_ r: ClusterRecord) throws {
        switch r {
        case .event(let a, let w, let n, let text):
            lastAccepted = a
            if !positionsOnly || Self.isPosition(text) {
                let decoded = text.withUnsafeBufferPointer { pipeline.decode($0, number: Int(a)) }
                switch decoded {
                case .success(let ev): pipeline.ingestAccepted(ev, assigned: n == 0 ? nil : n)
                case .failure(let e): throw e
                }
            }
            pipeline.watermarkReached(w)
        case .watermark(let w, _, _):
            pipeline.watermarkReached(w)
        case .catalog(let after, let step, let w, let version):
            if let target = rebuildingTo {
                // Replaying history on the new catalog: earlier changes are part of it; at the
                // change this engine was built for, what completed so far was emitted before.
                if target.after == after && target.step == step {
                    pipeline.watermarkReached(w)
                    pipeline.discardAlerts()
                    rebuildingTo = nil
                    // Exactly at the change: what it does there (the transitions of zone edits).
                    atChange?(pipeline)
                    atChange = nil
                }
                return
            }
            // One server, at a change, has emitted every alert its watermark completed: so does
            // this engine, with the watermark the gateway had, before its host replaces it.
            pipeline.watermarkReached(w)
            throw CatalogSwitch(after: after, step: step, watermark: w, version: version)
        case .advance(let t, _, _):
            pipeline.advance(until: t)
            completeThrough = max(completeThrough, t)
        case .dropped, .void:
            return
        }
        let w = pipeline.watermark
        if w > .min { completeThrough = max(completeThrough, w - 1) }
    }

    /// Set on an engine built for a catalog change: records up to that change replay history
    /// (alerts completed by then are dropped there).
    public var rebuildingTo: (after: UInt64, step: UInt32)?
    /// Called once, with this engine's pipeline, when the rebuild reaches `rebuildingTo`: the
    /// place of the change in the stream, where history ends and live evaluation begins.
    public var atChange: ((Pipeline) -> Void)?

    /// A catalog change reached a live stage: its host rebuilds it on `version` (with
    /// `rebuildingTo` this change) from the start of the stream.
    public struct CatalogSwitch: Error, Equatable, Sendable {
        public var after: UInt64
        public var step: UInt32
        public var watermark: Millis
        public var version: String
    }

    /// Applies every record of `bytes`.
    public func consume(_ bytes: [UInt8]) throws {
        try ClusterRecords.forEach(in: bytes) { try apply($0) }
    }

    /// Whether an event text is a position (`"type":"position"`), without decoding it.
    static func isPosition(_ text: ArraySlice<UInt8>) -> Bool {
        let needle: [UInt8] = Array(#""position""#.utf8)
        guard text.count >= needle.count else { return false }
        var i = text.startIndex
        let last = text.endIndex - needle.count
        while i <= last {
            if text[i] == 34 && text[i + 1] == needle[1] {
                var k = 2
                while k < needle.count && text[i + k] == needle[k] { k += 1 }
                if k == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}

/// Puts the records of every partition back into the gateway's order for one stage (the
/// cross-entity stage): events by their accepted number, each marker once, after the event
/// it followed. Each partition's records must come in that partition's order; partitions may
/// interleave in any way, and records already applied (a re-read) are ignored.
///
/// Every marker is written to every partition, so when event k + 1 is ready, some partition
/// has already delivered each marker that came before it.
public final class ClusterMerger {
    public let stage: ClusterStage
    var events: [UInt64: ClusterRecord] = [:]
    /// Markers not applied yet.
    var markers: Set<Marker> = []
    /// The last applied record's place.
    var cursor = Marker(after: 0, step: 0, rank: -1, value: .min, kind: -1, version: "")
    public var applied: UInt64 { cursor.after }
    /// Records waiting for an earlier one.
    public var waiting: Int { events.count + markers.count }

    /// A marker's place in the gateway's order: after event `after`, at `step` (advances and
    /// catalog changes carry their own step; a watermark marker the step current when it was
    /// written, and comes after the step's own record: rank 1), then by value.
    struct Marker: Hashable, Comparable {
        var after: UInt64
        var step: UInt32
        var rank: Int
        var value: Millis
        /// 0 watermark, 1 advance, 2 catalog change.
        var kind: Int
        var version: String
        static func < (a: Marker, b: Marker) -> Bool {
            (a.after, a.step, a.rank, a.value, a.kind) < (b.after, b.step, b.rank, b.value, b.kind)
        }
    }

    public init(stage: ClusterStage) { self.stage = stage }

    public func push(_ r: ClusterRecord) throws {
        switch r {
        case .event(let a, _, _, _):
            if a > cursor.after { events[a] = r }
        case .watermark(let w, let after, let step):
            let m = Marker(after: after, step: step, rank: 1, value: w, kind: 0, version: "")
            if cursor < m { markers.insert(m) }
        case .advance(let t, let after, let step):
            let m = Marker(after: after, step: step, rank: 0, value: t, kind: 1, version: "")
            if cursor < m { markers.insert(m) }
        case .catalog(let after, let step, let w, let version):
            let m = Marker(after: after, step: step, rank: 0, value: w, kind: 2, version: version)
            if cursor < m { markers.insert(m) }
        case .void(let a):
            if a > cursor.after { events[a] = r }
        case .dropped:
            return
        }
        try drain()
    }

    public func push(_ bytes: [UInt8]) throws {
        try ClusterRecords.forEach(in: bytes) { try push($0) }
    }

    func drain() throws {
        while true {
            // (Markers are few and rarely pending: the set is looked at only when not empty,
            // so applying an event allocates nothing.)
            if !markers.isEmpty, let m = markers.filter({ $0.after == cursor.after && cursor < $0 }).min() {
                markers.remove(m)
                cursor = m
                switch m.kind {
                case 0: try stage.apply(.watermark(m.value, after: m.after, step: m.step))
                case 1: try stage.apply(.advance(m.value, after: m.after, step: m.step))
                default: try stage.apply(.catalog(after: m.after, step: m.step, watermark: m.value, version: m.version))
                }
                continue
            }
            if let e = events.removeValue(forKey: cursor.after + 1) {
                try stage.apply(e)
                cursor = Marker(after: cursor.after + 1, step: 0, rank: -1, value: .min, kind: -1, version: "")
                continue
            }
            return
        }
    }
}

/// The alerts of several stages, each stage's in canonical order and complete up to a time
/// it reports, handed out merged once every stage is complete past their time: alerts handed
/// out later are never before those handed out earlier. Used by the cluster's alert reader
/// and by `replay --partitions`.
public struct StageAlertMerge: Sendable {
    var buffered: [[NamedAlert]]
    var complete: [Millis]

    public init(stages: Int) {
        buffered = Array(repeating: [], count: stages)
        complete = Array(repeating: .min, count: stages)
    }

    /// The time through which every stage is complete.
    public var completeThrough: Millis { complete.min() ?? .min }

    /// More alerts of `stage`, after those it gave before.
    public mutating func add<S: Sequence>(_ alerts: S, stage: Int) where S.Element == NamedAlert {
        buffered[stage].append(contentsOf: alerts)
    }

    /// `stage` has given every alert with a time up to `t`.
    public mutating func completed(_ stage: Int, through t: Millis) {
        complete[stage] = max(complete[stage], t)
    }

    /// The alerts up to `completeThrough` not handed out yet, in canonical order.
    public mutating func takeReady() -> [NamedAlert] {
        let through = completeThrough
        var ready: [[NamedAlert]] = []
        for s in buffered.indices where !buffered[s].isEmpty {
            let k = buffered[s].firstIndex { $0.time > through } ?? buffered[s].count
            if k == 0 { continue }
            ready.append(Array(buffered[s][..<k]))
            buffered[s].removeFirst(k)
        }
        return ready.isEmpty ? [] : ClusterAlerts.merge(ready)
    }
}

/// Merges the alerts of several stages into canonical order (time, rule id, key field by
/// field in code points, then emission order). Each input is in canonical order already, and
/// alerts of one key come from one stage, so a stable merge keeps emission order.
public enum ClusterAlerts {
    public static func merge(_ parts: [[NamedAlert]]) -> [NamedAlert] {
        var all: [(NamedAlert, Int, Int)] = []
        for (s, part) in parts.enumerated() { for (i, a) in part.enumerated() { all.append((a, s, i)) } }
        all.sort { x, y in
            if x.0.time != y.0.time { return x.0.time < y.0.time }
            if x.0.rule != y.0.rule { return less(x.0.rule, y.0.rule) }
            for (u, v) in [(x.0.entity, y.0.entity), (x.0.zone, y.0.zone), (x.0.pairA, y.0.pairA), (x.0.pairB, y.0.pairB), (x.0.group, y.0.group)] where u != v {
                guard let u else { return true }
                guard let v else { return false }
                return less(u, v)
            }
            return (x.1, x.2) < (y.1, y.2)
        }
        return all.map(\.0)
    }

    /// Code-point order (UTF-8 byte order is code-point order).
    static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
}
