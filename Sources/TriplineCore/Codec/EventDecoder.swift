import Foundation

/// The hot-path NDJSON event decoder: one line of bytes to an `Event`, without Foundation's
/// JSONDecoder and without a `String` per field. Every error names the line, the JSON pointer
/// and what to do.
/// Size limits of an event's fields, in UTF-8 bytes (docs/security.md). They bound what one
/// event can make the engine and the store keep.
public enum EventLimits {
    /// `entity`, `id` and `counterpart`.
    public static let idBytes = 256
    /// `type` and `metric`.
    public static let nameBytes = 128
    /// Keys in `attrs`.
    public static let attrCount = 32
    /// An `attrs` key.
    public static let attrKeyBytes = 128
    /// An `attrs` string value.
    public static let attrValueBytes = 1024
}

public struct EventDecoder {
    public let file: String
    var scanner = JSONScanner(UnsafeBufferPointer(start: nil, count: 0))
    // Decoded bytes of the string fields (copied only when they contained escapes).
    var entityBuf: [UInt8] = [], idBuf: [UInt8] = [], typeBuf: [UInt8] = [], metricBuf: [UInt8] = [], cpBuf: [UInt8] = []

    /// Member names read by `quickField` where it knows them, and position, reading and
    /// contact events of the usual form read by `fastEvent` (false: the general loop alone,
    /// the reference the tests compare with).
    var fastPaths = true

    public init(file: String) { self.file = file }

    enum Field: UInt16 {
        case entity = 1, time = 2, id = 4, type = 8, lon = 16, lat = 32, metric = 64, value = 128, counterpart = 256, attrs = 512
        var name: String {
            switch self {
            case .entity: return "entity"
            case .time: return "time"
            case .id: return "id"
            case .type: return "type"
            case .lon: return "lon"
            case .lat: return "lat"
            case .metric: return "metric"
            case .value: return "value"
            case .counterpart: return "counterpart"
            case .attrs: return "attrs"
            }
        }
    }

    static func field(_ p: UnsafeBufferPointer<UInt8>, _ a: Int, _ b: Int) -> Field? {
        let n = b - a
        @inline(__always) func eq(_ s: StaticString) -> Bool {
            guard s.utf8CodeUnitCount == n else { return false }
            let q = s.utf8Start
            for k in 0..<n where p[a + k] != q[k] { return false }
            return true
        }
        switch n {
        case 2: return eq("id") ? .id : nil
        case 3: return eq("lon") ? .lon : (eq("lat") ? .lat : nil)
        case 4: return eq("time") ? .time : (eq("type") ? .type : nil)
        case 5: return eq("value") ? .value : (eq("attrs") ? .attrs : nil)
        case 6: return eq("entity") ? .entity : (eq("metric") ? .metric : nil)
        case 11: return eq("counterpart") ? .counterpart : nil
        default: return nil
        }
    }

