import Foundation
import Testing
import TestSupport
import Yams

/// Holds docs/openapi.yaml to the running server: the same routes, and every answer the
/// server gives in a walk through the API has a documented status and the documented shape.
@Suite("The OpenAPI document matches the server")
struct OpenAPITests {
    static func document() throws -> [String: Any] {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/openapi.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        guard let document = try Yams.load(yaml: text) as? [String: Any] else { throw TestFailure("openapi.yaml: not a mapping") }
        return document
    }

    /// `METHOD /path/{param}` for every operation in the document.
    static func documentedRoutes() throws -> Set<String> {
        var routes: Set<String> = []
        for (path, item) in try document()["paths"] as? [String: [String: Any]] ?? [:] {
            for method in ["get", "post", "put", "patch", "delete"] where item[method] != nil {
                routes.insert("\(method.uppercased()) \(path)")
            }
        }
        return routes
    }

    @Test("every route the node serves is documented, and every documented route is served")
    func sameRoutes() async throws {
        try await withNode { node in
            let served = Set(await node.node.routes().map {
                $0.replacing(/:(\w+)/) { "{\($0.1)}" }
            })
            let documented = try Self.documentedRoutes()
            #expect(served == documented)
        }
    }

    @Test("every answer in a walk through the API has a documented status and shape")
    func walk() async throws {
        try await withNode(["API_KEY": "server-key"]) { node in
            var checker = Checker(document: try Self.document())
            let base = node.baseURL
            func call(
                _ method: String, _ path: String, as template: String? = nil, json: [String: Any]? = nil,
                headers: [String: String] = [:]
            ) async throws -> HTTP.Response {
                let response = try await HTTP.request(method, base + path, json: json, headers: headers)
                checker.check(method, template ?? String(path.split(separator: "?").first!), response)
                return response
            }
            _ = try await call("GET", "/health")
            _ = try await call("GET", "/ready")
            _ = try await call("GET", "/stats")
            _ = try await call("GET", "/stats?scope=cluster")
            _ = try await call("GET", "/stats?scope=galaxy")
            _ = try await call("GET", "/metrics")
            _ = try await call("GET", "/dashboard")
            _ = try await call("GET", "/ws")

            let credentials = ["username": "walker", "password": "correct horse"]
            _ = try await call("POST", "/api/auth/register", json: credentials)
            _ = try await call("POST", "/api/auth/register", json: credentials)
            _ = try await call("POST", "/api/auth/register", json: ["username": "x"])
            let session = try await call("POST", "/api/auth/login", json: credentials).json()
            _ = try await call("POST", "/api/auth/login", json: ["username": "walker", "password": "wrong password"])
            let bearer = ["Authorization": "Bearer \(session["token"] as! String)"]

            _ = try await call("POST", "/api/publish", json: ["topic": "walk", "data": 1], headers: ["X-API-Key": "server-key"])
            _ = try await call("POST", "/api/publish", json: ["topic": "walk", "data": 1])
            _ = try await call("POST", "/api/publish", json: ["topic": "walk", "data": 1], headers: ["X-API-Key": "wrong"])
            _ = try await call("POST", "/api/publish", json: ["topic": "walk.*", "data": 1], headers: bearer)

            _ = try await call("GET", "/api/history/walk?limit=5", as: "/api/history/{topic}", headers: bearer)
            _ = try await call("GET", "/api/history/walk?after=0", as: "/api/history/{topic}", headers: ["X-API-Key": "server-key"])
            _ = try await call("GET", "/api/history/walk", as: "/api/history/{topic}")
            _ = try await call("GET", "/api/history/walk.*", as: "/api/history/{topic}", headers: bearer)
            _ = try await call("GET", "/api/history/messages.user.other", as: "/api/history/{topic}", headers: bearer)
            _ = try await call("GET", "/api/users/walker", as: "/api/users/{user}", headers: bearer)
            _ = try await call("GET", "/api/users/nobody", as: "/api/users/{user}", headers: bearer)
            _ = try await call("GET", "/api/users/walker", as: "/api/users/{user}")
            let message = try await call("POST", "/api/messages", json: ["topic": "walk", "content": "hi"], headers: bearer).json()
            let id = message["id"] as! String
            _ = try await call("POST", "/api/messages", json: ["topic": "walk"], headers: bearer)
            _ = try await call("POST", "/api/messages", json: ["recipientId": "nobody", "content": "hi"], headers: bearer)
            _ = try await call("GET", "/api/messages?topic=walk", headers: bearer)
            _ = try await call("GET", "/api/messages?topic=walk")
            _ = try await call("GET", "/api/messages?topic=messages.user.other", headers: bearer)
            _ = try await call("GET", "/api/messages/\(id)", as: "/api/messages/{id}", headers: bearer)
            _ = try await call("GET", "/api/messages/missing", as: "/api/messages/{id}", headers: bearer)
            _ = try await call("PATCH", "/api/messages/\(id)", as: "/api/messages/{id}", json: ["content": "edited"], headers: bearer)
            _ = try await call("PATCH", "/api/messages/\(id)", as: "/api/messages/{id}", json: ["content": 5], headers: bearer)
            _ = try await call("POST", "/api/messages/\(id)/read", as: "/api/messages/{id}/read", headers: bearer)
            _ = try await call("POST", "/api/messages/\(id)/read", as: "/api/messages/{id}/read")
            _ = try await call("POST", "/api/messages/missing/read", as: "/api/messages/{id}/read", headers: bearer)
            let other = try await call(
                "POST", "/api/auth/register", json: ["username": "other-walker", "password": "correct horse"]).json()
            let direct = try await HTTP.post(
                base + "/api/messages", json: ["recipientId": (other["user"] as! [String: Any])["id"] as! String, "content": "hi"],
                headers: ["Authorization": "Bearer \(other["token"] as! String)"]).json()
            _ = try await call("POST", "/api/messages/\(direct["id"] as! String)/read", as: "/api/messages/{id}/read", headers: bearer)
            _ = try await call("GET", "/api/conversations", headers: bearer)
            _ = try await call("GET", "/api/conversations?limit=1", headers: bearer)
            _ = try await call("GET", "/api/conversations?before=garbage", headers: bearer)
            _ = try await call("GET", "/api/conversations")
            _ = try await call("DELETE", "/api/messages/\(id)", as: "/api/messages/{id}", headers: bearer)
            _ = try await call("DELETE", "/api/messages/\(id)", as: "/api/messages/{id}", headers: bearer)

            let presenceKey = ["X-API-Key": "server-key"]
            _ = try await call("GET", "/api/presence/walk", as: "/api/presence/{topic}", headers: presenceKey)
            _ = try await call("GET", "/api/presence/walk?countOnly=true", as: "/api/presence/{topic}", headers: bearer)
            _ = try await call("GET", "/api/presence/walk.*", as: "/api/presence/{topic}", headers: bearer)
            _ = try await call("GET", "/api/presence/messages.user.other", as: "/api/presence/{topic}", headers: bearer)
            _ = try await call("GET", "/api/presence/walk", as: "/api/presence/{topic}")
            _ = try await call("GET", "/api/users/walker/presence", as: "/api/users/{user}/presence", headers: presenceKey)
            _ = try await call("GET", "/api/users/other/presence", as: "/api/users/{user}/presence", headers: bearer)
            _ = try await call("GET", "/api/users/a.b/presence", as: "/api/users/{user}/presence", headers: presenceKey)
            _ = try await call("GET", "/api/users/walker/presence", as: "/api/users/{user}/presence")

            #expect(checker.problems.isEmpty, "\(checker.problems.joined(separator: "\n"))")
            let documented = try Self.documentedRoutes()
            #expect(documented.subtracting(checker.checked).isEmpty, "not walked: \(documented.subtracting(checker.checked).sorted())")
        }
    }

