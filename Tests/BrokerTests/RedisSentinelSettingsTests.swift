import Testing

@testable import Broker

@Suite("PUBSUB_REDIS_SENTINELS and PUBSUB_REDIS_MASTER_NAME")
struct RedisSentinelSettingsTests {
    @Test("Sentinels are host:port (26379 by default) or redis:// URLs with their own password")
    func sentinels() throws {
        let settings = try RedisSentinelSettings(
            sentinels: "10.0.0.1:26380, sentinel-b , redis://:pw@[::1]:5000", masterNames: "chorus")
        #expect(settings.sentinels == [
            RedisURL(host: "10.0.0.1", port: 26380), RedisURL(host: "sentinel-b", port: 26379),
            RedisURL(host: "::1", port: 5000, password: "pw"),
        ])
        #expect(settings.masters == [RedisURL(host: "chorus")])
    }

    @Test("PUBSUB_REDIS_SENTINEL_PASSWORD is the password of every Sentinel listed without one of its own")
    func sentinelPassword() throws {
        let settings = try RedisSentinelSettings(
            sentinels: "s1:1, redis://:own@s2:2, redis://ops:acl@s3:3", masterNames: ":m@chorus", sentinelPassword: "shared")
        #expect(settings.sentinels == [
            RedisURL(host: "s1", port: 1, password: "shared"), RedisURL(host: "s2", port: 2, password: "own"),
            RedisURL(host: "s3", port: 3, user: "ops", password: "acl"),
        ])
        #expect(settings.masters == [RedisURL(host: "chorus", password: "m")], "the master's password is its own")
    }

    @Test("several master names shard in the listed order, each with its own credentials and database")
    func masters() throws {
        let settings = try RedisSentinelSettings(sentinels: "s:1", masterNames: "shard-a, :s3cret@shard-b, app:p%40ss@shard_c/2")
        #expect(settings.masters == [
            RedisURL(host: "shard-a"), RedisURL(host: "shard-b", password: "s3cret"),
            RedisURL(host: "shard_c", user: "app", password: "p@ss", database: 2),
        ])
    }

    @Test(
        "malformed values are refused naming the variable, without printing a password",
        arguments: [
            ("", "chorus", "PUBSUB_REDIS_SENTINELS"), ("s:1,", "chorus", "PUBSUB_REDIS_SENTINELS"),
            ("s:port", "chorus", "PUBSUB_REDIS_SENTINELS"), ("s:1,s:1", "chorus", "PUBSUB_REDIS_SENTINELS"),
            ("http://s:1", "chorus", "PUBSUB_REDIS_SENTINELS"), ("s:1", nil, "PUBSUB_REDIS_MASTER_NAME"),
            ("s:1", "a,,b", "PUBSUB_REDIS_MASTER_NAME"), ("s:1", "a,a", "PUBSUB_REDIS_MASTER_NAME"),
            ("s:1", "name:6379", "PUBSUB_REDIS_MASTER_NAME"), ("s:1", "redis://name", "PUBSUB_REDIS_MASTER_NAME"),
            ("s:1", ":secret@bad name", "PUBSUB_REDIS_MASTER_NAME"),
        ] as [(String, String?, String)])
    func rejects(sentinels: String, masters: String?, variable: String) {
        #expect {
            _ = try RedisSentinelSettings(sentinels: sentinels, masterNames: masters)
        } throws: { error in
            guard let error = error as? RedisSentinelConfigurationError else { return false }
            return error.variable == variable && !error.description.contains("secret")
        }
    }

    @Test("a +switch-master message names the new address only for its own master")
    func switchMaster() {
        let payload = "chorus 127.0.0.1 6380 127.0.0.1 6381"
        #expect(RedisSentinelDiscovery.switchedMaster(payload, name: "chorus").map { "\($0.0):\($0.1)" } == "127.0.0.1:6381")
        #expect(RedisSentinelDiscovery.switchedMaster(payload, name: "other") == nil)
        #expect(RedisSentinelDiscovery.switchedMaster("chorus 1 2", name: "chorus") == nil)
    }

    @Test("ROLE and get-master-addr-by-name replies are read as Redis sends them")
    func replies() {
        let master = RedisReply.array([.bulk(Array("master".utf8)), .integer(0), .array([])])
        let replica = RedisReply.array([.bulk(Array("slave".utf8)), .bulk(Array("127.0.0.1".utf8)), .integer(6379)])
        #expect(RedisSentinelDiscovery.role(from: master) == "master")
        #expect(RedisSentinelDiscovery.role(from: replica) == "slave")
        let address = RedisReply.array([.bulk(Array("127.0.0.1".utf8)), .bulk(Array("6380".utf8))])
        #expect(RedisSentinelDiscovery.address(from: address).map { "\($0.0):\($0.1)" } == "127.0.0.1:6380")
        #expect(RedisSentinelDiscovery.address(from: .null) == nil)
    }

    @Test("READONLY, LOADING and MASTERDOWN replies mean the wrong server; other errors do not")
    func wrongServer() {
        #expect(RedisSentinelDiscovery.meansWrongServer("READONLY You can't write against a read only replica."))
        #expect(RedisSentinelDiscovery.meansWrongServer("LOADING Redis is loading the dataset in memory"))
        #expect(RedisSentinelDiscovery.meansWrongServer("MASTERDOWN Link with MASTER is down"))
        #expect(!RedisSentinelDiscovery.meansWrongServer("ERR unknown command"))
        #expect(!RedisSentinelDiscovery.meansWrongServer("NOPERM this user has no permissions"))
    }
}