    /// A member name at `at` (its opening quote) that is one of the fields of up to six
    /// letters, read as one 8-byte word: the field and the length of its quoted name. Nil
    /// for anything else (`counterpart`, unknown names, escapes, a line ending within 8
    /// bytes), which `scanString` and `field` then read; for the names it knows, they would
    /// find the same range and field.
    @inline(__always)
    static func quickField(_ p: UnsafeBufferPointer<UInt8>, _ at: Int) -> (Field, Int)? {
        guard at &+ 8 <= p.count, let base = p.baseAddress else { return nil }
        let w = UInt64(littleEndian: UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self))
        switch w >> 8 & 0xFF {
        case 0x65: return w == 0x2279_7469_746E_6522 ? (.entity, 8) : nil
        case 0x74:
            if w & 0xFFFF_FFFF_FFFF == 0x2265_6D69_7422 { return (.time, 6) }
            return w & 0xFFFF_FFFF_FFFF == 0x2265_7079_7422 ? (.type, 6) : nil
        case 0x6C:
            if w & 0xFF_FFFF_FFFF == 0x22_6E6F_6C22 { return (.lon, 5) }
            return w & 0xFF_FFFF_FFFF == 0x22_7461_6C22 ? (.lat, 5) : nil
        case 0x69: return w & 0xFFFF_FFFF == 0x2264_6922 ? (.id, 4) : nil
        case 0x6D: return w == 0x2263_6972_7465_6D22 ? (.metric, 8) : nil
        case 0x76: return w & 0xFF_FFFF_FFFF_FFFF == 0x22_6575_6C61_7622 ? (.value, 7) : nil
        case 0x61: return w & 0xFF_FFFF_FFFF_FFFF == 0x22_7372_7474_6122 ? (.attrs, 7) : nil
        default: return nil
        }
    }

    /// The three built-in types without hashing.
    @inline(__always)
    static func knownType(_ p: UnsafeBufferPointer<UInt8>, _ r: (Int, Int)) -> Int32? {
        let n = r.1 - r.0
        @inline(__always) func eq(_ s: StaticString) -> Bool {
            guard s.utf8CodeUnitCount == n else { return false }
            let q = s.utf8Start
            for k in 0..<n where p[r.0 + k] != q[k] { return false }
            return true
        }
        if eq("position") { return Symbols.positionType }
        if eq("reading") { return Symbols.readingType }
        if eq("contact") { return Symbols.contactType }
        return nil
    }

    func error(_ line: Int, _ pointer: String, _ message: String, column: Int = 0, code: TriplineError.Code = .invalidValue) -> TriplineError {
        TriplineError(code, message, at: SourceLocation(file: file, line: line, column: column, pointer: pointer))
    }

    /// A position, reading or contact event written as `tripline generate` and most
    /// producers write it: `{"entity":"…","time":<digits>,"type":"position","lon":<number>,
    /// "lat":<number>}`, `…"type":"reading","metric":"…","value":<number>}` or
    /// `…"type":"contact","counterpart":"…"}`, with no spaces, escapes, other members or other
    /// order, strings plain ASCII and time at most 15 digits. Read without the general loop
    /// (most events are of these forms). Nil for anything else, and the general loop decides,
    /// errors included; for a line read here it would give the same event (the same checks:
    /// strings non-empty within their limits, time a whole number in bounds without leading
    /// zeros, numbers finite, lon and lat in range; names interned in the same order).
    mutating func fastEvent(_ bytes: UnsafeBufferPointer<UInt8>, symbols: inout Symbols) -> Event? {
        guard let base = bytes.baseAddress else { return nil }
        let n = bytes.count
        var i = 0
        @inline(__always) func literal(_ s: StaticString) -> Bool {
            let m = s.utf8CodeUnitCount
            guard i &+ m <= n, memcmp(base + i, s.utf8Start, m) == 0 else { return false }
            i &+= m
            return true
        }
        /// A string's bytes up to its closing quote (the cursor after the quote), when plain
        /// ASCII, not empty and at most `limit` bytes.
        @inline(__always) func plainString(_ limit: Int) -> Range<Int>? {
            let start = i
            while i < n {
                let c = base[i]
                if c == 34 { break }
                if c < 32 || c == 92 || c >= 0x80 { return nil }
                i &+= 1
            }
            guard i < n, i > start, i - start <= limit else { return nil }
            i &+= 1
            return start..<(i - 1)
        }
        /// A number that `decode` accepts for lon, lat or value (finite).
        @inline(__always) func number() -> Double? {
            scanner.i = i
            guard let c = scanner.peek(), c == 45 || (c >= 48 && c <= 57),
                  case .success(let (v, _)) = scanner.scanNumber(), v.isFinite else { return nil }
            i = scanner.i
            return v
        }
        guard literal("{\"entity\":\""), let entity = plainString(EventLimits.idBytes), literal(",\"time\":") else { return nil }
        let timeStart = i
        var time: Millis = 0
        while i < n, base[i] >= 48, base[i] <= 57, i - timeStart < 15 {
            time = time &* 10 &+ Millis(base[i] &- 48)
            i &+= 1
        }
        let digits = i - timeStart
        guard digits >= 1, !(digits > 1 && base[timeStart] == 48), time <= TimeBounds.maxTime,
              literal(",\"type\":\"") else { return nil }
        scanner = JSONScanner(bytes)
        /// The cursor is on the line's last byte, the object's closing brace.
        @inline(__always) func ends() -> Bool { i &+ 1 == n && base[i] == 125 }
        if literal("position\",\"lon\":") {
            guard let lon = number(), lon >= -180, lon <= 180, literal(",\"lat\":"),
                  let lat = number(), lat >= -90, lat <= 90, ends() else { return nil }
            var ev = Event(entity: symbols.entities.intern(UnsafeBufferPointer(rebasing: bytes[entity])), time: time, type: Symbols.positionType)
            ev.lon = lon
            ev.lat = lat
            return ev
        }
        if literal("reading\",\"metric\":\"") {
            guard let metric = plainString(EventLimits.nameBytes), literal(",\"value\":"), let value = number(), ends() else { return nil }
            var ev = Event(entity: symbols.entities.intern(UnsafeBufferPointer(rebasing: bytes[entity])), time: time, type: Symbols.readingType)
            ev.metric = symbols.names.intern(UnsafeBufferPointer(rebasing: bytes[metric]))
            ev.value = value
            return ev
        }
        if literal("contact\",\"counterpart\":\"") {
            guard let counterpart = plainString(EventLimits.idBytes), ends() else { return nil }
            var ev = Event(entity: symbols.entities.intern(UnsafeBufferPointer(rebasing: bytes[entity])), time: time, type: Symbols.contactType)
            ev.counterpart = symbols.names.intern(UnsafeBufferPointer(rebasing: bytes[counterpart]))
            return ev
        }
        return nil
    }

    /// Decodes one line (without its newline). `line` is its 1-based number, for messages.
    public mutating func decode(_ bytes: UnsafeBufferPointer<UInt8>, line: Int, symbols: inout Symbols) -> Result<Event, TriplineError> {
        if fastPaths, let ev = fastEvent(bytes, symbols: &symbols) { return .success(ev) }
        scanner = JSONScanner(bytes)
        var seen: UInt16 = 0
        var entity: (Int, Int) = (0, 0), id: (Int, Int) = (0, 0), type: (Int, Int) = (0, 0), metric: (Int, Int) = (0, 0), cp: (Int, Int) = (0, 0)
        var entityEsc = false, idEsc = false, typeEsc = false, metricEsc = false, cpEsc = false
        var time: Millis = 0, lon = 0.0, lat = 0.0, value = 0.0
        var attrs: [Attr] = []
        func syntax(_ e: ScanError) -> TriplineError {
            let truncated = scanner.i >= bytes.count ? " (the line ends early: is it truncated?)" : ""
            return error(line, "", "invalid JSON: \(e.message)\(truncated)", column: e.offset + 1, code: .syntax)
        }
        scanner.skipWhitespace()
        guard scanner.peek() == 123 else {
            return .failure(error(line, "", "an event must be a JSON object on one line, found \(scanner.describeHere())", column: scanner.i + 1, code: .syntax))
        }
        scanner.i += 1
        scanner.skipWhitespace()
        if scanner.peek() == 125 {
            scanner.i += 1
        } else {
            while true {
                scanner.skipWhitespace()
                let keyStart = scanner.i
                let keyRange: (Int, Int)
                let quick = fastPaths ? EventDecoder.quickField(bytes, keyStart) : nil
                if let (_, n) = quick {
                    keyRange = (keyStart + 1, keyStart + n - 1)
                    scanner.i = keyStart + n
                } else {
                    switch scanner.scanString() {
                    case .success(.raw(let a, let b)): keyRange = (a, b)
                    case .success(.unescaped):
                        return .failure(error(line, "", "escaped characters in member names are not supported", column: keyStart + 1, code: .syntax))
                    case .failure(let e): return .failure(syntax(e))
                    }
                }
                scanner.skipWhitespace()
                guard scanner.peek() == 58 else {
                    return .failure(error(line, "", "invalid JSON: expected ':' after member name, found \(scanner.describeHere())", column: scanner.i + 1, code: .syntax))
                }
                scanner.i += 1
                scanner.skipWhitespace()
                guard let f = quick?.0 ?? EventDecoder.field(bytes, keyRange.0, keyRange.1) else {
                    let key = String(decoding: UnsafeBufferPointer(rebasing: bytes[keyRange.0..<keyRange.1]), as: UTF8.self)
                    return .failure(error(line, "/" + pointerToken(key), "unknown field \"\(key)\"; an event has entity, time, type, id, lon, lat, metric, value, counterpart and attrs (put extra data in attrs)", column: keyStart + 1, code: .unknownField))
                }
                if seen & f.rawValue != 0 {
                    return .failure(error(line, "/" + f.name, "duplicate field \"\(f.name)\"", column: keyStart + 1, code: .syntax))
                }
                seen |= f.rawValue
                let valueStart = scanner.i
                switch f {
                case .entity, .id, .type, .metric, .counterpart:
                    guard scanner.peek() == 34 else {
                        if let e = scanner.skipValue() { return .failure(syntax(e)) }
                        return .failure(error(line, "/" + f.name, "\"\(f.name)\" must be a string", column: valueStart + 1))
                    }
                    var range = (0, 0), esc = false
                    switch scanner.scanString() {
                    case .success(.raw(let a, let b)): range = (a, b)
                    case .success(.unescaped):
                        esc = true
                        switch f {
                        case .entity: entityBuf = scanner.scratch
                        case .id: idBuf = scanner.scratch
                        case .type: typeBuf = scanner.scratch
                        case .metric: metricBuf = scanner.scratch
                        default: cpBuf = scanner.scratch
                        }
                    case .failure(let e): return .failure(syntax(e))
                    }
                    if !esc && range.0 == range.1 {
                        return .failure(error(line, "/" + f.name, "\"\(f.name)\" must not be empty", column: valueStart + 1))
                    }
                    let limit = (f == .type || f == .metric) ? EventLimits.nameBytes : EventLimits.idBytes
                    let length = esc ? scanner.scratch.count : range.1 - range.0
                    if length > limit {
                        return .failure(error(line, "/" + f.name, "\"\(f.name)\" is \(length) bytes long; at most \(limit) are accepted", column: valueStart + 1))
                    }
                    switch f {
                    case .entity: entity = range; entityEsc = esc
                    case .id: id = range; idEsc = esc
                    case .type: type = range; typeEsc = esc
                    case .metric: metric = range; metricEsc = esc
                    default: cp = range; cpEsc = esc
                    }
                case .time:
                    if scanner.peek() == 34 {
                        guard case .success(.raw(let a, let b)) = scanner.scanString() else {
                            return .failure(error(line, "/time", "time must be RFC 3339 (e.g. 2026-03-01T08:00:00Z) or epoch milliseconds", column: valueStart + 1))
                        }
                        switch EventTime.parseRFC3339(UnsafeBufferPointer(rebasing: bytes[a..<b])) {
                        case .success(let t): time = t
                        case .failure(.malformed(let why)):
                            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[a..<b]), as: UTF8.self)
                            return .failure(error(line, "/time", "time \"\(text)\" is not RFC 3339: \(why)", column: valueStart + 1))
                        }
                    } else {
                        switch scanner.scanNumber() {
                        case .failure(let e): return .failure(syntax(e))
                        case .success(let (v, isInt)):
                            guard isInt, let t = EventTime.fromNumber(v) else {
                                return .failure(error(line, "/time", "time \(v) must be a whole number of epoch milliseconds from 0 to \(TimeBounds.maxTime) (year 9999), or an RFC 3339 string", column: valueStart + 1))
                            }
                            time = t
                        }
                    }
                case .lon, .lat, .value:
                    let c = scanner.peek()
                    guard let c, c == 45 || (c >= 48 && c <= 57) else {
                        if c == 78 || c == 73 || (c == 45 && valueStart + 1 < bytes.count && bytes[valueStart + 1] == 73) {
                            return .failure(error(line, "/" + f.name, "\(f.name) must be a finite number; NaN and Infinity are not allowed", column: valueStart + 1))
                        }
                        if c == 34 {
                            return .failure(error(line, "/" + f.name, "\(f.name) must be a number, not a string (remove the quotes)", column: valueStart + 1))
                        }
                        if let e = scanner.skipValue() { return .failure(syntax(e)) }
                        return .failure(error(line, "/" + f.name, "\(f.name) must be a number", column: valueStart + 1))
                    }
                    switch scanner.scanNumber() {
                    case .failure(let e): return .failure(syntax(e))
                    case .success(let (v, _)):
                        guard v.isFinite else {
                            return .failure(error(line, "/" + f.name, "\(f.name) is too large to be a finite number", column: valueStart + 1))
                        }
                        if f == .lon { lon = v } else if f == .lat { lat = v } else { value = v }
                    }
                case .attrs:
                    switch decodeAttrs(line, &attrs, &symbols) {
                    case .failure(let e): return .failure(e)
                    case .success: break
                    }
                }
                scanner.skipWhitespace()
                guard let d = scanner.peek() else {
                    return .failure(error(line, "", "invalid JSON: the line ends inside the object (missing '}'); is it truncated?", column: scanner.i + 1, code: .syntax))
                }
                scanner.i += 1
                if d == 125 { break }
                if d != 44 {
                    return .failure(error(line, "", "invalid JSON: expected ',' or '}', found \(Character(UnicodeScalar(d)))", column: scanner.i, code: .syntax))
                }
            }
        }
        scanner.skipWhitespace()
        if !scanner.atEnd {
            return .failure(error(line, "", "unexpected \(scanner.describeHere()) after the event object: one event per line", column: scanner.i + 1, code: .syntax))
        }
        // Required fields.
        for f in [Field.entity, .time, .type] where seen & f.rawValue == 0 {
            return .failure(error(line, "", "event is missing required field \"\(f.name)\"", code: .missingField))
        }
        func bytesOf(_ r: (Int, Int), _ esc: Bool, _ buf: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) -> Int32) -> Int32 {
            if esc { return buf.withUnsafeBufferPointer(body) }
            return body(UnsafeBufferPointer(rebasing: bytes[r.0..<r.1]))
        }
        let typeId = typeEsc ? typeBuf.withUnsafeBufferPointer { symbols.names.intern($0) } : EventDecoder.knownType(bytes, type) ?? symbols.names.intern(UnsafeBufferPointer(rebasing: bytes[type.0..<type.1]))
        // Per-type fields.
        let allowedForType: UInt16
        switch typeId {
        case Symbols.positionType:
            for f in [Field.lon, .lat] where seen & f.rawValue == 0 {
                return .failure(error(line, "", "a position event needs \"\(f.name)\"", code: .missingField))
            }
            guard lon >= -180 && lon <= 180 else {
                return .failure(error(line, "/lon", "lon \(lon) is out of range [-180, 180] (lon is the longitude; are lon and lat swapped?)"))
            }
            guard lat >= -90 && lat <= 90 else {
                return .failure(error(line, "/lat", "lat \(lat) is out of range [-90, 90] (lat is the latitude; are lon and lat swapped?)"))
            }
            allowedForType = Field.lon.rawValue | Field.lat.rawValue
        case Symbols.readingType:
            for f in [Field.metric, .value] where seen & f.rawValue == 0 {
                return .failure(error(line, "", "a reading event needs \"\(f.name)\"", code: .missingField))
            }
            allowedForType = Field.metric.rawValue | Field.value.rawValue
        case Symbols.contactType:
            if seen & Field.counterpart.rawValue == 0 {
                return .failure(error(line, "", "a contact event needs \"counterpart\"", code: .missingField))
            }
            allowedForType = Field.counterpart.rawValue
        default:
            allowedForType = 0
        }
        let typeSpecific = Field.lon.rawValue | Field.lat.rawValue | Field.metric.rawValue | Field.value.rawValue | Field.counterpart.rawValue
        let extra = seen & typeSpecific & ~allowedForType
        if extra != 0 {
            for f in [Field.lon, .lat, .metric, .value, .counterpart] where extra & f.rawValue != 0 {
                let typeName = symbols.names.string(typeId)
                let owner = (f == .lon || f == .lat) ? "position" : (f == .counterpart ? "contact" : "reading")
                return .failure(error(line, "/" + f.name, "\"\(f.name)\" belongs to \(owner) events, not to type \"\(typeName)\"; put custom data in attrs"))
            }
        }
        var ev = Event(entity: bytesOf(entity, entityEsc, entityBuf) { symbols.entities.intern($0) }, time: time, type: typeId)
        if seen & Field.id.rawValue != 0 { ev.givenId = bytesOf(id, idEsc, idBuf) { symbols.eventIds.intern($0) } }
        if typeId == Symbols.positionType { ev.lon = lon; ev.lat = lat }
        if typeId == Symbols.readingType { ev.metric = bytesOf(metric, metricEsc, metricBuf) { symbols.names.intern($0) }; ev.value = value }
        if typeId == Symbols.contactType { ev.counterpart = bytesOf(cp, cpEsc, cpBuf) { symbols.names.intern($0) } }
        ev.attrs = attrs
        return .success(ev)
    }

    func tooLong(_ line: Int, _ at: Int) -> TriplineError {
        error(line, "/attrs", "an attrs key is longer than \(EventLimits.attrKeyBytes) bytes, the most accepted", column: at + 1)
    }

    mutating func decodeAttrs(_ line: Int, _ attrs: inout [Attr], _ symbols: inout Symbols) -> Result<Void, TriplineError> {
        let start = scanner.i
        guard scanner.peek() == 123 else {
            if let e = scanner.skipValue() { return .failure(error(line, "", "invalid JSON: \(e.message)", column: e.offset + 1, code: .syntax)) }
            return .failure(error(line, "/attrs", "attrs must be an object of string, number or boolean values", column: start + 1))
        }
        scanner.i += 1
        scanner.skipWhitespace()
        if scanner.peek() == 125 { scanner.i += 1; return .success(()) }
        while true {
            scanner.skipWhitespace()
            let keyAt = scanner.i
            let key: Int32
            if attrs.count >= EventLimits.attrCount {
                return .failure(error(line, "/attrs", "attrs has more than \(EventLimits.attrCount) keys; at most \(EventLimits.attrCount) are accepted", column: keyAt + 1))
            }
            switch scanner.scanString() {
            case .success(.raw(let a, let b)):
                if b - a > EventLimits.attrKeyBytes { return .failure(tooLong(line, keyAt)) }
                key = symbols.names.intern(UnsafeBufferPointer(rebasing: scanner.bytes[a..<b]))
            case .success(.unescaped):
                if scanner.scratch.count > EventLimits.attrKeyBytes { return .failure(tooLong(line, keyAt)) }
                key = scanner.scratch.withUnsafeBufferPointer { symbols.names.intern($0) }
            case .failure(let e): return .failure(error(line, "/attrs", "invalid JSON: \(e.message)", column: e.offset + 1, code: .syntax))
            }
            // The key's text and pointer are made only for a message (not per attribute).
            var keyName: String { symbols.names.string(key) }
            var pointer: String { "/attrs/" + pointerToken(keyName) }
            if symbols.isSensitiveKey(key) {
                return .failure(error(line, pointer, "attribute \"\(keyName)\" is a sensitive category and is refused (spec section 6): Tripline does not collect it; remove it from the event", column: keyAt + 1, code: .sensitiveTag))
            }
            if attrs.contains(where: { $0.key == key }) {
                return .failure(error(line, pointer, "duplicate attribute \"\(keyName)\"", column: keyAt + 1, code: .syntax))
            }
            scanner.skipWhitespace()
            guard scanner.peek() == 58 else {
                return .failure(error(line, "/attrs", "invalid JSON: expected ':' after attribute name", column: scanner.i + 1, code: .syntax))
            }
            scanner.i += 1
            scanner.skipWhitespace()
            let vAt = scanner.i
            switch scanner.peek() {
            case 34:
                switch scanner.scanString() {
                case .success(.raw(let a, let b)):
                    if b - a > EventLimits.attrValueBytes { return .failure(error(line, pointer, "attribute \"\(keyName)\" is longer than \(EventLimits.attrValueBytes) bytes, the most accepted", column: vAt + 1)) }
                    attrs.append(Attr(key: key, value: .string(symbols.names.intern(UnsafeBufferPointer(rebasing: scanner.bytes[a..<b])))))
                case .success(.unescaped):
                    if scanner.scratch.count > EventLimits.attrValueBytes { return .failure(error(line, pointer, "attribute \"\(keyName)\" is longer than \(EventLimits.attrValueBytes) bytes, the most accepted", column: vAt + 1)) }
                    attrs.append(Attr(key: key, value: .string(scanner.scratch.withUnsafeBufferPointer { symbols.names.intern($0) })))
                case .failure(let e): return .failure(error(line, pointer, "invalid JSON: \(e.message)", column: e.offset + 1, code: .syntax))
                }
            case 116, 102:
                let isTrue = scanner.peek() == 116
                guard scanner.scanLiteral(isTrue ? "true" : "false") else {
                    return .failure(error(line, pointer, "invalid JSON literal", column: vAt + 1, code: .syntax))
                }
                attrs.append(Attr(key: key, value: .bool(isTrue)))
            case .some(let c) where c == 45 || (c >= 48 && c <= 57):
                switch scanner.scanNumber() {
                case .success(let (v, _)) where v.isFinite: attrs.append(Attr(key: key, value: .number(v)))
                case .success: return .failure(error(line, pointer, "attribute number is too large", column: vAt + 1))
                case .failure(let e): return .failure(error(line, pointer, "invalid JSON: \(e.message)", column: e.offset + 1, code: .syntax))
                }
            default:
                if let e = scanner.skipValue() { return .failure(error(line, pointer, "invalid JSON: \(e.message)", column: e.offset + 1, code: .syntax)) }
                return .failure(error(line, pointer, "attribute values must be strings, numbers or booleans", column: vAt + 1))
            }
            scanner.skipWhitespace()
            guard let d = scanner.peek() else {
                return .failure(error(line, "/attrs", "invalid JSON: the line ends inside attrs (missing '}')", column: scanner.i + 1, code: .syntax))
            }
            scanner.i += 1
            if d == 125 { return .success(()) }
            if d != 44 { return .failure(error(line, "/attrs", "invalid JSON: expected ',' or '}' in attrs", column: scanner.i, code: .syntax)) }
        }
    }
}

extension EventDecoder {
    /// Decodes every newline-terminated line of an in-memory NDJSON buffer, in order, handing
    /// each result and its 1-based line number to `body`.
    public mutating func decodeLines(_ bytes: [UInt8], symbols: inout Symbols, _ body: (Result<Event, TriplineError>, Int) -> Void) {
        bytes.withUnsafeBufferPointer { p in
            var start = 0
            var line = 0
            while true {
                let i = NDJSON.nextNewline(p, from: start)
                if i == p.count { break }
                line += 1
                body(decode(UnsafeBufferPointer(rebasing: p[start..<i]), line: line, symbols: &symbols), line)
                start = i + 1
            }
        }
    }
}
