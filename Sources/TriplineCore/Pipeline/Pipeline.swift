/// Where event time comes from.
public enum WatermarkSource: Sendable, Equatable {
    /// From the events: the largest time seen minus the allowed lateness (spec section 3).
    case events
    /// Only from `advance(until:)`: a worker whose watermark is stamped upstream (a cluster
    /// partition). Events wait in the buffer until an advance reaches their time.
    case external
}

/// Options of a pipeline.
public struct PipelineOptions: Sendable {
    public var allowedLateness: Millis = 0
    public var dedupWindow: Millis = 86_400_000
    public var sensitive = SensitiveTags()
    public var watermark: WatermarkSource = .events
    /// Run only these rules (by id) of the catalog; nil runs all of them.
    public var rules: Set<String>?
    public init(allowedLateness: Millis = 0, dedupWindow: Millis = 86_400_000, sensitive: SensitiveTags = SensitiveTags(),
                watermark: WatermarkSource = .events, rules: Set<String>? = nil) {
        self.allowedLateness = allowedLateness
        self.dedupWindow = dedupWindow
        self.sensitive = sensitive
        self.watermark = watermark
        self.rules = rules
    }
}

/// An alert with its names resolved and its canonical line (spec section 4).
public struct NamedAlert: Sendable {
    /// The rule's position in the pipeline's rules.
    public var ruleIndex: Int
    public var rule: String
    public var severity: Severity
    public var firing: Bool
    public var time: Millis
    public var entity: String?
    public var zone: String?
    /// The pair, sorted by id.
    public var pairA: String?
    public var pairB: String?
    /// The group of a `by` rule (spec 1.3, 5b.11).
    public var group: String?
    /// The canonical NDJSON line, without its newline.
    public var line: String

    public init(ruleIndex: Int, rule: String, severity: Severity, firing: Bool, time: Millis, entity: String?, zone: String?,
                pairA: String?, pairB: String?, line: String, group: String? = nil) {
        self.group = group
        self.ruleIndex = ruleIndex
        self.rule = rule
        self.severity = severity
        self.firing = firing
        self.time = time
        self.entity = entity
        self.zone = zone
        self.pairA = pairA
        self.pairB = pairB
        self.line = line
    }
}

/// One line of a stored log, read.
public enum LogEntry {
    case event(Event)
    /// Event time moved on to this instant (`#advance`).
    case advance(Millis)
    /// Another record, a blank line, or an event that no longer decodes (erased): skipped.
    case skip
}

/// The one path from bytes to named alerts that every mode drives (`replay`, the server's
/// ingest and rebuild, backtest, the bench): decoding (NDJSON lines and JSON-array elements,
/// interning names), the engine (duplicates, watermark, timers, evaluators), the log-record
/// format, and the naming and encoding of alerts. Callers see names and texts, never the
/// engine's interned ids.
public final class Pipeline {
    let engine: Engine
    var decoder = EventDecoder(file: "events")
    let encoder = AlertEncoder()
    var drained: [Alert] = []
    public let options: PipelineOptions

    /// `symbols`: names interned beforehand (events decoded with them keep their numbers; the
    /// bench decodes once and runs many pipelines); by default none.
    /// `retiredZones`: zones a catalog change deleted, known only to name the exits it causes
    /// (`applyZoneEdits`).
    public init(zones: [Zone], retiredZones: [Zone] = [], entities: [EntityInfo], rules: [Rule], options: PipelineOptions = PipelineOptions(), symbols: Symbols? = nil) {
        self.options = options
        let run = Self.rulesToRun(rules, options)
        engine = Engine(zones: zones, retiredZones: retiredZones, entities: entities, rules: run,
                        options: EngineOptions(allowedLateness: options.allowedLateness, dedupWindow: options.dedupWindow,
                                               externalWatermark: options.watermark == .external),
                        symbols: symbols ?? Symbols(sensitive: options.sensitive))
    }

    // MARK: - The catalog it runs

    public var rules: [Rule] { engine.rules }
    public var zones: [Zone] { engine.zones }
    /// Rules evaluated once for all rules with the same definition.
    public var distinctDefinitions: Int { engine.distinctDefinitions }

    // MARK: - Decoding

