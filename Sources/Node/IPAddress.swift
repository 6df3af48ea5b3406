#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as the 16 bytes of an IPv6 address, IPv4 written as IPv4-mapped
/// IPv6 (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2). A peer a dual-stack listener reports as
/// `::ffff:10.0.0.5` and one an IPv4 listener reports as `10.0.0.5` are then the same address.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// Network byte order.
    public let bytes: [UInt8]

    private static let mappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]

    /// Parses dotted IPv4 (`10.0.0.5`) or textual IPv6 (`fd00::1`, `::ffff:10.0.0.5`, `[::1]`);
    /// nil for anything else.
    public init?(_ text: some StringProtocol) {
        var text = String(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if text.utf8.contains(UInt8(ascii: ":")) {
            var raw = in6_addr()
            guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &raw) { Array($0) }
        } else {
            var raw = in_addr()
            guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
            bytes = Self.mappedPrefix + withUnsafeBytes(of: &raw) { Array($0) }
        }
    }

    /// Whether this is an IPv4 address (IPv4-mapped in IPv6 form).
    public var isIPv4: Bool { Array(bytes.prefix(12)) == Self.mappedPrefix }

    /// `10.0.0.5` for IPv4 (mapped or not), the canonical IPv6 text otherwise.
    public var description: String {
        if isIPv4 { return bytes.suffix(4).map(String.init).joined(separator: ".") }
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The first `bits` bits of the address, the rest zero.
    public func masked(to bits: Int) -> IPAddress {
        var copy = bytes
        for index in 0..<16 {
            let keep = min(8, max(0, bits - index * 8))
            copy[index] &= keep == 8 ? 0xff : ~(0xff >> UInt8(keep))
        }
        return IPAddress(bytes: copy)
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }
}

/// A CIDR range (`10.0.0.0/8`, `fd00::/8`) or one address (`127.0.0.1`, a /32 or /128).
///
/// An IPv4 range also holds the IPv4-mapped IPv6 form of its addresses, so `10.0.0.0/8`
/// matches a peer reported as `::ffff:10.0.0.5`.
public struct IPRange: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    /// Prefix length within the 128-bit form (an IPv4 `/8` is 104 here).
    private let bits: Int

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`; nil for anything else (a prefix longer than the
    /// address family allows, host bits are fine and ignored).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPAddress(parts[0]) else { return nil }
        let familyBits = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var prefix = familyBits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...familyBits).contains(value), parts[1].allSatisfy(\.isNumber) else {
                return nil
            }
            prefix = value
        }
        bits = familyBits == 32 ? 96 + prefix : prefix
        network = address.masked(to: bits)
    }

    public func contains(_ address: IPAddress) -> Bool {
        address.masked(to: bits) == network
    }

    public var description: String {
        network.isIPv4 && bits >= 96 ? "\(network)/\(bits - 96)" : "\(network)/\(bits)"
    }
}

extension IPAddress {
    /// The part of a client address that counts as one client for per-client limits (the
    /// WebSocket connections per address, the login throttle): an IPv6 address's /64
    /// (`2001:db8:1:2::/64`), since a client usually holds a whole /64 and could rotate through
    /// it; an IPv4 address whole (also when written IPv4-mapped, `::ffff:10.0.0.5`); anything
    /// unparseable as given.
    public static func clientNetwork(of address: String) -> String {
        guard let parsed = IPAddress(address) else { return address }
        return parsed.isIPv4 ? parsed.description : "\(parsed.masked(to: 64))/64"
    }
}
