import Foundation

/// Decodes zones from a GeoJSON FeatureCollection (spec section 1), validating every feature
/// and reporting all problems at once.
public enum ZoneCodec {
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[Zone], TriplineErrors> {
        let doc: DocNode
        // Positions as `.pair` nodes: most of a GeoJSON file, and each was an array of two
        // nodes to allocate and free; every reading below takes arrays through `elements`.
        switch JSONDocumentParser.parse(bytes, file: file, compactPairs: true) {
        case .success(let d): doc = d
        case .failure(let e): return .failure(TriplineErrors([e]))
        }
        return decode(doc, file: file, sensitive: sensitive)
    }

    public static func decode(_ text: String, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[Zone], TriplineErrors> {
        var t = text
        return t.withUTF8 { decode($0, file: file, sensitive: sensitive) }
    }

    public static func decode(_ doc: DocNode, file: String, sensitive: SensitiveTags) -> Result<[Zone], TriplineErrors> {
        var r = DocReader(file: file)
        guard doc.members != nil, doc["type"]?.stringValue == "FeatureCollection", let features = doc["features"] else {
            r.fail(doc, "", "zones must be a GeoJSON FeatureCollection: {\"type\": \"FeatureCollection\", \"features\": [...]}")
            return .failure(TriplineErrors(r.errors))
        }
        guard let list = features.elements else {
            r.fail(features, "/features", "\"features\" must be an array, found \(features.typeName)")
            return .failure(TriplineErrors(r.errors))
        }
        var zones: [Zone] = []
        var seen: [String: Int] = [:]
        let decoded = decodeFeatures(list, file: file, sensitive: sensitive)
        for (i, f) in list.enumerated() {
            let p = "/features/\(i)"
            r.errors += decoded[i].errors
            if let z = decoded[i].zone {
                if let prev = seen[z.id] {
                    r.fail(f, p + "/properties/id", "duplicate zone id \"\(z.id)\" (first used by feature \(prev)); zone ids must be unique", code: .duplicateId)
                } else {
                    seen[z.id] = i
                    zones.append(z)
                }
            }
        }
        return r.errors.isEmpty ? .success(zones) : .failure(TriplineErrors(r.errors))
    }

    /// Each feature read and validated on its own (`feature`), with its errors, in document
    /// order. A file of many features is shared among the cores (validation is most of
    /// the work and features are independent): a replay loads its zones before its first
    /// event, and the thread that reads the events has little to do until then.
    static func decodeFeatures(_ list: [DocNode], file: String, sensitive: SensitiveTags) -> [(zone: Zone?, errors: [TriplineError])] {
        ParallelMap.map(Array(list.indices)) { i in
            var r = DocReader(file: file)
            let z = feature(list[i], "/features/\(i)", &r, sensitive)
            return (z, r.errors)
        }
    }

    public static func feature(_ f: DocNode, _ p: String, _ r: inout DocReader, _ sensitive: SensitiveTags) -> Zone? {
        guard f.members != nil else { r.fail(f, p, "a feature must be an object, found \(f.typeName)"); return nil }
        guard f["type"]?.stringValue == "Feature" else { r.fail(f, p + "/type", "expected \"type\": \"Feature\""); return nil }
        guard let props = f["properties"], props.members != nil else {
            r.fail(f, p + "/properties", "a zone needs \"properties\" with \"id\" and \"category\"", code: .missingField)
            return nil
        }
        let pp = p + "/properties"
        let before = r.errors.count
        var id: String?
        if let n = props["id"] { id = r.string(n, pp + "/id", what: "zone id") } else {
            r.fail(props, pp, "zone is missing \"id\" in its properties", code: .missingField)
        }
        var category: String?
        if let n = props["category"] { category = r.string(n, pp + "/category", what: "zone category") } else {
            r.fail(props, pp, "zone \(id.map { "\"\($0)\" " } ?? "")is missing \"category\" in its properties (e.g. \"depot\")", code: .missingField)
        }
        var tags: [String: String] = [:]
        if let n = props["tags"] { tags = r.stringMap(n, pp + "/tags", what: "zone tags", sensitive: sensitive) ?? [:] }
        // Other properties are kept as given (GeoJSON tools add their own), so a sensitive
        // key is refused there too.
        for m in props.members ?? [] where sensitive.isSensitive(m.key) {
            r.fail(m.node, pp + "/" + pointerToken(m.key), "property \"\(m.key)\" is a sensitive category and is refused: Tripline does not collect it (spec section 6); remove it", code: .sensitiveTag)
        }
        guard let geom = f["geometry"], geom.members != nil else {
            r.fail(f, p + "/geometry", "a zone needs a geometry (Polygon, MultiPolygon, or Point with radius_m)", code: .missingField)
            return nil
        }
        guard let shape = shape(geom, p + "/geometry", props: props, pp, &r) else { return nil }
        guard r.errors.count == before, let id, let category else { return nil }
        return Zone(id: id, category: category, tags: tags, shape: shape)
    }

    /// The shape of a GeoJSON geometry: Polygon, MultiPolygon, or (with `props` holding
    /// `radius_m`) Point as a circle; validated as zones are.
    static func shape(_ geom: DocNode, _ gp: String, props: DocNode?, _ pp: String, _ r: inout DocReader) -> ZoneShape? {
        guard let type = geom["type"]?.stringValue else {
            r.fail(geom, gp + "/type", "geometry needs a \"type\"", code: .missingField)
            return nil
        }
        guard let coords = geom["coordinates"] else {
            r.fail(geom, gp + "/coordinates", "geometry needs \"coordinates\"", code: .missingField)
            return nil
        }
        let cp = gp + "/coordinates"
        switch type {
        case "Point":
            guard let (x, y) = position(coords, cp, &r) else { return nil }
            guard let props else {
                r.fail(geom, gp + "/type", "a Point is a circle only with \"radius_m\": send a Feature whose properties hold radius_m")
                return nil
            }
            guard let rn = props["radius_m"] else {
                r.fail(props, pp, "a Point zone is a circle and needs \"radius_m\" (> 0) in its properties", code: .missingField)
                return nil
            }
            guard let rad = r.number(rn, pp + "/radius_m", what: "radius_m") else { return nil }
            guard rad > 0 else { r.fail(rn, pp + "/radius_m", "radius_m must be greater than 0, found \(rad)"); return nil }
            return .circle(lon: x, lat: y, radiusM: rad)
        case "Polygon":
            guard let poly = polygon(coords, cp, &r) else { return nil }
            if let msg = PolygonValidation.validate([poly]) {
                r.fail(geom, gp, "invalid polygon: \(msg)", code: .invalidGeometry)
                return nil
            }
            return .polygons([poly])
        case "MultiPolygon":
            guard let parts = coords.elements else { r.fail(coords, cp, "MultiPolygon coordinates must be an array of polygons"); return nil }
            if parts.isEmpty { r.fail(coords, cp, "MultiPolygon has no polygons"); return nil }
            var polys: [Polygon] = []
            for (k, part) in parts.enumerated() {
                guard let poly = polygon(part, cp + "/\(k)", &r) else { return nil }
                polys.append(poly)
            }
            if let msg = PolygonValidation.validate(polys) {
                r.fail(geom, gp, "invalid multipolygon: \(msg)", code: .invalidGeometry)
                return nil
            }
            return .polygons(polys)
        default:
            r.fail(geom, gp + "/type", "geometry type \"\(type)\" is not a zone: use Polygon, MultiPolygon, or Point with radius_m")
            return nil
        }
    }

    /// A query's area: a GeoJSON Polygon or MultiPolygon geometry, or a Feature holding one
    /// (or a Point with `radius_m` in its properties). Errors carry JSON pointers.
    public static func queryShape(_ doc: DocNode, file: String) -> Result<ZoneShape, TriplineErrors> {
        var r = DocReader(file: file)
        guard doc.members != nil else {
            r.fail(doc, "", "send a GeoJSON Polygon or MultiPolygon geometry, or a Feature holding one")
            return .failure(TriplineErrors(r.errors))
        }
        let shape: ZoneShape?
        if doc["type"]?.stringValue == "Feature" {
            guard r.object(doc, "", allowed: ["type", "geometry", "properties", "id", "bbox"], what: "the Feature") != nil else { return .failure(TriplineErrors(r.errors)) }
            guard let geom = doc["geometry"], geom.members != nil else {
                r.fail(doc, "/geometry", "the Feature needs a geometry (Polygon, MultiPolygon, or Point with radius_m)", code: .missingField)
                return .failure(TriplineErrors(r.errors))
            }
            guard r.object(geom, "/geometry", allowed: ["type", "coordinates", "bbox"], what: "the geometry") != nil else { return .failure(TriplineErrors(r.errors)) }
            let props = doc["properties"].flatMap { $0.members != nil ? $0 : nil }
            shape = Self.shape(geom, "/geometry", props: props, "/properties", &r)
        } else {
            guard r.object(doc, "", allowed: ["type", "coordinates", "bbox"], what: "the geometry") != nil else { return .failure(TriplineErrors(r.errors)) }
            shape = Self.shape(doc, "", props: nil, "/properties", &r)
        }
        guard r.errors.isEmpty, let shape else { return .failure(TriplineErrors(r.errors)) }
        return .success(shape)
    }

    static func position(_ n: DocNode, _ p: String, _ r: inout DocReader) -> (Double, Double)? {
        guard let a = n.elements, a.count >= 2, a.count <= 3 else {
            r.fail(n, p, "a position must be [longitude, latitude], found \(n.typeName)")
            return nil
        }
        guard var x = a[0].numberValue else { r.fail(a[0], p + "/0", "longitude must be a number, found \(a[0].typeName)"); return nil }
        guard let y = a[1].numberValue else { r.fail(a[1], p + "/1", "latitude must be a number, found \(a[1].typeName)"); return nil }
        if x > 180 && x <= 180 + 1e-9 { x = 180 }
        if x < -180 && x >= -180 - 1e-9 { x = -180 }
        guard x.isFinite, x >= -180, x <= 180 else {
            r.fail(a[0], p + "/0", "longitude \(x) is out of range [-180, 180] (positions are [longitude, latitude])")
            return nil
        }
        guard y.isFinite, y >= -90, y <= 90 else {
            r.fail(a[1], p + "/1", "latitude \(y) is out of range [-90, 90] (positions are [longitude, latitude]; are they swapped?)")
            return nil
        }
        return (x, y)
    }

    /// The position `n` when it is one `position` accepts as it is (no error, no clamping);
    /// otherwise nil, and `position` decides (and reports).
    @inline(__always)
    static func validPosition(_ n: DocNode) -> (Double, Double)? {
        if case .pair(let x, let y, _) = n.value {
            guard x >= -180, x <= 180, y >= -90, y <= 90 else { return nil }
            return (x, y)
        }
        guard case .array(let a) = n.value, a.count == 2 || a.count == 3,
              case .number(let x, _) = a[0].value, case .number(let y, _) = a[1].value,
              x >= -180, x <= 180, y >= -90, y <= 90 else { return nil }
        return (x, y)
    }

    static func polygon(_ n: DocNode, _ p: String, _ r: inout DocReader) -> Polygon? {
        guard let rings = n.elements, !rings.isEmpty else {
            r.fail(n, p, "a polygon must be a non-empty array of rings")
            return nil
        }
        var out: [Ring] = []
        for (k, ringNode) in rings.enumerated() {
            // JSON pointers are built only for a message (a country has thousands of positions).
            guard let pts = ringNode.elements else { r.fail(ringNode, p + "/\(k)", "a ring must be an array of positions"); return nil }
            var points: [(Double, Double)] = []
            points.reserveCapacity(pts.count)
            for j in pts.indices {
                if let xy = validPosition(pts[j]) {
                    points.append(xy)
                } else {
                    guard let xy = position(pts[j], p + "/\(k)/\(j)", &r) else { return nil }
                    points.append(xy)
                }
            }
            let rp = p + "/\(k)"
            if points.count < 4 {
                r.fail(ringNode, rp, "ring \(k) has \(points.count) positions; a ring needs at least 4 (the last repeating the first)", code: .invalidGeometry)
                return nil
            }
            if points.first! != points.last! {
                r.fail(ringNode, rp, "ring \(k) is not closed: its last position must repeat the first \(points.first!)", code: .invalidGeometry)
                return nil
            }
            out.append(Ring(points: points))
        }
        return Polygon(shell: out[0], holes: Array(out.dropFirst()))
    }
}

