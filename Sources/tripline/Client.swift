import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TriplineCore
import TriplineNotify
import TriplineServer
import TriplineYAML

/// `--url` and `--token` of the commands that talk to a running server (as amtool does), or
/// TRIPLINE_URL and TRIPLINE_TOKEN.
struct RemoteOptions: ParsableArguments {
    @Option(help: "The server (default: $TRIPLINE_URL, else http://127.0.0.1:8080).") var url: String?
    @Option(help: "An API token (default: $TRIPLINE_TOKEN).") var token: String?
    @Option(name: [.customShort("o"), .long], help: "Output: text (default) or json.") var output = "text"

    func validate() throws {
        guard ["text", "json"].contains(output) else { throw ValidationError("--output must be text or json") }
    }

    var base: String {
        var u = url ?? ProcessInfo.processInfo.environment["TRIPLINE_URL"] ?? "http://127.0.0.1:8080"
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }

    /// Sends a request; returns the status and body. Network failures exit 2 with the reason.
    func call(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json") async throws -> (Int, String) {
        var req = HTTPClientRequest(url: base + path)
        req.method = method
        if let t = token ?? ProcessInfo.processInfo.environment["TRIPLINE_TOKEN"] { req.headers.add(name: "Authorization", value: "Bearer " + t) }
        if let body {
            req.headers.add(name: "Content-Type", value: contentType)
            req.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let resp = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
            let buf = try await resp.body.collect(upTo: 64 << 20)
            return (Int(resp.status.code), String(buffer: buf))
        } catch {
            CLI.printErr("tripline: cannot reach \(base): \(error)")
            throw ExitCode(2)
        }
    }

    /// The body of a 2xx answer, parsed; otherwise prints the server's error (message and each
    /// located problem) and exits 1.
    func ok(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json") async throws -> DocNode? {
        let (status, text) = try await call(method, path, body: body, contentType: contentType)
        if !(200..<300).contains(status) {
            Self.printError(status, text)
            throw ExitCode(1)
        }
        if text.isEmpty { return nil }
        return try? JSONDocumentParser.parse(text, file: "answer").get()
    }

    static func printError(_ status: Int, _ text: String) {
        guard case .success(let doc) = JSONDocumentParser.parse(text, file: "answer") else {
            CLI.printErr("tripline: HTTP \(status): \(text)")
            return
        }
        CLI.printErr("tripline: HTTP \(status): \(doc["message"]?.stringValue ?? text)")
        for e in doc["errors"]?.elements ?? [] {
            var loc = ""
            if let l = e["line"]?.numberValue, l > 0 { loc += "line \(Int(l))" }
            if let c = e["column"]?.numberValue, c > 0 { loc += ":\(Int(c))" }
            if let p = e["pointer"]?.stringValue, !p.isEmpty { loc += (loc.isEmpty ? "" : " ") + "at \(p)" }
            CLI.printErr("  \(loc.isEmpty ? "" : loc + ": ")\(e["message"]?.stringValue ?? "")")
        }
    }

    func printJSON(_ n: DocNode?) {
        print(n?.jsonText ?? "null")
    }

