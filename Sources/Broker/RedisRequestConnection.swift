import NIOCore
import NIOPosix

/// A connection that sends one command and blocks until its reply: what a
/// ``RedisCommandQueue`` owns. Two transports do this:
///
/// - plain TCP: ``RedisConnection``, a blocking hiredis context: one system call each way and
///   no thread hop, the fastest round trip for a queue whose thread waits anyway;
/// - TLS (`rediss://`): ``RedisChannelConnection``, a NIO channel behind NIOSSL, since
///   Debian's hiredis 0.14 has no TLS. Its replies are read on a loop of the queues' own
///   (``RedisRequestConnections/loops``), not on a node loop busy with clients, and handed to
///   the waiting thread.
///
/// Not `Sendable`: used by one thread at a time, never an event loop's.
protocol RedisRequestConnection: AnyObject {
    /// Sends one command and waits for its reply (an error reply is returned, not thrown),
    /// bounded by the timeout given at connect.
    func command(_ arguments: [[UInt8]]) throws(RedisConnectionError) -> RedisReply
}

extension RedisRequestConnection {
    /// Prepares a fresh connection (``RedisConnection/handshake(_:clientName:)``); a refused
    /// `AUTH` or `SELECT` throws.
    func shakeHands(_ url: RedisURL, clientName: String?) throws(RedisConnectionError) {
        for arguments in RedisConnection.handshake(url, clientName: clientName) {
            if case .error(let message) = try command(arguments.map { Array($0.utf8) }), RedisConnection.failsHandshake(arguments[0], error: message) {
                throw RedisConnectionError("\(arguments[0]) on \(url.server) failed: \(message)")
            }
        }
    }
}

extension RedisConnection: RedisRequestConnection {}
extension RedisChannelConnection: RedisRequestConnection {}

enum RedisRequestConnections {
    /// Connects to `url` with the transport its scheme asks for, authenticated, with its
    /// database selected and the client named.
    static func open(_ url: RedisURL, timeout: Duration, clientName: String?) throws(RedisConnectionError) -> any RedisRequestConnection {
        guard url.tls != nil else { return try RedisConnection(connectingTo: url, timeout: timeout, clientName: clientName) }
        return try RedisChannelConnection(connectingTo: url, timeout: timeout, clientName: clientName, on: loops.next())
    }

    /// The event loop of the command queues' NIO connections (every TLS request connection of
    /// the process, and a queue's Sentinel discovery), made at the first one: not a node loop
    /// busy with clients.
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
