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
        let certificates = try await TestCertificates.make(in: TestLogs.folder("sentinel-tls"))
        try await withSentinelGroup(sentinels: 1, tls: certificates) { group in
            let settings = try RedisSentinelSettings(sentinels: group.sentinelList, masterNames: RedisSentinelGroup.masterName)
                .withTLS(RedisTLS(caFile: certificates.authority))
            let discovery = RedisSentinelDiscovery(sentinels: settings.sentinels, master: settings.masters[0], timeout: .seconds(2))
            let masterTLSPort = try #require(group.servers[0].tls?.port)
            // What a command queue does (a blocking wait): the master's TLS port, verified with ROLE.
            #expect(try await onOwnThread { try discovery.discover() }.port == masterTLSPort)

            var logger = Logger(label: "chorus.test.sentinel-tls")
            logger.logLevel = .error
            let inboxes = [Inbox(), Inbox()]
            let adapters = (0..<2).map { index in
                RedisAdapter(sentinel: settings, nodeId: "n\(index)", timeout: .milliseconds(1500), logger: logger)
            }
            for (adapter, inbox) in zip(adapters, inboxes) {
                adapter.start { batch in inbox.ids.withLock { $0 += batch.map(\.id) } }
                adapter.addInterest(RedisTest.topic("tls.t"))
            }
            func settled(after transitions: Int) async -> Bool {
                await RedisTest.eventually(within: .seconds(60)) {
                    adapters.allSatisfy { $0.isSettled && $0.status().transitions >= transitions }
                }
            }
            func crosses(_ id: String) async -> Bool {
                adapters[0].publish(
                    Envelope(id: id, origin: "n0", topic: try! Topic("tls.t"), eventType: nil, data: RawJSON(.object([:])), metadata: nil))
                return await RedisTest.eventually(within: .seconds(10)) { inboxes[1].ids.withLock { $0.contains(id) } }
            }
            /// The local port each client named `chorus:...` is connected to (`CLIENT LIST`'s `laddr`).
            func chorusClients(_ list: String) -> [String: Int] {
                var ports: [String: Int] = [:]
                for line in list.split(separator: "\n") {
                    let fields = Dictionary(
                        line.split(separator: " ").compactMap { field -> (String, String)? in
                            guard let equals = field.firstIndex(of: "=") else { return nil }
                            return (String(field[..<equals]), String(field[field.index(after: equals)...]))
                        }, uniquingKeysWith: { first, _ in first })
                    guard let name = fields["name"], name.hasPrefix("chorus:"), let port = fields["laddr"]?.split(separator: ":").last
                    else { continue }
                    ports[name] = Int(port)
                }
                return ports
            }
            do {
                #expect(await settled(after: 1))
                #expect(await crosses("before"))
                let onMaster = chorusClients(try await group.servers[0].cli(["CLIENT", "LIST"]))
                #expect(Set(onMaster.keys) == ["chorus:n0:sub", "chorus:n0:pub", "chorus:n1:sub", "chorus:n1:pub"])
                #expect(Set(onMaster.values) == [masterTLSPort], "every link connection came in on the TLS port: \(onMaster)")
                let sentinel = group.sentinels[0]
                let onSentinel = chorusClients(try await sentinel.command(["CLIENT", "LIST"]).text ?? "")
                #expect(Set(onSentinel.keys) == ["chorus:n0:sentinel", "chorus:n1:sentinel"])
                #expect(Set(onSentinel.values) == [try #require(sentinel.tlsPort)], "the watch came in on the TLS port: \(onSentinel)")

                _ = try await sentinel.command(["SENTINEL", "FAILOVER", RedisSentinelGroup.masterName])
                let promoted = await eventually(within: .seconds(60)) { await group.currentMaster()?.port == group.servers[1].port }
                #expect(promoted, "Sentinel promoted the replica")
                // connected (1), fallback when the master moved (2), connected to the new one (3)
                #expect(await settled(after: 3))
                #expect(await crosses("after"), "delivery crosses the adapters through the new master")
                let onNewMaster = chorusClients(try await group.servers[1].cli(["CLIENT", "LIST"]))
                #expect(Set(onNewMaster.keys) == ["chorus:n0:sub", "chorus:n0:pub", "chorus:n1:sub", "chorus:n1:pub"])
                #expect(Set(onNewMaster.values) == [try #require(group.servers[1].tls?.port)], "\(onNewMaster)")
            } catch {
                for adapter in adapters { await adapter.shutdown() }
                throw error
            }
            for adapter in adapters { await adapter.shutdown() }
            for inbox in inboxes {
                let ids = inbox.ids.withLock { $0 }
                #expect(Set(ids).count == ids.count, "no message delivered twice")
            }
        }
    }
}

/// The ids one adapter delivered, shared with its deliver closure.
private final class Inbox: Sendable {
    let ids = Mutex<[String]>([])
}