    /// Decodes one event text, interning its names.
    @inline(__always)
    public func decode(_ text: UnsafeBufferPointer<UInt8>, number: Int) -> Result<Event, TriplineError> {
        decoder.decode(text, line: number, symbols: &engine.symbols)
    }

    /// Decodes a whole batch, all or nothing: the events, or every error (each located by
    /// the batch's file and the event's number). `check` may refuse a decoded event.
    public func decode(_ texts: EventTexts, check: (Event, Int) -> TriplineError? = { _, _ in nil }) -> Result<[Event], InvalidEvents> {
        decoder = EventDecoder(file: texts.file)
        var events: [Event] = []
        events.reserveCapacity(texts.count)
        let errors = decoder.decodeAll(texts, symbols: &engine.symbols, check: check) { events.append($0) }
        return errors.isEmpty ? .success(events) : .failure(InvalidEvents(errors: errors))
    }

    /// A decoder for another thread: it interns into its own copy of the names and ships what
    /// it added with each batch (`BatchDecoder.seal`), which `ingest(_:late:)` applies here.
    public func makeBatchDecoder(file: String) -> BatchDecoder { BatchDecoder(symbols: engine.symbols, file: file) }

    /// A decode stage for another thread that keeps decoding while this pipeline goes on
    /// interning names of its own: the decoder, and the engine thread's record of how the
    /// names the decoder adds map to this pipeline's (`adopt(_:from:events:)`).
    public func makeStage(file: String) -> (BatchDecoder, StageNames) {
        let d = makeBatchDecoder(file: file)
        return (d, StageNames(token: engine.indexToken, entityBase: Int32(d.counts.0), nameBase: Int32(d.counts.2)))
    }

    /// Takes in a batch a stage (`makeStage`) decoded: the entity names and other names it
    /// added are interned here, in its order. While this pipeline has interned nothing else
    /// since the stage began, they get the numbers the stage gave them and the events stay
    /// as they are; otherwise the events' names are renumbered to this pipeline's. With
    /// `events` false only the names are taken in (a batch refused as a whole; the stage's
    /// later batches count on them). False, with nothing taken in, when the stage is not
    /// this pipeline's (a catalog change replaced it) or the batch is not the stage's next:
    /// decode the batch's texts here instead.
    public func adopt(_ batch: DecodedBatch, from stage: StageNames, events: Bool = true) -> Bool {
        guard stage.token === engine.indexToken,
              batch.names.entities.firstId == Int(stage.entityBase) + stage.entities.count,
              batch.names.names.firstId == Int(stage.nameBase) + stage.names.count else { return false }
        stage.extend(&stage.entities, base: stage.entityBase, with: batch.names.entities, into: &engine.symbols.entities)
        stage.extend(&stage.names, base: stage.nameBase, with: batch.names.names, into: &engine.symbols.names)
        guard events else { return true }
        if !stage.identity { stage.renumber(batch) }
        adoptEventIds(batch)
        return true
    }

    /// Offers event `i` of an adopted batch, with the zones its `ZoneLookup` found when that
    /// lookup was this pipeline's; as `ingest(_:)` otherwise.
    @inline(__always)
    public func ingest(_ batch: DecodedBatch, at i: Int) -> IngestOutcome {
        guard batch.zonesLookedUpWith === engine.indexToken, batch.zoneStarts.count == batch.events.count + 1 else {
            return engine.ingest(batch.events[i], knownZones: nil)
        }
        return batch.zoneIds.withUnsafeBufferPointer { ids in
            engine.ingest(batch.events[i], knownZones: UnsafeBufferPointer(rebasing: ids[Int(batch.zoneStarts[i])..<Int(batch.zoneStarts[i + 1])]))
        }
    }

    // MARK: - Events and time

    @discardableResult
    public func ingest(_ ev: Event) -> IngestOutcome { engine.ingest(ev) }

    /// Offers events in order; `late` gets the position of each late one.
    public func ingest(contentsOf events: [Event], late: (Int) -> Void = { _ in }) {
        engine.ingest(contentsOf: events, late: late)
    }

