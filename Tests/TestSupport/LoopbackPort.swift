import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free TCP ports on 127.0.0.1 for servers the tests start as child processes.
///
/// A port is taken from 20000-31999, below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection picks it while a test keeps it unbound for a moment (Redis killed and
/// about to start again on the same port). Nothing listens on it when it is handed out, and
/// this process never hands it out twice.
public enum LoopbackPort {
    private static let handedOut = Mutex<Set<Int>>([])

    public static func reserve() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000..<32_000)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if isFree(port) { return port }
        }
        throw TestFailure("no free loopback port found in 20000-31999")
    }

    /// True when a listening socket could bind `port` on 127.0.0.1 now.
    static func isFree(_ port: Int) -> Bool {
        let descriptor = tcpSocket()
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        return withAddress(port) { bind(descriptor, $0, $1) } == 0
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port` now (a loopback
    /// connect is answered at once: it does not block).
    public static func accepts(_ port: Int) -> Bool {
        let descriptor = tcpSocket()
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return withAddress(port) { connect(descriptor, $0, $1) } == 0
    }

    /// A new TCP socket (negative on failure, as `socket(2)`).
    public static func tcpSocket() -> Int32 {
        #if canImport(Glibc)
        socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        socket(AF_INET, SOCK_STREAM, 0)
        #endif
    }

    /// A port of 127.0.0.1 held by a listening socket, for a server that must fail to bind it;
    /// close `holder` to free it.
    public static func taken() throws -> (holder: Int32, port: Int) {
        let holder = tcpSocket()
        guard holder >= 0, withAddress(0, { bind(holder, $0, $1) }) == 0, listen(holder, 1) == 0 else {
            if holder >= 0 { close(holder) }
            throw TestFailure("cannot hold a loopback port")
        }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &length) }
        }
        return (holder, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Calls `body` with `127.0.0.1:port` as a `sockaddr` and its length (for bind and connect).
    public static func withAddress<T>(_ port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
