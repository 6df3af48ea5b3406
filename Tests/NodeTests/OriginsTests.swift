import Testing
@testable import Node

@Suite("Allowed origins (WEBSOCKET_ALLOWED_ORIGINS, CORS_ALLOWED_ORIGINS) and shared secrets")
struct OriginsTests {
    @Test("listed origins match as browsers send them; others do not")
    func matching() throws {
        let allowed = try AllowedOrigins(parsing: "https://app.example.com, http://localhost:5173/")
        #expect(allowed.allows("https://app.example.com"))
        #expect(allowed.allows("HTTPS://App.Example.com"))
        #expect(allowed.allows("http://localhost:5173"))
        #expect(!allowed.allows("http://app.example.com"))
        #expect(!allowed.allows("https://app.example.com:8443"))
        #expect(!allowed.allows("https://evil.example.com"))
        #expect(!allowed.allows("null"))
        #expect(try AllowedOrigins(parsing: "*").allows("https://anything.example"))
    }

    @Test("a scheme's default port is left out, as browsers leave it out of Origin; another port is kept")
    func defaultPorts() throws {
        let allowed = try AllowedOrigins(parsing: "https://app.example.com:443, http://localhost:80, https://admin.example.com:8443")
        #expect(allowed.allows("https://app.example.com"))
        #expect(allowed.allows("http://localhost"))
        #expect(allowed.allows("https://admin.example.com:8443"))
        #expect(!allowed.allows("https://admin.example.com"))
    }

    @Test("a bad entry stops the node with one line naming the variable", arguments: [
        "WEBSOCKET_ALLOWED_ORIGINS", "CORS_ALLOWED_ORIGINS",
    ])
    func configuration(variable: String) throws {
        let base = ["JWT_SECRET": "0123456789abcdef0123"]
        for bad in ["app.example.com", "https://app.example.com/chat", "https://user@app.example.com", ",", "https://*.example.com"] {
            do {
                _ = try NodeConfiguration(environment: base.merging([variable: bad]) { $1 })
                Issue.record("\(variable)=\(bad) was accepted")
            } catch {
                #expect(error.description.hasPrefix("\(variable): expected * or comma-separated origins"), "\(error)")
            }
        }
        let configuration = try NodeConfiguration(environment: base.merging([variable: "https://a.example"]) { $1 })
        let parsed = variable == "CORS_ALLOWED_ORIGINS" ? configuration.corsAllowedOrigins : configuration.websocketAllowedOrigins
        #expect(parsed == AllowedOrigins(origins: ["https://a.example"]))
    }

    @Test("unset, no origin is checked and no CORS is served")
    func defaults() throws {
        let configuration = try NodeConfiguration(environment: ["JWT_SECRET": "0123456789abcdef0123"])
        #expect(configuration.websocketAllowedOrigins == nil)
        #expect(configuration.corsAllowedOrigins == nil)
        #expect(configuration.statsToken == nil)
    }

    @Test("a shared secret matches itself only, whatever the candidate's length")
    func sharedSecret() {
        let secret = SharedSecret("server-key")
        #expect(secret.matches("server-key"))
        for other in ["", "server-ke", "server-key ", "server-kez", "SERVER-KEY", String(repeating: "s", count: 10_000)] {
            #expect(!secret.matches(other))
        }
    }
}
