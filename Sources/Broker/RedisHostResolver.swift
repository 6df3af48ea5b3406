import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns the host of a Redis or Sentinel address into a numeric address within a deadline
/// (`PUBSUB_REDIS_TIMEOUT`), so that a hanging DNS server cannot hold a link's thread (and with
/// it a failover or the node's shutdown) for longer.
///
/// `getaddrinfo` cannot be cancelled, so it runs on a thread of its own that the caller may
/// abandon: past the deadline the caller throws, and the lookup's thread ends whenever the
/// resolver answers, its result dropped. A lookup of a host still pending is joined rather than
/// started again, so a name that never resolves holds one thread, not one per retry.
///
/// Like hiredis (which gets the numeric address instead of the name), IPv4 addresses come
/// first, IPv6 only for a name without any; the first address is used.
enum RedisHostResolver {
    /// One lookup in flight; any thread may wait for it.
    private final class Lookup: Sendable {
        private let condition = NSCondition()
        private nonisolated(unsafe) var result: Result<String, RedisConnectionError>?

        func finish(_ outcome: Result<String, RedisConnectionError>) {
            condition.lock()
            result = outcome
            condition.broadcast()
            condition.unlock()
        }

        /// The outcome, or nil when `deadline` passed first.
        func wait(until deadline: Date) -> Result<String, RedisConnectionError>? {
            condition.lock()
            defer { condition.unlock() }
            while result == nil, condition.wait(until: deadline) {}
            return result
        }
    }

    private static let pending = Mutex<[String: Lookup]>([:])

    /// The longest a lookup may take on a node loop's behalf, waiting for a thread of NIO's
    /// pool included (``RedisReplyHandler/connect(_:timeout:on:)``): until then a connection
    /// has no deadline of its own, and reports this one as its next.
    static func lookupBound(_ timeout: Duration) -> Duration { timeout * 2 }

    /// `host` itself when it is an IP address; otherwise its first address, looked up within
    /// `timeout`. Throws when the name does not resolve or the lookup takes longer.
    static func numericAddress(of host: String, timeout: Duration) throws(RedisConnectionError) -> String {
        if isNumeric(host) { return host }
        let (lookup, isNew) = pending.withLock { pending -> (Lookup, Bool) in
            if let lookup = pending[host] { return (lookup, false) }
            let lookup = Lookup()
            pending[host] = lookup
            return (lookup, true)
        }
        if isNew {
            let thread = Thread {
                let outcome = Result { () throws(RedisConnectionError) in try resolve(host) }
                pending.withLock { _ = $0.removeValue(forKey: host) }
                lookup.finish(outcome)
            }
            thread.name = "chorus-resolve"
            thread.start()
        }
        let (seconds, attoseconds) = timeout.components
        let deadline = Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18)
        guard let outcome = lookup.wait(until: deadline) else {
            throw RedisConnectionError(
                "resolve \(host): no answer from DNS within \(timeout) (PUBSUB_REDIS_TIMEOUT)", isTimeout: true)
        }
        return try outcome.get()
    }

    /// Whether `host` is an IPv4 or IPv6 address (no lookup needed).
    static func isNumeric(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The blocking lookup: IPv4 first, then IPv6.
    private static func resolve(_ host: String) throws(RedisConnectionError) -> String {
        var lastError: Int32 = 0
        for family in [AF_INET, AF_INET6] {
            var hints = addrinfo()
            hints.ai_family = family
            #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
            hints.ai_socktype = SOCK_STREAM
            #endif
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, nil, &hints, &list)
            guard status == 0, let first = list else {
                lastError = status
                continue
            }
            defer { freeaddrinfo(list) }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 {
                return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        throw RedisConnectionError("resolve \(host): \(String(cString: gai_strerror(lastError)))")
    }
}