    /// `ingest(contentsOf:)` over part of a buffer; `late` gets positions relative to its start.
    public func ingest(contentsOf events: Slice<UnsafeBufferPointer<Event>>, late: (Int) -> Void = { _ in }) {
        engine.ingest(contentsOf: events, late: late)
    }

    /// Decodes NDJSON text line by line (blank lines skipped), giving each result and its
    /// 1-based line number.
    public func decodeLines(_ bytes: [UInt8], _ body: (Result<Event, TriplineError>, Int) -> Void) {
        decoder.decodeLines(bytes, symbols: &engine.symbols, body)
    }

    /// Offers a batch decoded on another thread (see `makeBatchDecoder`): first the names it
    /// interned, then its events.
    public func ingest(_ batch: DecodedBatch, late: (Int) -> Void = { _ in }) {
        adopt(batch)
        batch.events.withUnsafeBufferPointer { evs in
            // Zones looked up by this pipeline's `zoneLookup` are used; any others are not.
            guard batch.zonesLookedUpWith === engine.indexToken, batch.zoneStarts.count == evs.count + 1 else {
                engine.ingest(contentsOf: evs[...], zones: nil, late: late)
                return
            }
            batch.zoneStarts.withUnsafeBufferPointer { starts in
                batch.zoneIds.withUnsafeBufferPointer { ids in
                    engine.ingest(contentsOf: evs[...], zones: (starts, ids), late: late)
                }
            }
        }
    }

    /// The zone index as a value another thread can read, to look up the zones of a batch's
    /// positions before the batch is ingested here (a stage of its own); nil when no rule
    /// reads zones.
    public var zoneLookup: ZoneLookup? {
        engine.needsZones ? ZoneLookup(index: engine.index, token: engine.indexToken) : nil
    }

    /// Positions whose zones came with their batch (`zoneLookup`) rather than being looked up
    /// by the engine.
    public var zoneLookupsGiven: Int { engine.knownZoneLookups }

    /// The names a pipeline built from these entities and rules (and any zones) starts with:
    /// a `BatchDecoder` made from them (`BatchDecoder(symbols:file:)`) can decode events
    /// before the zones are loaded. The pipeline must then be built with `symbols:` set to
    /// them; `symbolCounts` tells whether it added any.
    public static func initialSymbols(entities: [EntityInfo], rules: [Rule], options: PipelineOptions = PipelineOptions()) -> Symbols {
        let run = rulesToRun(rules, options)
        var syms = Symbols(sensitive: options.sensitive)
        // As `Engine.init` interns them: entities first, then the rules' names (which do not
        // depend on the zones).
        for e in entities { _ = syms.entities.intern(e.id) }
        _ = RulePlan(rules: run, zones: [], symbols: &syms)
        return syms
    }

    /// The rules a pipeline with `options` runs: all, or the subset `options.rules` names.
    static func rulesToRun(_ rules: [Rule], _ options: PipelineOptions) -> [Rule] {
        options.rules.map { only in rules.filter { only.contains($0.id) } } ?? rules
    }

    /// How many entity names, event ids and other names are interned.
    public var symbolCounts: (Int, Int, Int) { engine.symbols.counts }

    /// Takes in the names a batch decoded elsewhere interned; its events' given ids become
    /// this pipeline's (they are interned here, where the dedup window frees them).
    public func adopt(_ batch: DecodedBatch) {
        engine.symbols.entities.apply(batch.names.entities)
        engine.symbols.names.apply(batch.names.names)
        adoptEventIds(batch)
    }

    /// Interns a batch's given event ids here (the decoder numbers them per batch) and gives
    /// its events this pipeline's numbers for them.
    private func adoptEventIds(_ batch: DecodedBatch) {
        let idMap = engine.symbols.eventIds.internAll(batch.names.eventIds)
        if !idMap.isEmpty {
            for i in batch.events.indices where batch.events[i].givenId >= 0 {
                batch.events[i].givenId = idMap[Int(batch.events[i].givenId)]
            }
        }
    }

    /// Moves event time to `until` (an operator's advance, or idle advance): applies buffered
    /// events up to it, fires the timers due and completes every alert group up to it.
    public func advance(until: Millis) { engine.advance(until: until) }

