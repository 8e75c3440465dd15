import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TriplineCore
import TriplineStore


/// Events in (batches and watermark advances), and the live state they make: the latest
/// positions and who is inside a zone.
struct EventsController: Controller {
    let http: TriplineHTTP

    static var table: [(RouteSpec, KeyPath<Self, Handler>)] { [
        (RouteSpec(method: "POST", path: "/v1/events", roles: [.ingest, .operator, .admin]), \.postEvents),
        (RouteSpec(method: "POST", path: "/v1/watermark", roles: write), \.postWatermark),
        (RouteSpec(method: "GET", path: "/v1/positions", roles: read), \.positions),
        (RouteSpec(method: "GET", path: "/v1/zones/{id}/inside", roles: read), \.zoneInside),
    ] }
}

extension EventsController {
    // MARK: - Events

    var postEvents: Handler {
        { [self] req, _, _ in
            guard http.inflight.enter(limit: settings.maxBodiesInFlight) else {
                host.metrics.add(\.overloaded, 1)
                throw APIError(status: .tooManyRequests, code: "overloaded",
                               message: "\(settings.maxBodiesInFlight) batches are being received already; nothing of this batch was read. Retry after 1 s.",
                               headers: [("Retry-After", "1")])
            }
            defer { http.inflight.leave() }
            let bytes = try await body(req)
            let input = try splitEvents(bytes, contentType: req.headers[.contentType])
            if input.count == 0 { throw APIError.badRequest("the batch holds no event: send NDJSON (one event per line) or a JSON array of events") }
            if input.count > settings.options.maxBatchEvents {
                throw APIError(status: .contentTooLarge, code: "batch_too_large",
                               message: "the batch holds \(input.count) events; send at most \(settings.options.maxBatchEvents) per request")
            }
            do {
                let r = try await host.ingest(input)
                return API.json(.obj([
                    ("received", .int(r.received)), ("applied_or_buffered", .int(r.received - r.duplicates - r.lateLines.count)),
                    ("duplicates", .int(r.duplicates)),
                    ("late", .obj([("count", .int(r.lateLines.count)), (input.unit + "s", .arr(r.lateLines.map { .int($0) }))])),
                    ("alerts", .int(r.alerts)), ("watermark", .time(r.watermark)),
                ]))
            } catch IngestError.invalid(let errors) {
                throw APIError(status: .unprocessableContent, code: "invalid_events",
                               message: "\(errors.count) of \(input.count) \(input.unit)s are invalid; nothing of this batch was applied (batches are all-or-nothing). Fix them and send the whole batch again.",
                               errors: errors.map { J.error($0, unit: input.unit) })
            } catch IngestError.overloaded(let after) {
                throw APIError(status: .tooManyRequests, code: "overloaded",
                               message: "the ingest queue is full; nothing of this batch was taken. Retry after \(after) s.",
                               headers: [("Retry-After", String(after))])
            } catch IngestError.storage(let why) {
                // A full disk is 507 (the client can do nothing but wait); any other store
                // failure 503. Either way nothing of the batch was acknowledged or kept.
                let full = why.contains("SQLITE_FULL") || why.lowercased().contains("disk is full") || why.contains("ENOSPC")
                    || why.contains("SQLSTATE 53100")
                throw APIError(status: full ? HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage") : .serviceUnavailable, code: full ? "disk_full" : "storage",
                               message: "the batch could not be committed (\(why)); nothing of it was acknowledged. Retry it\(full ? " when the server has disk space again" : "").",
                               headers: [("Retry-After", "5")])
            }
        }
    }

    /// Splits a body into event texts: NDJSON lines, or the elements of a JSON array (scanned
    /// in place).
    func splitEvents(_ bytes: [UInt8], contentType: String?) throws -> EventBatchInput {
        switch EventTexts.split(bytes, file: "request") {
        case .success(let texts): return texts
        case .failure(let e):
            throw APIError(status: .unprocessableContent, code: "invalid_events", message: "the body starts with '[' but is not a JSON array of events; nothing was applied",
                           errors: [J.error(e)])
        }
    }

    var postWatermark: Handler {
        { [self] req, _, _ in
            let bytes = try await body(req)
            guard case .success(let doc) = JSONDocumentParser.parse(String(decoding: bytes, as: UTF8.self), file: "request"),
                  let u = doc["until"] else {
                throw APIError.badRequest("send {\"until\": \"<RFC 3339 time or epoch ms>\"}")
            }
            let t: Millis
            if let s = u.stringValue {
                switch EventTime.parseRFC3339(s) {
                case .success(let v): t = v
                case .failure(.malformed(let why)): throw APIError.badRequest("/until \"\(s)\" is not an RFC 3339 time: \(why)")
                }
            } else if let d = u.numberValue, let v = EventTime.fromNumber(d) { t = v }
            else { throw APIError.badRequest("/until must be an RFC 3339 time or whole epoch milliseconds from 0 to \(TimeBounds.maxTime) (year 9999)") }
            let r = try await host.advance(until: t)
            return API.json(.obj([("watermark", .time(r.watermark))]))
        }
    }

    /// Latest positions of every entity seen, compact: one array per entity.
    var positions: Handler {
        { [self] _, _, _ in
            let (list, wm) = try await host.perform { s in (s.positions(), s.pipeline.watermark) }
            var out: [UInt8] = Array(#"{"fields":["id","kind","lon","lat","time"],"watermark":"#.utf8)
            J.time(wm).append(to: &out)
            out += Array(#","entities":["#.utf8)
            for (i, p) in list.enumerated() {
                if i > 0 { out.append(44) }
                out.append(91)
                JSONText.appendString(p.0, to: &out)
                out.append(44)
                JSONText.appendString(p.1, to: &out)
                out.append(44)
                JSONText.appendNumber(p.2, to: &out)
                out.append(44)
                JSONText.appendNumber(p.3, to: &out)
                out.append(44)
                out += Array(String(p.4).utf8)
                out.append(93)
            }
            out += Array("]}\n".utf8)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
        }
    }

    /// Who is inside a zone now (by latest position).
    var zoneInside: Handler {
        { [self] _, ctx, _ in
            let id = try param(ctx)
            let inside: [(String, String, Double, Double, Millis)]? = try await host.perform { s in
                guard let z = s.catalog.zones.first(where: { $0.id == id }) else { return nil }
                return s.positions().filter { z.shape.covers($0.2, $0.3) }
            }
            guard let inside else { throw APIError.notFound("no zone \"\(id)\"") }
            return API.json(.obj([("zone", .str(id)), ("entities", .arr(inside.map {
                .obj([("id", .str($0.0)), ("kind", .str($0.1)), ("lon", .num($0.2)), ("lat", .num($0.3)), ("time", .time($0.4))])
            }))]))
        }
    }
}