    @Test("with STATS_TOKEN, the 401s of /stats and /metrics are documented")
    func statsToken() async throws {
        try await withNode(["STATS_TOKEN": "ops"]) { node in
            var checker = Checker(document: try Self.document())
            for path in ["/stats", "/metrics"] {
                checker.check("GET", path, try await HTTP.get(node.baseURL + path))
                checker.check("GET", path, try await HTTP.get(node.baseURL + path, headers: ["Authorization": "Bearer ops"]))
            }
            #expect(checker.problems.isEmpty, "\(checker.problems.joined(separator: "\n"))")
        }
    }
}

/// Checks a response against its operation in the document: the status is listed, and a JSON
/// body fits the schema (types, `required`, `const`, `enum`, `$ref`, `oneOf`, arrays).
struct Checker {
    let document: [String: Any]
    var problems: [String] = []
    /// `METHOD /path/{param}` of every operation a response was checked against.
    var checked: Set<String> = []

    mutating func check(_ method: String, _ path: String, _ response: HTTP.Response) {
        checked.insert("\(method) \(path)")
        let name = "\(method) \(path) -> \(response.status)"
        guard let operation = (document["paths"] as? [String: Any]).flatMap({ $0[path] as? [String: Any] })?[method.lowercased()] as? [String: Any]
        else { return problems.append("\(name): no such operation in the document") }
        let responses = operation["responses"] as? [String: Any] ?? [:]
        guard var documented = responses["\(response.status)"] as? [String: Any] else {
            return problems.append("\(name): status not documented (\(response.text.prefix(200)))")
        }
        documented = resolve(documented)
        guard let content = documented["content"] as? [String: Any] else { return }
        if let json = content["application/json"] as? [String: Any], let schema = json["schema"] as? [String: Any] {
            guard let body = try? JSONSerialization.jsonObject(with: response.body, options: [.fragmentsAllowed]) else {
                return problems.append("\(name): body is not JSON: \(response.text.prefix(200))")
            }
            validate(body, schema, at: name)
        }
    }

