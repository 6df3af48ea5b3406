import Node
import Testing

@Suite("Connections per client network")
struct ConnectionLimiterTests {
    @Test("the IPv6 addresses of one /64 share one limit; another /64 and IPv4 addresses have their own")
    func perNetwork() {
        let limiter = ConnectionLimiter(perAddress: 2, total: 100)
        #expect(limiter.acquire("2001:db8:1:2::1") == .granted)
        #expect(limiter.acquire("2001:db8:1:2::ffff") == .granted)
        #expect(limiter.acquire("2001:db8:1:2:abcd::9") == .addressFull, "a third address of the same /64")
        #expect(limiter.acquire("2001:db8:1:3::1") == .granted, "another /64")
        #expect(limiter.acquire("10.0.0.5") == .granted)
        #expect(limiter.acquire("::ffff:10.0.0.5") == .granted, "the same IPv4 address, IPv4-mapped")
        #expect(limiter.acquire("10.0.0.5") == .addressFull)
        #expect(limiter.acquire("10.0.0.6") == .granted, "IPv4 addresses count whole")
        limiter.release("2001:db8:1:2::ffff")
        #expect(limiter.acquire("2001:db8:1:2::7") == .granted, "a slot released by any address of the /64")
        #expect(limiter.top(1).first?.connections == 2)
    }
}