    static func query(_ items: [(String, String?)]) -> String {
        let parts = items.compactMap { k, v in
            v.map { k + "=" + ($0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+#"))) ?? $0) }
        }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}

func isTrue(_ n: DocNode?) -> Bool {
    if case .bool(true)? = n?.value { return true }
    return false
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ r: [String]) -> String {
        r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    rows.forEach { print(line($0)) }
}

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alerts", abstract: "Alerts of a running server.",
                                                    subcommands: [List.self, Get.self, Explain.self, Routes.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List alerts (newest last).")
        @OptionGroup var server: RemoteOptions
        @Option(help: "Only this rule's.") var rule: String?
        @Option(help: "Only this entity's.") var entity: String?
        @Option(help: "Only this zone's.") var zone: String?
        @Option(help: "firing or resolved.") var state: String?
        @Option(help: "At most this many.") var limit = 100

        func run() async throws {
            let q = RemoteOptions.query([("rule", rule), ("entity", entity), ("zone", zone), ("state", state), ("limit", String(limit))])
            let doc = try await server.ok(.GET, "/v1/alerts" + q)
            if server.output == "json" { return server.printJSON(doc) }
            printTable(["ID", "RULE", "KEY", "STATE", "TIME", "SILENCED"], Self.rows(doc))
        }

        /// One row per alert. (Kept out of the async `run`: Swift 6.3's optimizer crashed on
        /// this loop there, in a release build.)
        static func rows(_ doc: DocNode?) -> [[String]] {
            var rows: [[String]] = []
            for a in doc?["alerts"]?.elements ?? [] {
                var key: [String] = []
                for field in ["entity", "zone", "group"] {
                    if let v = a["key"]?[field]?.stringValue { key.append(v) }
                }
                if let pair = a["key"]?["pair"]?.elements { key.append(pair.compactMap { $0.stringValue }.joined(separator: "+")) }
                let id = String(Int(a["id"]?.numberValue ?? 0))
                var silenced = ""
                if let n = a["suppressed_by"]?.numberValue { silenced = "silence \(Int(n))" }
                rows.append([id, a["rule"]?.stringValue ?? "", key.joined(separator: " "), a["state"]?.stringValue ?? "", a["time"]?.stringValue ?? "", silenced])
            }
            return rows
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "One alert, as the server stores it.")
        @OptionGroup var server: RemoteOptions
        @Argument(help: "The alert id.") var id: Int
        func run() async throws { server.printJSON(try await server.ok(.GET, "/v1/alerts/\(id)")) }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "explain", abstract: "Why an alert fired: the rule, the window, a sentence, the evidence.")
        @OptionGroup var server: RemoteOptions
        @Argument(help: "The alert id.") var id: Int
        func run() async throws {
            let doc = try await server.ok(.GET, "/v1/alerts/\(id)/explain")
            if server.output == "json" { return server.printJSON(doc) }
            if let s = doc?["sentence"]?.stringValue ?? doc?["explain"]?["sentence"]?.stringValue { print(s) }
            server.printJSON(doc)
        }
    }

    struct Routes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "routes", abstract: "Where an alert goes under the notification policy.")
        @OptionGroup var server: RemoteOptions
        @Argument(help: "The alert id.") var id: Int
        func run() async throws {
            let doc = try await server.ok(.GET, "/v1/alerts/\(id)/routes")
            if server.output == "json" { return server.printJSON(doc) }
            let labels = (doc?["labels"]?.members ?? []).map { "\($0.key)=\($0.node.stringValue ?? "")" }.joined(separator: " ")
            print("labels: \(labels)")
            for r in doc?["routes"]?.elements ?? [] {
                if let route = r["route"]?.stringValue {
                    print("goes to \(r["receiver"]?.stringValue ?? "?") by route \(route), group \(r["group"]?.stringValue ?? "?")"
                          + (isTrue(r["muted_now"]) ? " (muted now)" : ""))
                } else {
                    print("goes to \(r["receiver"]?.stringValue ?? "?") (one webhook per alert: no notification policy)")
                }
            }
            for i in doc?["inhibited_by"]?.elements ?? [] {
                print("held back by alert \(Int(i["alert"]?.numberValue ?? 0)) (\(i["rule"]?.stringValue ?? "?"))")
            }
        }
    }
}

