import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

@testable import Broker

/// Sentinel with TLS everywhere: real `redis-server`s and a `redis-sentinel` with TLS ports
/// (`tls-replication yes`, so Sentinel names the servers' TLS ports), certificates from an
/// authority made for the test, and adapters given `rediss://` Sentinels.
@Suite("Redis Sentinel over TLS")
struct RedisSentinelTLSTests {
    @Test("rediss:// Sentinels: discovery, the +switch-master watch and both link connections use TLS, and the adapters follow a forced failover over TLS")
    func followsFailoverOverTLS() async throws {
        let certificates = try await TestCertificates.loopback()
        try await withSentinelGroup(sentinels: 1, tls: certificates) { group in
            let settings = try RedisSentinelSettings(sentinels: group.sentinelList, masterNames: RedisSentinelGroup.masterName)
                .withTLS(RedisTLS(caFile: certificates.authority))
            let discovery = RedisSentinelDiscovery(sentinels: settings.sentinels, master: settings.masters[0], timeout: .seconds(2))
            let masterTLSPort = try #require(group.servers[0].tls?.port)
            // What a command queue does (a blocking wait): the master's TLS port, verified with ROLE.
            #expect(try await onOwnThread { try discovery.discover() }.port == masterTLSPort)

            try await SentinelAdapterPair.with(settings, topic: "tls.t") { pair in
                #expect(await pair.settled(after: 1))
                #expect(await pair.crosses("before"))
                let links: Set<String> = ["chorus:n0:sub", "chorus:n0:pub", "chorus:n1:sub", "chorus:n1:pub"]
                let onMaster = namedClientPorts(try await group.servers[0].cli(["CLIENT", "LIST"]), prefix: "chorus:")
                #expect(Set(onMaster.keys) == links)
                #expect(Set(onMaster.values) == [masterTLSPort], "every link connection came in on the TLS port: \(onMaster)")
                let sentinel = group.sentinels[0]
                let onSentinel = namedClientPorts(try await sentinel.command(["CLIENT", "LIST"]).text ?? "", prefix: "chorus:")
                #expect(Set(onSentinel.keys) == ["chorus:n0:sentinel", "chorus:n1:sentinel"])
                #expect(Set(onSentinel.values) == [try #require(sentinel.tlsPort)], "the watch came in on the TLS port: \(onSentinel)")

                _ = try await sentinel.command(["SENTINEL", "FAILOVER", RedisSentinelGroup.masterName])
                let promoted = await eventually(within: .seconds(60)) { await group.currentMaster()?.port == group.servers[1].port }
                #expect(promoted, "Sentinel promoted the replica")
                // connected (1), fallback when the master moved (2), connected to the new one (3)
                #expect(await pair.settled(after: 3))
                #expect(await pair.crosses("after"), "delivery crosses the adapters through the new master")
                let onNewMaster = namedClientPorts(try await group.servers[1].cli(["CLIENT", "LIST"]), prefix: "chorus:")
                #expect(Set(onNewMaster.keys) == links)
                #expect(Set(onNewMaster.values) == [try #require(group.servers[1].tls?.port)], "\(onNewMaster)")
                #expect(!pair.deliveredTwice, "no message delivered twice")
            }
        }
    }

    @Test("with tls-auth-clients yes on every server and Sentinel: refused without a client certificate, delivers across adapters with one")
    func clientCertificates() async throws {
        let certificates = try await TestCertificates.loopback()
        try await withSentinelGroup(sentinels: 1, tls: certificates, clientCertificates: true) { group in
            let plain = try RedisSentinelSettings(sentinels: group.sentinelList, masterNames: RedisSentinelGroup.masterName)
            let without = plain.withTLS(RedisTLS(caFile: certificates.authority))
            let refused = RedisSentinelDiscovery(sentinels: without.sentinels, master: without.masters[0], timeout: .seconds(2))
            await #expect(throws: RedisConnectionError.self, "a Sentinel that requires a client certificate refuses one without") {
                try await onOwnThread { try refused.discover() }
            }

            let settings = plain.withTLS(
                RedisTLS(caFile: certificates.authority, certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey))
            try await SentinelAdapterPair.with(settings, topic: "mtls.t") { pair in
                #expect(await pair.settled(after: 1))
                #expect(await pair.crosses("with a certificate"))
                let onMaster = namedClientPorts(try await group.servers[0].cli(["CLIENT", "LIST"]), prefix: "chorus:")
                #expect(Set(onMaster.values) == [try #require(group.servers[0].tls?.port)], "\(onMaster)")
            }
        }
    }
}
