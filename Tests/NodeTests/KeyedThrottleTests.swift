import Testing
@testable import Node

@Suite("Keyed throttle (logins, HTTP publishes): keyed by network or user, bounded by least-recently-used eviction")
struct KeyedThrottleTests {
    @Test(
        "IPv6 is counted per /64, IPv4 per address (also IPv4-mapped)",
        arguments: [
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("203.0.113.7", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("unknown", "unknown"),
        ])
    func network(address: String, key: String) {
        #expect(IPAddress.clientNetwork(of: address) == key)
    }

    @Test("rotating addresses within one /64 shares one budget")
    func rotatingWithinA64() {
        let throttle = KeyedThrottle(perMinute: 3)
        let now = ContinuousClock.now
        let granted = (1...10).map { index in
            throttle.attempt("login \(IPAddress.clientNetwork(of: "2001:db8:1:2::\(index)"))", now: now)
        }
        #expect(granted == [true, true, true] + Array(repeating: false, count: 7))
        #expect(throttle.attempt("login \(IPAddress.clientNetwork(of: "2001:db8:1:3::1"))", now: now), "another /64 is not affected")
    }

    @Test("a full table forgets its least recently used key instead of refusing newcomers")
    func fullTableEvictsLeastRecentlyUsed() {
        let throttle = KeyedThrottle(perMinute: 1, maxKeys: 3)
        let now = ContinuousClock.now
        #expect(throttle.attempt("guessed", now: now))
        #expect(!throttle.attempt("guessed", now: now))
        for junk in 0..<100 {
            #expect(throttle.attempt("junk-\(junk)", now: now), "a new key is never refused for want of room")
            // The account being guessed at stays in use, so it is never the one forgotten.
            #expect(!throttle.attempt("guessed", now: now))
        }
        #expect(throttle.count == 3)
    }

    @Test("the recency table keeps the most recently used entries, in order")
    func recencyTable() {
        var table = RecencyTable<String, Int>(capacity: 3)
        table["a"] = 1
        table["b"] = 2
        table["c"] = 3
        #expect(table["a"] == 1)  // a is now the most recent
        table["d"] = 4  // evicts b
        #expect(table.keysByRecency == ["c", "a", "d"])
        #expect(table["b"] == nil)
        table["c"] = nil
        table["e"] = 5
        table["f"] = 6  // evicts a
        #expect(table.keysByRecency == ["d", "e", "f"])
        #expect(table.count == 3)
        for index in 0..<1000 { table["k\(index % 7)"] = index }
        #expect(table.count == 3)
        #expect(table.keysByRecency == ["k3", "k4", "k5"])  // 997, 998, 999 mod 7
    }
}
