import Testing

@testable import Broker

@Suite("Redis host names are looked up within PUBSUB_REDIS_TIMEOUT")
struct RedisHostResolverTests {
    @Test("an IP address is used as it is, without a lookup")
    func numeric() throws {
        #expect(try RedisHostResolver.numericAddress(of: "127.0.0.1", timeout: .seconds(1)) == "127.0.0.1")
        #expect(try RedisHostResolver.numericAddress(of: "::1", timeout: .seconds(1)) == "::1")
    }

    @Test("a name resolves to its IPv4 address first, as hiredis connects")
    func localhost() throws {
        #expect(try RedisHostResolver.numericAddress(of: "localhost", timeout: .seconds(10)) == "127.0.0.1")
    }

    @Test("a name that does not resolve throws, naming it, well within the deadline")
    func unresolvable() {
        let clock = ContinuousClock()
        let start = clock.now
        #expect {
            _ = try RedisHostResolver.numericAddress(of: "no-such-host.invalid", timeout: .seconds(20))
        } throws: { error in
            "\(error)".contains("resolve no-such-host.invalid")
        }
        #expect(clock.now - start < .seconds(20))
    }
}