struct SilenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "silence", abstract: "Silences of a running server.",
                                                    subcommands: [Add.self, List.self, Expire.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Silence alerts matching every given matcher, for a while.")
        @OptionGroup var server: RemoteOptions
        @Option var rule: String?
        @Option var zone: String?
        @Option var entity: String?
        @Option var severity: String?
        @Option(help: "How long, such as 2h (or --ends-at).") var duration: String?
        @Option(name: .customLong("ends-at"), help: "RFC 3339 end.") var endsAt: String?
        @Option(help: "Why (required).") var comment: String

        func run() async throws {
            var m: [(String, J)] = []
            for (k, v) in [("rule", rule), ("zone", zone), ("entity", entity), ("severity", severity)] { if let v { m.append((k, .str(v))) } }
            var f: [(String, J)] = [("matchers", .obj(m)), ("comment", .str(comment))]
            if let duration { f.append(("duration", .str(duration))) }
            if let endsAt { f.append(("ends_at", .str(endsAt))) }
            let doc = try await server.ok(.POST, "/v1/silences", body: Array(J.obj(f).text.utf8))
            if server.output == "json" { return server.printJSON(doc) }
            print("silence \(Int(doc?["id"]?.numberValue ?? 0)) until \(doc?["ends_at"]?.stringValue ?? "?")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List silences.")
        @OptionGroup var server: RemoteOptions
        @Flag(help: "Only the active ones.") var active = false
        func run() async throws {
            let doc = try await server.ok(.GET, "/v1/silences")
            let items = (doc?["silences"]?.elements ?? []).filter { !active || isTrue($0["active"]) }
            if server.output == "json" { return print("[" + items.map(\.jsonText).joined(separator: ",") + "]") }
            printTable(["ID", "MATCHERS", "ENDS", "ACTIVE", "BY", "COMMENT"], items.map { s in
                var parts: [String] = []
                for x in s["matchers"]?.members ?? [] { if let v = x.node.stringValue { parts.append("\(x.key)=\(v)") } }
                let m = parts.joined(separator: ",")
                return [String(Int(s["id"]?.numberValue ?? 0)), m, s["ends_at"]?.stringValue ?? "", isTrue(s["active"]) ? "yes" : "no",
                        s["creator"]?.stringValue ?? "", s["comment"]?.stringValue ?? ""]
            })
        }
    }

    struct Expire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "expire", abstract: "End a silence now.")
        @OptionGroup var server: RemoteOptions
        @Argument(help: "The silence id.") var id: Int
        func run() async throws {
            _ = try await server.ok(.DELETE, "/v1/silences/\(id)")
            if server.output == "text" { print("silence \(id) expired") }
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "policy", abstract: "The notification policy of a running server.",
                                                    subcommands: [Show.self, Check.self, Apply.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the policy in force (as it was sent).")
        @OptionGroup var server: RemoteOptions
        func run() async throws {
            let doc = try await server.ok(.GET, "/v1/policy")
            if server.output == "json" { return server.printJSON(doc) }
            print("# version \(Int(doc?["version"]?.numberValue ?? 0)), set by \(doc?["created_by"]?.stringValue ?? "?") at \(doc?["created_at"]?.stringValue ?? "?")")
            print(doc?["policy"]?.stringValue ?? "", terminator: "")
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check a policy file: offline (the language) or against the server (also its receivers).",
            discussion: "Exit 0 when valid, 1 when not (each problem printed with its line and pointer).")
        @OptionGroup var server: RemoteOptions
        @Flag(help: "Check without a server (receivers are not checked).") var offline = false
        @Argument(help: "The policy file (YAML or JSON).") var file: String

        func run() async throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                CLI.printErr("tripline: cannot read \(file)")
                throw ExitCode(2)
            }
            if offline {
                let parsed: Result<DocNode, TriplineErrors> = file.hasSuffix(".json") ? JSONDocumentParser.parse(text, file: file).mapError { TriplineErrors([$0]) } : YAMLDocument.parse(text, file: file)
                switch parsed.flatMap({ NotificationPolicy.decode($0, file: file) }) {
                case .success(let p):
                    print("\(file): valid: \(p.allRoutes.count) route(s), receivers \(p.receivers.sorted().joined(separator: ", "))")
                case .failure(let e):
                    e.errors.forEach { CLI.printErr($0.description) }
                    CLI.printErr("\(file): \(e.errors.count) problem(s)")
                    throw ExitCode(1)
                }
                return
            }
            let doc = try await server.ok(.PUT, "/v1/policy?dry_run=true", body: Array(text.utf8), contentType: file.hasSuffix(".json") ? "application/json" : "application/yaml")
            if server.output == "json" { return server.printJSON(doc) }
            if isTrue(doc?["valid"]) {
                print("\(file): valid: \(Int(doc?["routes"]?.numberValue ?? 0)) route(s), receivers \((doc?["receivers"]?.elements ?? []).compactMap(\.stringValue).joined(separator: ", "))")
            } else {
                for e in doc?["errors"]?.elements ?? [] {
                    CLI.printErr("\(file):\(Int(e["line"]?.numberValue ?? 0)):\(Int(e["column"]?.numberValue ?? 0)) at \(e["pointer"]?.stringValue ?? ""): \(e["message"]?.stringValue ?? "")")
                }
                CLI.printErr("\(file): \(doc?["errors"]?.elements?.count ?? 0) problem(s)")
                throw ExitCode(1)
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "apply", abstract: "Set the policy from a file (a new version).")
        @OptionGroup var server: RemoteOptions
        @Argument(help: "The policy file (YAML or JSON).") var file: String
        func run() async throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                CLI.printErr("tripline: cannot read \(file)")
                throw ExitCode(2)
            }
            let doc = try await server.ok(.PUT, "/v1/policy", body: Array(text.utf8), contentType: file.hasSuffix(".json") ? "application/json" : "application/yaml")
            if server.output == "json" { return server.printJSON(doc) }
            print(isTrue(doc?["changed"]) ? "policy version \(Int(doc?["version"]?.numberValue ?? 0))" : "no change (version \(Int(doc?["version"]?.numberValue ?? 0)))")
        }
    }
}

