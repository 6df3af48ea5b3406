import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Whether received bytes wait unread in a channel's socket.
///
/// A Redis link's deadline must fail a connection only when Redis is silent. NIO runs every task
/// that is ready before it reads its sockets again, so a loop kept busy by other work (a long
/// drain, a stream of hand-offs from other threads, other channels' handlers) can reach a
/// deadline while Redis's answer already sits in the socket. The kernel knows: `SO_MEMINFO`'s
/// first value is the memory held by the socket's receive queue, zero once everything received
/// has been read.
enum SocketReceiveQueue {
    /// True when the kernel holds bytes for `channel` that nobody has read yet; false when none
    /// wait or the platform cannot tell. Call on the channel's event loop (the answer is then
    /// immediate).
    static func hasUnreadBytes(_ channel: any Channel) -> Bool {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return false }
        var queued: UInt32 = 0
        let reading: EventLoopFuture<UInt32> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_MEMINFO))
        reading.assumeIsolated().whenSuccess { queued = $0 }  // completed already: on the loop, a getsockopt
        return queued > 0
        #else
        return false
        #endif
    }
}
