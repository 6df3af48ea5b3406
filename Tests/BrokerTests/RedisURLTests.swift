import Testing

@testable import Broker

@Suite("PUBSUB_REDIS_URL")
struct RedisURLTests {
    @Test(
        "valid URLs parse with defaults for port and database",
        arguments: [
            ("redis://localhost", RedisURL(host: "localhost", port: 6379)),
            ("redis://127.0.0.1:6380", RedisURL(host: "127.0.0.1", port: 6380)),
            ("redis://cache.internal:6379/3", RedisURL(host: "cache.internal", port: 6379, database: 3)),
            ("redis://:s3cret@h:1/", RedisURL(host: "h", port: 1, password: "s3cret")),
            ("redis://app:p%40ss@h:2/1", RedisURL(host: "h", port: 2, user: "app", password: "p@ss", database: 1)),
            ("  REDIS://[::1]:7000  ", RedisURL(host: "::1", port: 7000)),
            ("rediss://:pw@cache.example.com:6380", RedisURL(host: "cache.example.com", port: 6380, password: "pw", tls: RedisTLS())),
        ])
    func parses(text: String, expected: RedisURL) throws {
        #expect(try RedisURL(parsing: text) == expected)
    }

    @Test(
        "malformed URLs are rejected with one line naming the variable",
        arguments: [
            "localhost", "localhost:6379", "http://h:1", "redis://", "redis://h:0", "redis://h:65536",
            "redis://h:port", "redis://h:1/db", "redis://pass@h:1", "redis://h:1?x=1", "redis://[::1",
        ])
    func rejects(text: String) {
        #expect {
            _ = try RedisURL(parsing: text)
        } throws: { error in
            let description = "\(error)"
            return description.hasPrefix("PUBSUB_REDIS_URL: expected redis://[user:password@]host:port[/db], got '")
                && !description.contains("\n")
        }
    }

    @Test("the message for a bare host name shows what was given")
    func bareHostMessage() {
        #expect(throws: RedisConfigurationError.malformedURL("localhost", reason: "missing redis:// scheme")) {
            try RedisURL(parsing: "localhost")
        }
        let error = RedisConfigurationError.malformedURL("localhost", reason: "missing redis:// scheme")
        #expect(
            error.description
                == "PUBSUB_REDIS_URL: expected redis://[user:password@]host:port[/db], got 'localhost' (missing redis:// scheme)")
    }

    @Test("an error never shows the password")
    func masksPassword() throws {
        let error = try #require(throws: RedisConfigurationError.self) { try RedisURL(parsing: "redis://u:hunter2@h:99999") }
        #expect(!error.description.contains("hunter2"))
        #expect(error.description.contains("u:***@h:99999"))
    }

    @Test("several comma-separated servers keep their order")
    func list() throws {
        let urls = try RedisURL.parseList("redis://a:1, redis://b:2/0 ,redis://c")
        #expect(urls.map(\.server) == ["a:1", "b:2", "c:6379"])
    }

    @Test(
        "a list with an empty entry, nothing, or the same server twice is rejected",
        arguments: ["", "  ", "redis://a:1,", "redis://a:1,,redis://b:2", "redis://a:1/0,redis://a:1/2"])
    func rejectsList(text: String) {
        #expect(throws: RedisConfigurationError.self) { try RedisURL.parseList(text) }
    }

    @Test("the description hides the password")
    func description() throws {
        let url = try RedisURL(parsing: "redis://app:secret@h:2/1")
        #expect(url.description == "redis://app@h:2/1")
    }
}