    /// An event the gateway already accepted (cluster workers): `assigned` is the arrival
    /// number n of its id `<entity>#<n>` when it came without an id; duplicates and lateness
    /// were decided upstream.
    public func ingestAccepted(_ ev: Event, assigned: UInt32?) {
        let ref: EventRef = ev.givenId >= 0 ? .given(ev.givenId) : .assigned(entity: ev.entity, n: assigned ?? 0)
        engine.ingestAccepted(ev, ref: ref)
    }

    /// The watermark stamped upstream reached `t` (`WatermarkSource.external`): events up to
    /// `t` are applied and timers due by `t` fire, as when the events' own watermark reaches
    /// it; alerts at `t` stay open, since events at `t` may still come. Unlike `advance`, it
    /// completes only what is before `t`.
    public func watermarkReached(_ t: Millis) { engine.moveWatermark(to: t) }

    /// Ends the input: applies everything buffered and, with `until`, advances to it.
    public func finish(until: Millis? = nil) { engine.finish(until: until) }

    public var watermark: Millis { engine.watermark }
    public var maxTime: Millis { engine.maxTime }
    public var stats: EngineStats { engine.stats }
    /// Alerts emitted so far per rule (after cooldown and expiry), by rule position.
    public var alertsPerRule: [Int] { engine.alertsPerRule }
    /// Rules whose expiry the watermark has reached: (rule position, when).
    public var expiredRules: [(rule: Int, at: Millis)] { engine.expiredRules.map { (Int($0.rule), $0.at) } }

    /// Releases event ids nothing holds any more (call between batches).
    public func compactIds() { engine.compactIds() }

    // MARK: - Entities

    /// How many entity names are known.
    public var entityCount: Int { engine.symbols.entities.count }
    /// The number of a known entity name (the `entity` of decoded events), or nil.
    public func entityNumber(_ id: String) -> Int32? { engine.symbols.entities.lookup(id) }
    /// The name of an entity number.
    public func entityName(_ n: Int32) -> String { engine.symbols.entities.string(n) }
    /// The number of a known name (metric, attribute key, event type), or nil.
    public func nameNumber(_ s: String) -> Int32? { engine.symbols.names.lookup(s) }

    // MARK: - The log

    /// Reads one stored log line: an event (decoded, names interned), an advance, or a line
    /// to skip.
    public func read(logLine line: UnsafeBufferPointer<UInt8>, number: Int) -> LogEntry {
        if LogRecord.isRecord(line) { return LogRecord.advanceTime(line).map { .advance($0) } ?? .skip }
        if case .success(let ev) = decoder.decode(line, line: number, symbols: &engine.symbols) { return .event(ev) }
        return .skip
    }

    /// Applies one stored log line as the live server did; returns the event and its outcome
    /// when it was one.
    @discardableResult
    public func replay(logLine line: UnsafeBufferPointer<UInt8>, number: Int) -> (Event, IngestOutcome)? {
        switch read(logLine: line, number: number) {
        case .event(let ev): return (ev, engine.ingest(ev))
        case .advance(let t): engine.advance(until: t); return nil
        case .skip: return nil
        }
    }

    // MARK: - Zone edits

    /// A catalog change edited zones: this pipeline (built on the new zones, with the deleted
    /// ones retired, and fed the same events as `previous`) emits, at its watermark, the
    /// transitions the edits caused (docs/rules.md, "Zone edits").
    public func applyZoneEdits(_ edits: [ZoneEdit], previous: Pipeline) {
        engine.applyZoneEdits(edits, previous: previous.engine)
    }

    /// Completes the alerts of the current time now (normally they wait until the watermark
    /// moves past it): a zone edit's transitions are stored with the change.
    public func closeOpenAlerts() { engine.closeOpenAlerts() }

    // MARK: - Alerts

    /// Drops the completed alerts (a rebuild's: they were emitted before); returns how many.
    @discardableResult
    public func discardAlerts() -> Int {
        engine.drainAlerts(into: &drained)
        let n = drained.count
        drained.removeAll(keepingCapacity: true)
        return n
    }

