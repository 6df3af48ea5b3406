import Foundation
import Testing
import TestSupport

@testable import Broker

/// `rediss://`: real `redis-server` processes listening on a TLS port only, with certificates
/// from a private authority made for each test.
@Suite("Redis over TLS", .timeLimit(.minutes(2)))
struct RedisTLSTests {
    /// The shared loopback set, or one made for the test when it needs other names.
    static func certificates(_ name: String, serverNames: String? = nil) async throws -> TestCertificates {
        guard let serverNames else { return try await TestCertificates.loopback() }
        return try await TestCertificates.make(in: TestLogs.folder("redis-tls-\(name)"), serverNames: serverNames)
    }

    @Test(
        "two nodes on a TLS-only server deliver across nodes, and a command queue runs commands and scripts over TLS",
        arguments: [("127.0.0.1", "IP:127.0.0.1"), ("localhost", "DNS:localhost")])
    func acrossNodes(host: String, names: String) async throws {
        // By address (checked against the certificate's IP entry) and by name (sent as SNI, checked
        // against its DNS entry); each certificate names only the one the URL uses.
        let certificates = try await Self.certificates("across-\(host)", serverNames: names)
        try await RedisTest.withServers(make: { try RedisTestServer(tls: (certificates, false), host: host) }) { servers in
            let url = servers[0].url
            #expect(url.description.hasPrefix("rediss://"))
            try await RedisTest.withNodes(["a", "b"], urls: [url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(RedisTest.topic("tls.t"))
                try await RedisTest.settle(nodes)
                let sent = a.publish(topic: "tls.t", data: RawJSON(.object(["text": .string("encrypted")])))
                #expect(await RedisTest.eventually { b.ids() == [sent.id] }, "delivered across nodes through Redis")
                #expect(b.envelopes.first?.data == sent.data)
                #expect(a.status.backends[0].state == .connected)
            }
            let queue = RedisCommandQueue(url: url, timeout: .seconds(2), clientName: "tls-test")
            #expect(try await queue.command(["SET", "tls.key", "value"]) == .status("OK"))
            #expect(try await queue.command(["GET", "tls.key"]) == .bulk(Array("value".utf8)))
            let script = "return redis.call('GET', KEYS[1])"
            #expect(try await queue.evaluate(script, keys: [Array("tls.key".utf8)], arguments: []) == .bulk(Array("value".utf8)))
            await queue.close()
        }
    }

    @Test(
        "a server the node cannot verify is never used: the link reports the TLS failure and delivers locally",
        arguments: ["untrusted", "wrong name"])
    func refused(_ problem: String) async throws {
        // Untrusted: the node trusts the system's store only. Wrong name: the certificate names
        // localhost only, and the node connects to 127.0.0.1 (the test server's own checks use
        // localhost).
        let wrongName = problem == "wrong name"
        let certificates = try await Self.certificates(wrongName ? "wrong-name" : "untrusted", serverNames: wrongName ? "DNS:localhost" : "IP:127.0.0.1")
        let make = { try RedisTestServer(tls: (certificates, false), host: wrongName ? "localhost" : "127.0.0.1") }
        try await RedisTest.withServers(make: make) { servers in
            var url = servers[0].url
            if wrongName { url.host = "127.0.0.1" } else { url.tls = RedisTLS() }
            try await RedisTest.withNodes(["a"], urls: [url]) { nodes in
                let a = nodes[0]
                a.subscribe(RedisTest.topic("tls.local"))
                #expect(await RedisTest.eventually { a.status.state == .fallback })
                let error = a.status.backends[0].lastError ?? ""
                #expect(error.hasPrefix("TLS with 127.0.0.1") && error.lowercased().contains("certificate"), "\(error)")
                let local = a.publish(topic: "tls.local")
                #expect(await RedisTest.eventually { a.ids() == [local.id] }, "delivered locally in fallback")
                let channels = try await servers[0].activeChannels()
                #expect(channels.isEmpty, "never subscribed on the server")
            }
        }
    }

    @Test("with tls-auth-clients yes, a node without a client certificate is refused and one with it delivers")
    func clientCertificates() async throws {
        let certificates = try await Self.certificates("mutual")
        try await RedisTest.withServers(make: { try RedisTestServer(tls: (certificates, true)) }) { servers in
            var anonymous = servers[0].url
            anonymous.tls = RedisTLS(caFile: certificates.authority)
            try await RedisTest.withNodes(["anonymous"], urls: [anonymous]) { nodes in
                #expect(await RedisTest.eventually { nodes[0].status.state == .fallback })
                let error = nodes[0].status.backends[0].lastError ?? ""
                #expect(error.hasPrefix("TLS with") || error.contains("connection closed"), "refused in the handshake: \(error)")
                let channels = try await servers[0].activeChannels()
                #expect(channels.isEmpty)
            }
            try await RedisTest.withNodes(["a", "b"], urls: [servers[0].url]) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                b.subscribe(RedisTest.topic("tls.mutual"))
                try await RedisTest.settle(nodes)
                let sent = a.publish(topic: "tls.mutual")
                #expect(await RedisTest.eventually { b.ids() == [sent.id] })
            }
        }
    }

    @Test("rediss:// to a server without TLS fails the connect: the node never falls back to plain TCP")
    func plainServer() async throws {
        let certificates = try await Self.certificates("plain")
        try await RedisTest.withServers { servers in
            var url = servers[0].url
            url.tls = RedisTLS(caFile: certificates.authority)
            try await RedisTest.withNodes(["a"], urls: [url]) { nodes in
                nodes[0].subscribe(RedisTest.topic("tls.plain"))
                #expect(await RedisTest.eventually { nodes[0].status.state == .fallback })
                // Redis reads the ClientHello as the start of a command and waits for its end: the
                // handshake's deadline fails the connection.
                let error = nodes[0].status.backends[0].lastError ?? ""
                #expect(error.contains("no answer to handshake"), "\(error)")
                let channels = try await servers[0].activeChannels()
                #expect(channels.isEmpty, "nothing subscribed in plain text")
            }
        }
    }

    @Test("a CA file that does not exist fails the connect with the file named, not silently")
    func missingAuthorityFile() async throws {
        let tls = RedisTLS(caFile: "/nonexistent/ca.pem")
        #expect(throws: RedisTLS.FileError.self) { try tls.context() }
        do {
            _ = try tls.context()
        } catch {
            #expect(error.file == .authority && error.description.contains("/nonexistent/ca.pem"))
        }
        #expect(throws: RedisConnectionError.self) { try RedisConnection(connectingTo: RedisURL(host: "127.0.0.1", tls: tls), timeout: .seconds(1)) }
    }
}
