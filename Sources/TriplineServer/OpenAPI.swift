import Foundation

/// The OpenAPI 3.1 document of the HTTP API (docs/openapi.json is the same file).
public enum OpenAPIDocument {
    public static let json: String = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
              let data = try? Data(contentsOf: url), let s = String(data: data, encoding: .utf8) else {
            return #"{"openapi":"3.1.0","info":{"title":"Tripline","version":"1"},"paths":{}}"#
        }
        return s
    }()

    /// The query parameters each operation accepts ("GET /v1/alerts" -> names), read from the
    /// document itself, so that what the server accepts and what it documents cannot drift.
    public static let queryParameters: [String: Set<String>] = {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let paths = obj["paths"] as? [String: Any] else { return [:] }
        let components = (obj["components"] as? [String: Any])?["parameters"] as? [String: Any] ?? [:]
        var out: [String: Set<String>] = [:]
        for (path, item) in paths {
            guard let ops = item as? [String: Any] else { continue }
            for (method, op) in ops {
                guard let op = op as? [String: Any] else { continue }
                var names = Set<String>()
                for p in op["parameters"] as? [[String: Any]] ?? [] {
                    var p = p
                    if let ref = p["$ref"] as? String, let c = components[String(ref.split(separator: "/").last ?? "")] as? [String: Any] { p = c }
                    if p["in"] as? String == "query", let n = p["name"] as? String { names.insert(n) }
                }
                out[method.uppercased() + " " + path] = names
            }
        }
        return out
    }()
}
