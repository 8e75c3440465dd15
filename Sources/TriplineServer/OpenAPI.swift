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
}
