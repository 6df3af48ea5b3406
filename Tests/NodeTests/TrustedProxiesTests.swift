import Testing
@testable import Node

@Suite("TRUSTED_PROXIES: addresses and CIDR ranges, IPv4 and IPv6")
struct TrustedProxiesTests {
    static func ranges(_ list: String...) -> [IPRange] { list.map { IPRange($0)! } }

    @Test(
        "a peer inside a listed range is trusted, one outside is not",
        arguments: [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.0.0.5", true),
            ("10.0.0.0/8", "::ffff:11.0.0.5", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.5", "10.0.0.5", true),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("2001:db8:1::/48", "2001:db8:1:ffff::9", true),
            ("2001:db8:1::/48", "2001:db8:2::9", false),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("10.1.2.3/8", "10.9.9.9", true),
        ])
    func membership(range: String, peer: String, trusted: Bool) {
        #expect(ClientAddress.isTrusted(peer, Self.ranges(range)) == trusted)
    }

    @Test("anything that is not an address or a range is refused", arguments: [
        "", "10.0.0", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.0/-1", "proxy.local", "10.0.0.0/+8",
    ])
    func invalid(text: String) {
        #expect(IPRange(text) == nil)
    }

    @Test("a bad TRUSTED_PROXIES entry stops the node with one line naming it")
    func configuration() throws {
        let base = ["JWT_SECRET": "0123456789abcdef0123"]
        let good = try NodeConfiguration(environment: base.merging(["TRUSTED_PROXIES": "10.0.0.0/8, ::1 ,fd00::/8"]) { $1 })
        #expect(good.trustedProxies == Self.ranges("10.0.0.0/8", "::1", "fd00::/8"))
        #expect(throws: ConfigurationError(
            "TRUSTED_PROXIES", "expected IP addresses or CIDR ranges (10.0.0.0/8, fd00::/8), got 'nginx'")
        ) {
            try NodeConfiguration(environment: base.merging(["TRUSTED_PROXIES": "10.0.0.1,nginx"]) { $1 })
        }
    }

    @Test("X-Forwarded-For is believed from a proxy in a range, and proxies in it are skipped")
    func forwardedThroughRanges() {
        let trusted = Self.ranges("10.0.0.0/8", "fd00::/8")
        #expect(ClientAddress.resolve(peer: "::ffff:10.0.0.5", forwardedFor: ["203.0.113.7, 10.1.1.1"], trusted: trusted) == "203.0.113.7")
        #expect(ClientAddress.resolve(peer: "fd00::2", forwardedFor: ["2001:db8::1"], trusted: trusted) == "2001:db8::1")
        #expect(ClientAddress.resolve(peer: "198.51.100.1", forwardedFor: ["203.0.113.7"], trusted: trusted) == "198.51.100.1")
        #expect(ClientAddress.resolve(peer: "10.0.0.5", forwardedFor: ["10.0.0.6"], trusted: trusted) == "10.0.0.5")
    }
}
