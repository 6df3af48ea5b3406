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
    /// The memory the kernel holds for `channel`'s received bytes that nobody has read yet; 0
    /// when none wait or the platform cannot tell. Call on the channel's event loop (the answer
    /// is then immediate).
    static func unreadBytes(_ channel: any Channel) -> UInt32 {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return 0 }
        var queued: UInt32 = 0
        let reading: EventLoopFuture<UInt32> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_MEMINFO))
        reading.assumeIsolated().whenSuccess { queued = $0 }  // completed already: on the loop, a getsockopt
        return queued
        #else
        return 0
        #endif
    }
}

/// When bytes waiting in the socket excuse a late answer, and when they no longer do.
///
/// The kernel's count (``SocketReceiveQueue/unreadBytes(_:)``) also holds TCP segments that
/// arrived out of order, which no read can take while an earlier one is missing. A Redis that
/// died, or a network that partitioned, just after one segment was lost leaves that count above
/// zero for good, and a deadline excused by the count alone would never fail the connection (the
/// kernel would give up on it only after its retransmissions, about 15 minutes). So waiting bytes
/// excuse a deadline only when the count moved since they last did: bytes arrived that the loop
/// has not read. A loop that still has not read them a whole timeout later fails the connection.
/// A value, owned by one session on its loop.
struct UnreadBytesGrace {
    /// The count that excused the last deadline since the last read.
    private var excusedAt: UInt32?

    /// Whether `unread` bytes waiting now excuse a deadline just reached.
    mutating func excuses(unread: UInt32) -> Bool {
        guard unread > 0, unread != excusedAt else { return false }
        excusedAt = unread
        return true
    }

    /// The loop read from the socket: the next deadline is judged afresh.
    mutating func bytesRead() {
        excusedAt = nil
    }
}
