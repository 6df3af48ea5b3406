import Glibc
import NIOCore

/// Frames written straight to a connection's socket, one system call per flush, past NIO's
/// per-write path (the pipeline's head, the pending-writes queue, the promise bookkeeping, and
/// the retains and releases around each), which was most of a delivery's user-space cost.
///
/// **Ownership.** The transport owns the writer and uses it on the channel's event loop only,
/// while the channel is active and NIO holds none of its bytes: whatever the socket does not
/// take, ``flush()`` hands back, and the transport queues it in NIO, whose writes it then uses
/// until NIO has sent everything. So bytes leave in the order they were staged, and everything
/// the node could not send yet still waits in NIO, counted against the pending limit.
///
/// The socket is NIO's: the writer never closes it, and only writes to it.
struct DirectSocketWriter {
    /// The frames staged since the last flush: the first inline (a drain at a low rate writes
    /// one frame per connection), the rest in an array allocated only for a batch.
    private var first: ByteBuffer?
    private var more: [ByteBuffer] = []
    /// Last: the transport packs its flags into the room it leaves.
    private let socket: CInt

    init(socket: CInt) {
        self.socket = socket
    }

    var isEmpty: Bool { first == nil }

    mutating func stage(_ bytes: ByteBuffer) {
        if first == nil {
            first = bytes
        } else {
            more.append(bytes)
        }
    }

    /// Writes the staged frames and returns what the socket did not take (all of it after an
    /// error, which NIO then meets and handles by closing the channel), in order; empty when
    /// everything went.
    mutating func flush() -> [ByteBuffer] {
        guard var head = first else { return [] }
        first = nil
        if more.isEmpty {
            let sent = head.withUnsafeReadableBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if sent == head.readableBytes { return [] }
            if sent > 0 { head.moveReaderIndex(forwardBy: sent) }
            return [head]
        }
        var frames = [head]
        frames.append(contentsOf: more)
        more = []
        var sentUpTo = 0  // frames before this index have gone entirely
        while sentUpTo < frames.count {
            let batch = frames[sentUpTo..<min(frames.count, sentUpTo + Int(UIO_MAXIOV))]
            let wanted = batch.reduce(0) { $0 + $1.readableBytes }
            var sent = Self.sendMessage(socket, batch)
            if sent <= 0 { break }
            let complete = sent == wanted
            while sent > 0, sentUpTo < frames.count {
                let length = frames[sentUpTo].readableBytes
                if sent >= length {
                    sent -= length
                    sentUpTo += 1
                } else {
                    frames[sentUpTo].moveReaderIndex(forwardBy: sent)
                    sent = 0
                }
            }
            if !complete { break }
        }
        return Array(frames[sentUpTo...])
    }

    /// One `sendmsg` of `frames`: the bytes sent, or -1.
    ///
    /// The frames' storage outlives the call (the caller holds them), so their addresses may
    /// be collected first and used after each buffer's closure returns.
    private static func sendMessage(_ socket: CInt, _ frames: ArraySlice<ByteBuffer>) -> Int {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: frames.count) { vectors in
            for (index, frame) in frames.enumerated() {
                frame.withUnsafeReadableBytes { bytes in
                    vectors[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                }
            }
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = frames.count
            return sendmsg(socket, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
    }
}