    /// Completed alerts in canonical order, named.
    public func drainAlerts(into out: inout [NamedAlert]) {
        engine.drainAlerts(into: &drained)
        if drained.isEmpty { return }
        var buf: [UInt8] = []
        let symbols = engine.symbols
        for a in drained {
            buf.removeAll(keepingCapacity: true)
            encoder.append(a, engine: engine, symbols: symbols, to: &buf)
            buf.removeLast()  // newline
            var pairA: String?, pairB: String?
            if a.key.pairA >= 0 {
                let (x, y) = engine.sortedPair(a.key)
                pairA = engine.symbols.entities.string(x)
                pairB = engine.symbols.entities.string(y)
            }
            let rule = engine.rules[Int(a.rule)]
            out.append(NamedAlert(ruleIndex: Int(a.rule), rule: rule.id, severity: rule.severity, firing: a.firing, time: a.time,
                                  entity: a.key.entity >= 0 ? engine.symbols.entities.string(a.key.entity) : nil,
                                  zone: a.key.zone >= 0 ? engine.zones[Int(a.key.zone)].id : nil, pairA: pairA, pairB: pairB,
                                  line: String(decoding: buf, as: UTF8.self),
                                  group: a.key.group >= 0 ? engine.groupText(a.key.group) : nil))
        }
        drained.removeAll(keepingCapacity: true)
    }

    /// Completed alerts in canonical order as NDJSON lines appended to `out` (the fast path
    /// of `replay`). With `evidence`, each line also gets an `explain` object whose evidence
    /// events are the texts `evidence` returns for their refs (nil: `null`).
    public func drainAlertLines(into out: inout [UInt8], evidence: ((EventRef) -> [UInt8]?)? = nil) -> Int {
        engine.drainAlerts(into: &drained)
        let n = drained.count
        let symbols = engine.symbols
        // Read in place: `for a in drained` copied each alert out (its evidence and details
        // retained, then released).
        drained.withUnsafeBufferPointer { alerts in
            for i in alerts.indices {
                if let evidence {
                    encoder.append(alerts[i], engine: engine, symbols: symbols, to: &out) { o in self.appendExplanation(alerts[i], evidence: evidence, to: &o) }
                } else {
                    encoder.append(alerts[i], engine: engine, symbols: symbols, to: &out)
                }
            }
        }
        drained.removeAll(keepingCapacity: true)
        return n
    }

