import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A plain HTTP exchange with a test server (loopback only).
public enum HTTP {
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
        /// Response headers by lowercased name.
        public var headers: [String: String] = [:]

        public var text: String { String(decoding: body, as: UTF8.self) }

        public func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                throw TestFailure("not a JSON object: \(text)")
            }
            return object
        }
    }

    public static func get(_ url: String, headers: [String: String] = [:]) async throws -> Response {
        try await send("GET", url, body: nil, headers: headers)
    }

    public static func post(_ url: String, json: [String: Any], headers: [String: String] = [:]) async throws -> Response {
        var headers = headers
        headers["Content-Type"] = "application/json"
        return try await send("POST", url, body: try JSONSerialization.data(withJSONObject: json), headers: headers)
    }

    public static func post(_ url: String, body: Data, headers: [String: String] = [:]) async throws -> Response {
        try await send("POST", url, body: body, headers: headers)
    }

    /// Any method, with a raw body.
    public static func request(
        _ method: String, _ url: String, body: Data?, headers: [String: String] = [:]
    ) async throws -> Response {
        try await send(method, url, body: body, headers: headers)
    }

    /// Any method, with an optional JSON body.
    public static func request(
        _ method: String, _ url: String, json: [String: Any]? = nil, headers: [String: String] = [:]
    ) async throws -> Response {
        var headers = headers
        var body: Data?
        if let json {
            headers["Content-Type"] = "application/json"
            body = try JSONSerialization.data(withJSONObject: json)
        }
        return try await send(method, url, body: body, headers: headers)
    }

    private static func send(_ method: String, _ url: String, body: Data?, headers: [String: String]) async throws -> Response {
        var request = URLRequest(url: URL(string: url)!, timeoutInterval: 10)
        request.httpMethod = method
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        var headers: [String: String] = [:]
        for (name, value) in (response as? HTTPURLResponse)?.allHeaderFields ?? [:] {
            headers["\(name)".lowercased()] = "\(value)"
        }
        return Response(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data, headers: headers)
    }
}