/// Decodes entities from NDJSON: `{"id": "truck-17", "kind": "truck", "tags": {"cargo": "hazmat"}}`.
public enum EntityCodec {
    public static func decode(_ text: String, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[EntityInfo], TriplineErrors> {
        var t = text
        return t.withUTF8 { decode($0, file: file, sensitive: sensitive) }
    }

    /// Decodes NDJSON bytes, one entity per line; every bad line is reported.
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>, file: String, sensitive: SensitiveTags = SensitiveTags()) -> Result<[EntityInfo], TriplineErrors> {
        var errors: [TriplineError] = []
        var out: [EntityInfo] = []
        var seen: [String: Int] = [:]
        var lineNo = 0
        var start = 0
        var r = DocReader(file: file)
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 10 { end += 1 }
            lineNo += 1
            defer { start = end + 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 13 { lineEnd -= 1 }
            let line = UnsafeBufferPointer(rebasing: bytes[start..<lineEnd])
            if line.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
            switch JSONDocumentParser.parse(line, file: file, lineOffset: lineNo - 1) {
            case .failure(let e): errors.append(e)
            case .success(let doc):
                r.errors.removeAll(keepingCapacity: true)
                if let e = entity(doc, &r, sensitive) {
                    if let prev = seen[e.id] {
                        r.fail(doc, "/id", "duplicate entity id \"\(e.id)\" (first on line \(prev))", code: .duplicateId)
                    } else {
                        seen[e.id] = lineNo
                        out.append(e)
                    }
                }
                errors += r.errors
            }
        }
        return errors.isEmpty ? .success(out) : .failure(TriplineErrors(errors))
    }

    /// Decodes one entity object.
    public static func entity(_ doc: DocNode, _ r: inout DocReader, _ sensitive: SensitiveTags) -> EntityInfo? {
        guard let f = r.object(doc, "", allowed: ["id", "kind", "tags"], what: "entity") else { return nil }
        let before = r.errors.count
        var id: String?, kind = "unknown", tags: [String: String] = [:]
        if let (n, p) = r.require(f, "id", parent: doc, pointer: "", what: "entity") { id = r.string(n, p, what: "entity id") }
        if let (n, p) = f["kind"] { kind = r.string(n, p, what: "entity kind") ?? kind }
        if let (n, p) = f["tags"] { tags = r.stringMap(n, p, what: "entity tags", sensitive: sensitive) ?? [:] }
        guard r.errors.count == before, let id else { return nil }
        return EntityInfo(id: id, kind: kind, tags: tags)
    }
}
