import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

@testable import Broker

/// Discovery through real `redis-sentinel`s (a master, its replica, Sentinels on loopback), and
/// adapters following a failover Sentinel is told to make (`SENTINEL FAILOVER`: the old master
/// stays up and becomes a replica).
@Suite("Redis Sentinel discovery")
struct RedisSentinelDiscoveryTests {
    static func discovery(_ group: RedisSentinelGroup, sentinels: String? = nil) throws -> RedisSentinelDiscovery {
        let settings = try RedisSentinelSettings(sentinels: sentinels ?? group.sentinelList, masterNames: RedisSentinelGroup.masterName)
        return RedisSentinelDiscovery(sentinels: settings.sentinels, master: settings.masters[0], timeout: .seconds(2))
    }

    @Test("discovery picks the master Sentinel names, checked with ROLE; it refuses a replica, even one announced first, and skips a Sentinel that is down")
    func discoversTheMaster() async throws {
        try await withSentinelGroup(sentinels: 1) { group in
            let master = group.servers[0].port
            let replica = group.servers[1].port
            let discovery = try Self.discovery(group)
            #expect(try await onOwnThread { try discovery.discover() }.port == master)

            let replicaURL = discovery.masterURL(host: "127.0.0.1", port: replica)
            await #expect(throws: RedisConnectionError.self) {
                try await onOwnThread { try discovery.verified(replicaURL) }
            }
            #expect(try await onOwnThread { try discovery.discover(preferring: replicaURL) }.port == master)

            let nobody = try LoopbackPort.reserve()  // reserved, nothing listens there
            let withDeadSentinel = try Self.discovery(group, sentinels: "127.0.0.1:\(nobody),\(group.sentinelList)")
            #expect(try await onOwnThread { try withDeadSentinel.discover() }.port == master)
        }
    }

    @Test("one backend per master name, in the listed order: topics shard over the masters as over several URLs")
    func shardsOverMasters() throws {
        let settings = try RedisSentinelSettings(sentinels: "127.0.0.1:1", masterNames: "shard-a,:pw@shard-b/2")
        let adapter = RedisAdapter(sentinel: settings, nodeId: "n", logger: Logger(label: "chorus.test.sentinel"))
        let status = adapter.status()
        #expect(status.backends.map(\.address) == ["sentinel://shard-a/0", "sentinel://shard-b/2"])
        #expect(status.state == .connecting, "nothing is reachable before a master is found")
    }

    @Test("two adapters found through Sentinel deliver across each other, and follow a forced failover to the promoted replica")
    func adaptersFollowFailover() async throws {
        try await withSentinelGroup(sentinels: 1) { group in
            let settings = try RedisSentinelSettings(sentinels: group.sentinelList, masterNames: RedisSentinelGroup.masterName)
            var logger = Logger(label: "chorus.test.sentinel")
            logger.logLevel = .error
            let inboxes = [Inbox(), Inbox()]
            let adapters = (0..<2).map { index in
                RedisAdapter(sentinel: settings, nodeId: "n\(index)", timeout: .milliseconds(1500), logger: logger)
            }
            for (adapter, inbox) in zip(adapters, inboxes) {
                adapter.start { batch in inbox.ids.withLock { $0 += batch.map(\.id) } }
                adapter.addInterest(RedisTest.topic("ha.t"))
            }
            func settled(after transitions: Int) async -> Bool {
                await RedisTest.eventually(within: .seconds(60)) {
                    adapters.allSatisfy { $0.isSettled && $0.status().transitions >= transitions }
                }
            }
            func crosses(_ id: String) async -> Bool {
                adapters[0].publish(
                    Envelope(id: id, origin: "n0", topic: try! Topic("ha.t"), eventType: nil, data: RawJSON(.object([:])), metadata: nil))
                return await RedisTest.eventually(within: .seconds(10)) { inboxes[1].ids.withLock { $0.contains(id) } }
            }
            do {
                #expect(await settled(after: 1))
                #expect(adapters[0].status().backends.first?.address == "sentinel://chorus/0")
                #expect(await crosses("before"))

                _ = try await group.sentinels[0].command(["SENTINEL", "FAILOVER", RedisSentinelGroup.masterName])
                let promoted = await eventually(within: .seconds(60)) { await group.currentMaster()?.port == group.servers[1].port }
                #expect(promoted, "Sentinel promoted the replica")
                // connected (1), fallback when the master moved (2), connected to the new one (3)
                #expect(await settled(after: 3))
                #expect(await crosses("after"), "delivery crosses the adapters through the new master")
                let clients = try await group.servers[1].cli(["CLIENT", "LIST"])
                #expect(clients.contains("name=chorus:n0:pub") && clients.contains("name=chorus:n1:sub"))
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