    private func resolve(_ node: [String: Any]) -> [String: Any] {
        guard let reference = node["$ref"] as? String else { return node }
        var target: Any = document
        for part in reference.dropFirst(2).split(separator: "/") {
            target = (target as? [String: Any])?[String(part)] as Any
        }
        return resolve(target as? [String: Any] ?? [:])
    }

    private mutating func validate(_ value: Any, _ schemaNode: [String: Any], at location: String) {
        let schema = resolve(schemaNode)
        if let choices = schema["oneOf"] as? [[String: Any]] {
            let passing = choices.filter { choice in
                var probe = Checker(document: document)
                probe.validate(value, choice, at: location)
                return probe.problems.isEmpty
            }
            if passing.isEmpty { problems.append("\(location): fits none of oneOf") }
            return
        }
        if let constant = schema["const"], "\(constant)" != "\(value)" {
            problems.append("\(location): expected \(constant), got \(value)")
        }
        if let choices = schema["enum"] as? [Any], !choices.contains(where: { "\($0)" == "\(value)" }) {
            problems.append("\(location): \(value) not in \(choices)")
        }
        let types = (schema["type"] as? [String]) ?? (schema["type"] as? String).map { [$0] } ?? []
        guard !types.isEmpty else { return }
        guard types.contains(where: { Self.fits(value, $0) }) else {
            return problems.append("\(location): expected \(types), got \(value)")
        }
        if let object = value as? [String: Any], types.contains("object") {
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                problems.append("\(location): missing '\(key)'")
            }
            for (key, property) in schema["properties"] as? [String: [String: Any]] ?? [:] {
                if let member = object[key] { validate(member, property, at: "\(location).\(key)") }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (index, element) in array.enumerated() { validate(element, items, at: "\(location)[\(index)]") }
        }
    }

    private static func fits(_ value: Any, _ type: String) -> Bool {
        switch type {
        case "object": value is [String: Any]
        case "array": value is [Any]
        case "string": value is String
        case "null": value is NSNull
        case "boolean": value is Bool
        case "integer": (value as? NSNumber).map { $0.doubleValue.rounded() == $0.doubleValue } ?? false
        case "number": value is NSNumber
        default: true
        }
    }
}
