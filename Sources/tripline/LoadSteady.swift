import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
import TriplineTesting
#endif

/// `tripline load --rate N`: a steady synthesized stream for soaks. Every entity moves on its
/// own straight track at 18 to 79 km/h (back and forth over 20 km inside the region), so
/// positions are continuous and speed rules fire only as often as real fleets make them;
/// readings are `water_l` around 60 with rare spikes; contacts name one of 500 counterparts;
/// 2% are custom events. Every event has a unique id and the wall-clock time of its batch.
/// Prints one progress line every 10 s (`progress <seconds> <acked> <refused batches>`) and a
/// summary at the end. Bodies are built as bytes: no Foundation formatting per event.
extension Load {
    func steady(rate: Int) async throws {
        guard rate > 0 else { throw ValidationError("--rate: give a positive number of events/s") }
        guard let entities, let data = FileManager.default.contents(atPath: entities) else {
            throw ValidationError("--rate needs --entities FILE (the registered entities, NDJSON)")
        }
        let box = (region ?? "").split(separator: ",").compactMap { Double($0) }
        guard box.count == 4, box[0] < box[2], box[1] < box[3] else {
            throw ValidationError("--region: give minLon,minLat,maxLon,maxLat (got \(region ?? "nothing"))")
        }
        let seconds = Double(try CLI.parseDuration(duration, option: "--duration")) / 1000
        var ids: [String] = []
        for line in data.split(separator: 10) where !line.isEmpty {
            if let o = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let id = o["id"] as? String { ids.append(id) }
        }
        guard !ids.isEmpty else { throw ValidationError("--entities: no entity ids in \(entities)") }
        guard let u = URL(string: url), let host = u.host, let port = u.port else { throw ValidationError("--url must be like http://127.0.0.1:8080") }
        let tracks = Tracks(count: ids.count, box: box, seed: UInt64(seed))
        let names = ids.map { Array($0.utf8) }
        let stats = SteadyStats()
        let began = Date().timeIntervalSince1970
        let end = began + seconds
        let perConnection = Double(rate) / Double(connections)
        let done = DispatchGroup()
        for w in 0..<connections {
            done.enter()
            let t = Thread { [token, batch] in
                defer { done.leave() }
                var rng = SplitMix64(seed: UInt64(seed) &* 1000 &+ UInt64(w))
                var conn: RawHTTPConnection? = nil
                let interval = Double(batch) / perConnection
                var nextAt = Date().timeIntervalSince1970 + interval * Double(w) / Double(connections)
                var n = 0
                var body = Data()
                var line: [UInt8] = []
                line.reserveCapacity(256)
                while Date().timeIntervalSince1970 < end {
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    body.removeAll(keepingCapacity: true)
                    for _ in 0..<batch {
                        let e = Int(rng.next() % UInt64(names.count))
                        line.removeAll(keepingCapacity: true)
                        line += Array("{\"entity\":\"".utf8); line += names[e]
                        line += Array("\",\"id\":\"w".utf8); Bytes.int(&line, w); line.append(UInt8(ascii: "-")); Bytes.int(&line, n)
                        line += Array("\",\"time\":".utf8); Bytes.int(&line, Int(now))
                        let r = rng.next() % 100
                        if r < 70 {
                            let (lon, lat) = tracks.at(e, now)
                            line += Array(",\"type\":\"position\",\"lon\":".utf8); Bytes.fixed(&line, lon)
                            line += Array(",\"lat\":".utf8); Bytes.fixed(&line, lat)
                        } else if r < 90 {
                            let spike = rng.next() % 1000 == 0
                            let v = spike ? 200 + Int(rng.next() % 100) : 30 + Int(rng.next() % 60)
                            line += Array(",\"type\":\"reading\",\"metric\":\"water_l\",\"value\":".utf8); Bytes.int(&line, v)
                        } else if r < 98 {
                            line += Array(",\"type\":\"contact\",\"counterpart\":\"c".utf8); Bytes.int(&line, Int(rng.next() % 500)); line.append(UInt8(ascii: "\""))
                        } else {
                            let types = ["door_open", "payment", "password_reset", "login_failed"]
                            line += Array(",\"type\":\"".utf8); line += Array(types[Int(rng.next() % 4)].utf8)
                            line += Array("\",\"attrs\":{\"tier\":\"".utf8); line += Array((rng.next() % 2 == 0 ? "high" : "low").utf8)
                            line += Array("\"}".utf8)
                        }
                        line += Array("}\n".utf8)
                        body.append(contentsOf: line)
                        n += 1
                    }
                    do {
                        if conn == nil { conn = try RawHTTPConnection(host: host, port: port) }
                        let (code, _) = try conn!.post(path: "/v1/events", token: token, body: body)
                        if code == 200 { stats.acked(batch) } else { stats.refused() }
                    } catch {
                        conn = nil
                        stats.refused()
                        usleep(200_000)
                    }
                    nextAt += interval
                    let delay = nextAt - Date().timeIntervalSince1970
                    if delay > 0 { usleep(UInt32(delay * 1e6)) } else if delay < -5 { nextAt = Date().timeIntervalSince1970 }
                }
            }
            t.start()
        }
        let reporter = Thread {
            var next = began + 10
            while Date().timeIntervalSince1970 < end {
                usleep(200_000)
                if Date().timeIntervalSince1970 >= next {
                    let (a, r) = stats.snapshot
                    FileHandle.standardOutput.write(Data("progress \(Int(next - began)) \(a) \(r)\n".utf8))
                    next += 10
                }
            }
        }
        reporter.start()
        done.wait()
        let (acked, refused) = stats.snapshot
        let elapsed = Date().timeIntervalSince1970 - began
        print(String(format: "steady: %d events acknowledged in %.1f s (%.0f events/s, target %d), %d batches refused",
                     acked, elapsed, Double(acked) / elapsed, rate, refused))
    }
}