/// `tripline query nearby|within|intersects`: spatial queries of a running server (docs/queries.md).
struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Spatial queries over the latest positions of a running server.",
                                                    subcommands: [Nearby.self, Within.self, Intersects.self])

    struct Filters: ParsableArguments {
        @Option(help: "Only entities of this kind (repeat for several).") var kind: [String] = []
        @Option(help: "Only this entity id (repeat for several).") var id: [String] = []
        @Option(help: "Only entities with this tag, key:value or key (repeat: all must hold).") var tag: [String] = []
        @Option(name: .customLong("where"), help: "A numeric condition, metric:<name><op><number> or attr:<name><op><number> (repeat: all must hold).") var conditions: [String] = []
        @Option(help: "Answers per page (1 to 10000, default 100).") var limit: Int?
        @Option(help: "The cursor of the previous page.") var cursor: String?
        @Flag(help: "Follow the cursors and print every page.") var all = false
        @Flag(help: "Print only how many entities match, over all pages (output=count).") var count = false

        var items: [(String, String?)] {
            var out: [(String, String?)] = []
            for k in kind { out.append(("kind", k)) }
            for i in id { out.append(("id", i)) }
            for t in tag { out.append(("tag", t)) }
            for c in conditions { out.append(("where", c)) }
            out.append(("limit", limit.map { String($0) }))
            return out
        }
    }

    /// Runs a query page by page (one page unless --all) and prints the answers.
    static func run(_ remote: RemoteOptions, _ filters: Filters, method: HTTPMethod, path: String, items: [(String, String?)], body: [UInt8]?) async throws {
        if filters.count {
            guard filters.limit == nil, filters.cursor == nil, !filters.all else {
                throw ValidationError("--count counts every page at once; leave out --limit, --cursor and --all")
            }
            let page = try await remote.ok(method, path + RemoteOptions.query(items + filters.items + [("output", "count")]), body: body)
            if remote.output == "json" { remote.printJSON(page) } else { print(Self.countText(page)) }
            return
        }
        var cursor = filters.cursor
        var rows: [[String]] = []
        var nearby = false
        while true {
            let page = try await remote.ok(method, path + RemoteOptions.query(items + filters.items + [("cursor", cursor)]), body: body)
            if remote.output == "json" { remote.printJSON(page) }
            let (more, withDistance) = Self.rows(page)
            rows += more
            nearby = nearby || withDistance
            cursor = page?["cursor"]?.stringValue
            guard filters.all, cursor != nil else { break }
        }
        if remote.output == "text" {
            printTable(["ID", "KIND", "LON", "LAT", "TIME"] + (nearby ? ["DISTANCE_M"] : []), rows)
            if let cursor { print("more: --cursor \(cursor)") }
        }
    }

    /// A query over a zone, a box (GET) or a GeoJSON file (POST), with more parameters `items`.
    static func runArea(_ remote: RemoteOptions, _ filters: Filters, path: String, zone: String?, bbox: String?, geojson: String?,
                        items: [(String, String?)]) async throws {
        if let geojson {
            guard let data = FileManager.default.contents(atPath: geojson) else { throw ValidationError("cannot read \(geojson)") }
            try await run(remote, filters, method: .POST, path: path, items: items, body: [UInt8](data))
        } else {
            try await run(remote, filters, method: .GET, path: path, items: [("zone", zone), ("bbox", bbox)] + items, body: nil)
        }
    }

    /// The `count` of an output=count answer, as text. (Outside the async `run` for the same
    /// optimizer crash as `rows`.)
    static func countText(_ page: DocNode?) -> String {
        guard let n = page?["count"]?.numberValue else { return "" }
        return String(Int(n))
    }

    /// A page's answers as table rows, and whether they carry distances. (Kept out of the
    /// async `run`: Swift 6.3's optimizer crashes on such loops there in release builds.)
    static func rows(_ page: DocNode?) -> ([[String]], Bool) {
        var rows: [[String]] = []
        var nearby = false
        for e in page?["entities"]?.elements ?? [] {
            var r: [String] = [e["id"]?.stringValue ?? "", e["kind"]?.stringValue ?? ""]
            if let x = e["lon"]?.numberValue { r.append(String(x)) } else { r.append("") }
            if let y = e["lat"]?.numberValue { r.append(String(y)) } else { r.append("") }
            r.append(e["time"]?.stringValue ?? "")
            if let d = e["distance_m"]?.numberValue {
                nearby = true
                r.append(String(format: "%.1f", d))
            }
            rows.append(r)
        }
        return (rows, nearby)
    }

    struct Nearby: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "nearby", abstract: "The k nearest entities to a point, or those within a radius (haversine), nearest first.")
        @Option(help: "Longitude of the point.") var lon: Double
        @Option(help: "Latitude of the point.") var lat: Double
        @Option(help: "The k nearest.") var k: Int?
        @Option(name: .customLong("radius-m"), help: "Only those within this many metres.") var radius: Double?
        @OptionGroup var filters: Filters
        @OptionGroup var remote: RemoteOptions

        func validate() throws {
            guard k != nil || radius != nil else { throw ValidationError("give --k, --radius-m, or both") }
        }

        func run() async throws {
            try await QueryCommand.run(remote, filters, method: .GET, path: "/v1/query/nearby",
                                       items: [("lon", String(lon)), ("lat", String(lat)), ("k", k.map(String.init)), ("radius_m", radius.map { String($0) })], body: nil)
        }
    }

    struct Within: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "within", abstract: "Entities inside a zone, a box, or a GeoJSON shape, by id.")
        @Option(help: "A zone id.") var zone: String?
        @Option(help: "min lon,min lat,max lon,max lat.") var bbox: String?
        @Option(help: "A file holding a GeoJSON Polygon, MultiPolygon or Feature.") var geojson: String?
        @OptionGroup var filters: Filters
        @OptionGroup var remote: RemoteOptions

        func validate() throws {
            guard [zone, bbox, geojson].compactMap({ $0 }).count == 1 else { throw ValidationError("give exactly one of --zone, --bbox, --geojson") }
        }

        func run() async throws {
            try await QueryCommand.runArea(remote, filters, path: "/v1/query/within", zone: zone, bbox: bbox, geojson: geojson, items: [])
        }
    }

    struct Intersects: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "intersects", abstract: "Entities whose recent track (their last positions, as a line) meets a zone, a box, or a GeoJSON shape, by id.")
        @Option(help: "A zone id.") var zone: String?
        @Option(help: "min lon,min lat,max lon,max lat.") var bbox: String?
        @Option(help: "A file holding a GeoJSON Polygon, MultiPolygon or Feature.") var geojson: String?
        @Option(help: "The last N positions (e.g. 10) or a duration back from the newest (e.g. 30m); default: every position the server keeps.") var track: String?
        @OptionGroup var filters: Filters
        @OptionGroup var remote: RemoteOptions

        func validate() throws {
            guard [zone, bbox, geojson].compactMap({ $0 }).count == 1 else { throw ValidationError("give exactly one of --zone, --bbox, --geojson") }
        }

        func run() async throws {
            try await QueryCommand.runArea(remote, filters, path: "/v1/query/intersects", zone: zone, bbox: bbox, geojson: geojson, items: [("track", track)])
        }
    }
}