    /// `,"explain":{...}`: the rule as JSON, the window, a sentence, the evidence events.
    func appendExplanation(_ a: Alert, evidence: (EventRef) -> [UInt8]?, to out: inout [UInt8]) {
        let rule = engine.rules[Int(a.rule)]
        var pair: (String, String)?
        if a.key.pairA >= 0 {
            let (x, y) = engine.sortedPair(a.key)
            pair = (engine.symbols.entities.string(x), engine.symbols.entities.string(y))
        }
        let ex = AlertExplanation(rule: rule, firing: a.firing, time: a.time,
                                  entity: a.key.entity >= 0 ? engine.symbols.entities.string(a.key.entity) : nil,
                                  zone: a.key.zone >= 0 ? engine.zones[Int(a.key.zone)].id : nil, pair: pair, details: a.details,
                                  group: a.key.group >= 0 ? engine.groupText(a.key.group) : nil)
        out += Array(#","explain":{"rule":"#.utf8)
        out += Array(RuleEncoder.encode(rule).utf8)
        out += Array(#","window":"#.utf8)
        if let f = ex.windowFrom, let t = ex.windowTo {
            out += Array(#"{"from_exclusive":""#.utf8)
            EventTime.append(f, to: &out)
            out += Array(#"","to":""#.utf8)
            EventTime.append(t, to: &out)
            out += Array(#""}"#.utf8)
        } else {
            out += Array("null".utf8)
        }
        out += Array(#","sentence":"#.utf8)
        JSONText.appendString(ex.sentence, to: &out)
        out += Array(#","evidence_events":["#.utf8)
        for (i, r) in a.evidence.enumerated() {
            if i > 0 { out.append(44) }
            if let line = evidence(r) { out += line } else { out += Array("null".utf8) }
        }
        out += Array("]}".utf8)
    }

    // MARK: - Introspection

    /// Approximate bytes of engine state per entity seen.
    public var stateBytes: (perEntity: Int, total: Int, entities: Int) { engine.stateBytes }
    /// Engine state by part, largest first (see `Engine.stateByPart`).
    public var stateByPart: [(part: String, bytes: Int)] { engine.stateByPart }
    /// Approximate bytes of rule state by kind, largest first.
    public var ruleStateByKind: [(kind: String, bytes: Int)] { engine.ruleStateByKind }
    public var ruleStateBytes: Int { engine.ruleStateBytes }
    public var idMemoryStats: (remembered: Int, interned: Int, bytes: Int) { engine.idMemoryStats }
}

/// The events of a batch that do not decode (or that a check refused), each located.
public struct InvalidEvents: Error, Sendable {
    public var errors: [TriplineError]
}

/// Names a `BatchDecoder` interned, shipped with its batch.
public struct InternedNames: Sendable {
    public var entities: InternerDelta
    public var eventIds: InternerDelta
    public var names: InternerDelta
}

/// Events decoded on another thread, with the names interned meanwhile.
public final class DecodedBatch: @unchecked Sendable {
    public var events: [Event] = []
    public var names = InternedNames(entities: InternerDelta(firstId: 0, bytes: [], ends: []),
                                     eventIds: InternerDelta(firstId: 0, bytes: [], ends: []),
                                     names: InternerDelta(firstId: 0, bytes: [], ends: []))
    /// Filled by a `ZoneLookup`: the zones of event i are `zoneIds[zoneStarts[i]..<zoneStarts[i + 1]]`.
    public var zoneStarts: [Int32] = []
    public var zoneIds: [Int32] = []
    var zonesLookedUpWith: IndexToken?
    public init(capacity: Int = 0) { events.reserveCapacity(capacity) }
}

/// A pipeline's zone index, read on another thread (the index is immutable): looks up the
/// zones of every position of a batch, so that the engine thread does not.
public struct ZoneLookup: Sendable {
    let index: ZoneIndex
    let token: IndexToken

    /// Fills `batch.zoneStarts` and `batch.zoneIds` for its events.
    public func locate(_ batch: DecodedBatch) {
        batch.zoneStarts.removeAll(keepingCapacity: true)
        batch.zoneIds.removeAll(keepingCapacity: true)
        batch.zoneStarts.reserveCapacity(batch.events.count + 1)
        batch.zoneStarts.append(0)
        var scratch: [Int32] = []
        scratch.reserveCapacity(16)
        batch.events.withUnsafeBufferPointer { evs in
            for i in evs.indices {
                // As the engine does: the grid slot 8 positions ahead, the run of the cell 4 ahead.
                if i + 8 < evs.count && evs[i + 8].type == Symbols.positionType { index.prefetch(x: evs[i + 8].lon, y: evs[i + 8].lat) }
                if i + 4 < evs.count && evs[i + 4].type == Symbols.positionType { index.prefetchRun(x: evs[i + 4].lon, y: evs[i + 4].lat) }
                if evs[i].type == Symbols.positionType {
                    scratch.removeAll(keepingCapacity: true)
                    index.zones(coveringX: evs[i].lon, y: evs[i].lat, into: &scratch)
                    batch.zoneIds.append(contentsOf: scratch)
                }
                batch.zoneStarts.append(Int32(batch.zoneIds.count))
            }
        }
        batch.zonesLookedUpWith = token
    }
}

/// The engine thread's side of a decode stage (`Pipeline.makeStage`): the pipeline number
/// of each entity name and other name the stage's decoder added, by the decoder's number.
/// The decoder's numbers below its bases are the pipeline's own (a pipeline only adds names).
public final class StageNames {
    let token: IndexToken
    let entityBase: Int32
    let nameBase: Int32
    /// Pipeline number of decoder number `base + k`, at k.
    var entities: [Int32] = []
    var names: [Int32] = []
    /// Every decoder number so far is the pipeline's number: events need no renumbering.
    private(set) var identity = true

    init(token: IndexToken, entityBase: Int32, nameBase: Int32) {
        self.token = token
        self.entityBase = entityBase
        self.nameBase = nameBase
    }

    func extend(_ map: inout [Int32], base: Int32, with d: InternerDelta, into interner: inout Interner) {
        for id in interner.internAll(d) {
            if id != base + Int32(map.count) { identity = false }
            map.append(id)
        }
    }

    /// Renumbers a batch's events from the decoder's numbers to the pipeline's.
    func renumber(_ batch: DecodedBatch) {
        let eb = entityBase, nb = nameBase
        entities.withUnsafeBufferPointer { em in
            names.withUnsafeBufferPointer { nm in
                @inline(__always) func name(_ id: Int32) -> Int32 { id >= nb ? nm[Int(id - nb)] : id }
                for i in batch.events.indices {
                    let e = batch.events[i].entity
                    if e >= eb { batch.events[i].entity = em[Int(e - eb)] }
                    batch.events[i].type = name(batch.events[i].type)
                    if batch.events[i].metric >= 0 { batch.events[i].metric = name(batch.events[i].metric) }
                    if batch.events[i].counterpart >= 0 { batch.events[i].counterpart = name(batch.events[i].counterpart) }
                    for j in batch.events[i].attrs.indices {
                        batch.events[i].attrs[j].key = name(batch.events[i].attrs[j].key)
                        if case .string(let v) = batch.events[i].attrs[j].value { batch.events[i].attrs[j].value = .string(name(v)) }
                    }
                }
            }
        }
    }
}

/// Decodes events on a thread of its own into its own copy of a pipeline's names (see
/// `Pipeline.makeBatchDecoder`). Event ids start afresh in every batch: the pipeline interns
/// them itself.
public struct BatchDecoder {
    var symbols: Symbols
    var counts: (Int, Int, Int)
    var decoder: EventDecoder

    public init(symbols: Symbols, file: String) {
        self.symbols = symbols
        // Event ids are numbered per batch (`seal`), never by the pipeline's numbers.
        self.symbols.eventIds = Interner(capacity: 1 << 10)
        self.counts = self.symbols.counts
        self.decoder = EventDecoder(file: file)
    }

    public mutating func decode(_ text: UnsafeBufferPointer<UInt8>, number: Int) -> Result<Event, TriplineError> {
        decoder.decode(text, line: number, symbols: &symbols)
    }

    /// Decodes a whole batch into `batch`, all or nothing as `Pipeline.decode(_:check:)`
    /// (its events, or nil and every error), and seals it: a refused batch still carries the
    /// names its decoding interned, which the pipeline must take in (`adopt(_:from:events:)`).
    public mutating func decode(_ texts: EventTexts, into batch: DecodedBatch, check: (Event, Int) -> TriplineError? = { _, _ in nil }) -> InvalidEvents? {
        decoder = EventDecoder(file: texts.file)
        batch.events.removeAll(keepingCapacity: true)
        batch.events.reserveCapacity(texts.count)
        let errors = decoder.decodeAll(texts, symbols: &symbols, check: check) { batch.events.append($0) }
        if !errors.isEmpty { batch.events.removeAll() }
        seal(batch)
        return errors.isEmpty ? nil : InvalidEvents(errors: errors)
    }

    /// Hands the names interned since the last call to `batch`.
    public mutating func seal(_ batch: DecodedBatch) {
        let d = symbols.delta(since: counts)
        batch.names = InternedNames(entities: d.0, eventIds: d.1, names: d.2)
        symbols.eventIds = Interner(capacity: 1 << 10)
        counts = symbols.counts
    }
}

extension EventDecoder {
    /// Decodes every event of `texts`, interning into `symbols`: each event that decodes and
    /// that `check` does not refuse goes to `take`; returns the errors, located.
    mutating func decodeAll(_ texts: EventTexts, symbols: inout Symbols, check: (Event, Int) -> TriplineError?, take: (Event) -> Void) -> [TriplineError] {
        var errors: [TriplineError] = []
        texts.bytes.withUnsafeBufferPointer { p in
            for i in 0..<texts.count {
                switch decode(UnsafeBufferPointer(rebasing: p[texts.starts[i]..<texts.ends[i]]), line: texts.numbers[i], symbols: &symbols) {
                case .success(let e):
                    if let refused = check(e, i) { errors.append(refused) } else { take(e) }
                case .failure(let e): errors.append(e)
                }
            }
        }
        return errors
    }
}