final class SteadyStats: @unchecked Sendable {
    private let lock = NSLock()
    private var a = 0, r = 0
    func acked(_ n: Int) { lock.lock(); a += n; lock.unlock() }
    func refused() { lock.lock(); r += 1; lock.unlock() }
    var snapshot: (Int, Int) { lock.lock(); defer { lock.unlock() }; return (a, r) }
}

extension SplitMix64 {
    /// A uniform double in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// Each entity's straight track: a start point, a heading and a speed; it goes 20 km out and
/// back, so its position is a continuous function of time.
struct Tracks: Sendable {
    var lon0: [Double] = [], lat0: [Double] = [], dLon: [Double] = [], dLat: [Double] = [], speed: [Double] = []
    static let length = 20_000.0

    init(count: Int, box: [Double], seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<count {
            let lat = box[1] + (box[3] - box[1]) * rng.unit()
            let heading = 2 * Double.pi * rng.unit()
            let mPerDegLat = 111_320.0, mPerDegLon = 111_320.0 * cos(lat * .pi / 180)
            var lon = box[0] + (box[2] - box[0]) * rng.unit()
            var la = lat
            // Keep the whole track inside the region where the region allows it.
            let ex = cos(heading) * Self.length / mPerDegLon, ey = sin(heading) * Self.length / mPerDegLat
            lon = min(max(lon, box[0] - min(0, ex)), box[2] - max(0, ex))
            la = min(max(la, box[1] - min(0, ey)), box[3] - max(0, ey))
            lon0.append(lon); lat0.append(la)
            dLon.append(cos(heading) / mPerDegLon); dLat.append(sin(heading) / mPerDegLat)
            speed.append(5 + 17 * rng.unit())
        }
    }

    func at(_ e: Int, _ ms: Int64) -> (Double, Double) {
        let s = (Double(ms) / 1000 * speed[e]).truncatingRemainder(dividingBy: 2 * Self.length)
        let d = s <= Self.length ? s : 2 * Self.length - s
        return (lon0[e] + dLon[e] * d, lat0[e] + dLat[e] * d)
    }
}

enum Bytes {
    static func int(_ out: inout [UInt8], _ v: Int) {
        if v < 0 { out.append(UInt8(ascii: "-")); int(&out, -v); return }
        if v >= 10 { int(&out, v / 10) }
        out.append(UInt8(48 + v % 10))
    }

    /// `v` with six decimals.
    static func fixed(_ out: inout [UInt8], _ v: Double) {
        var x = Int((v * 1_000_000).rounded())
        if x < 0 { out.append(UInt8(ascii: "-")); x = -x }
        int(&out, x / 1_000_000)
        out.append(UInt8(ascii: "."))
        var f = x % 1_000_000
        var digits = [UInt8](repeating: 48, count: 6)
        for i in stride(from: 5, through: 0, by: -1) { digits[i] = UInt8(48 + f % 10); f /= 10 }
        out += digits
    }
}
