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

    @Test("while no Sentinel names a reachable master the link stays connecting, and its status says why (lastError, lastErrorAt)")
    func connectingSaysWhy() async throws {
        let nobody = try LoopbackPort.reserve()  // reserved, nothing listens there
        let settings = try RedisSentinelSettings(sentinels: "127.0.0.1:\(nobody)", masterNames: "chorus")
        var logger = Logger(label: "chorus.test.sentinel")
        logger.logLevel = .error
        let adapter = RedisAdapter(sentinel: settings, nodeId: "n", timeout: .milliseconds(500), logger: logger)
        adapter.start { _ in }
        #expect(await eventually { adapter.status().backends.first?.lastError != nil }, "an error is shown while connecting")
        let backend = adapter.status().backends.first
        #expect(backend?.state == .connecting)
        #expect(backend?.lastError?.hasPrefix("Redis Sentinel named no reachable master") == true, "\(String(describing: backend?.lastError))")
        #expect(backend?.lastErrorAt != nil)
        await adapter.shutdown()
    }

    @Test("two adapters found through Sentinel deliver across each other, and follow a forced failover to the promoted replica")
    func adaptersFollowFailover() async throws {
        try await withSentinelGroup(sentinels: 1) { group in
            let settings = try RedisSentinelSettings(sentinels: group.sentinelList, masterNames: RedisSentinelGroup.masterName)
            try await SentinelAdapterPair.with(settings, topic: "ha.t") { pair in
                #expect(await pair.settled(after: 1))
                #expect(pair.adapters[0].status().backends.first?.address == "sentinel://chorus/0")
                #expect(await pair.crosses("before"))

                _ = try await group.sentinels[0].command(["SENTINEL", "FAILOVER", RedisSentinelGroup.masterName])
                let promoted = await eventually(within: .seconds(60)) { await group.currentMaster()?.port == group.servers[1].port }
                #expect(promoted, "Sentinel promoted the replica")
                // connected (1), fallback when the master moved (2), connected to the new one (3)
                #expect(await pair.settled(after: 3))
                #expect(await pair.crosses("after"), "delivery crosses the adapters through the new master")
                let clients = try await group.servers[1].cli(["CLIENT", "LIST"])
                #expect(clients.contains("name=chorus:n0:pub") && clients.contains("name=chorus:n1:sub"))
                #expect(!pair.deliveredTwice, "no message delivered twice")
            }
        }
    }

    @Test("a hung Sentinel (SIGSTOP) is left after its deadline: the watch subscribes to the next one, follows a failover through it, and the adapters shut down while it is still hung")
    func leavesAHungSentinel() async throws {
        try await withSentinelGroup(sentinels: 2) { group in
            let settings = try RedisSentinelSettings(sentinels: group.sentinelList, masterNames: RedisSentinelGroup.masterName)
            let watching = { (sentinel: RedisSentinelProcess) async -> Set<String> in
                Set(namedClientPorts((try? await sentinel.command(["CLIENT", "LIST"]).text) ?? "", prefix: "chorus:").keys)
            }
            let watchers: Set<String> = ["chorus:n0:sentinel", "chorus:n1:sentinel"]
            let hungOne = Mutex<RedisSentinelProcess?>(nil)
            // Thawed once the pair has shut down, also when the test fails.
            defer { hungOne.withLock { $0 }?.process.signal(SIGCONT) }
            try await SentinelAdapterPair.with(settings, topic: "hung.t") { pair in
                #expect(await pair.settled(after: 1))
                // The Sentinel n0's watch is on (the first, unless it was slow to answer at the start).
                var watched: RedisSentinelProcess?
                _ = await eventually(within: .seconds(20)) {
                    for sentinel in group.sentinels where await watching(sentinel).contains("chorus:n0:sentinel") { watched = sentinel }
                    return watched != nil
                }
                let hung = try #require(watched, "n0's watch subscribes to a Sentinel")
                let next = try #require(group.sentinels.first { $0 !== hung })

                hungOne.withLock { $0 = hung }
                hung.process.signal(SIGSTOP)
                let moved = await eventually(within: .seconds(30)) { await watching(next) == watchers }
                #expect(moved, "both watches moved to the Sentinel that answers")
                _ = try await next.command(["SENTINEL", "FAILOVER", RedisSentinelGroup.masterName])
                let promoted = await eventually(within: .seconds(60)) { await group.currentMaster()?.port == group.servers[1].port }
                #expect(promoted, "Sentinel promoted the replica")
                #expect(await pair.settled(after: 3))
                #expect(await pair.crosses("after"), "delivery crosses the adapters through the new master")
                #expect(!pair.deliveredTwice, "no message delivered twice")
                // The pair shuts down with that Sentinel still hung; then it is thawed.
            }
        }
    }
}
