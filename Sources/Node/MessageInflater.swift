import CZlib
import NIOCore

/// Inflates a client's compressed messages (permessage-deflate, RFC 7692 §7.2.2), never past a
/// limit: a message that would inflate to more than `limit` bytes is refused as soon as
/// `limit + 1` bytes have come out, however much more it holds (a zip bomb of a few kilobytes
/// can stand for gigabytes), so the node holds at most `limit + 1` bytes for it.
///
/// Loop-bound: owned by one connection's ``WebSocketFrameReader``. With context takeover the
/// zlib stream (and its 32 KiB window) lives from message to message, as the client's does;
/// without it, each message gets a fresh stream that is ended once the message is out.
final class MessageInflater {
    /// The zlib stream, at an address of its own: zlib keeps a pointer back to it.
    private let stream: UnsafeMutablePointer<z_stream>

    /// What a message failed on.
    enum Failure: Error, Equatable {
        /// It inflates to more than the limit.
        case tooBig
        /// It is not a valid deflate stream.
        case invalidData
    }

    /// The bytes RFC 7692 §7.2.2 appends to a message's payload before inflating it.
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // Any window up to 15 bits reads what a client with a smaller one sends.
        let status = czlib_inflate_init_raw(stream, 15)
        precondition(status == Z_OK, "inflateInit2 failed (\(status)): out of memory")
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// The message whose compressed payload (its frames' payloads joined) is `compressed`.
    func inflate(_ compressed: ByteBuffer, limit: Int) throws(Failure) -> ByteBuffer {
        var input = compressed
        input.writeBytes(Self.tail)
        var output = ByteBufferAllocator().buffer(capacity: min(limit + 1, max(256, 4 * input.readableBytes)))
        let outcome = input.withUnsafeReadableBytes { bytes in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(bytes.count)
            defer {
                stream.pointee.next_in = nil
                stream.pointee.next_out = nil
            }
            return inflateAll(into: &output, limit: limit)
        }
        if let outcome { throw outcome }
        return output
    }

    /// Inflates the stream's pending input into `output`, at most `limit + 1` bytes of it.
    private func inflateAll(into output: inout ByteBuffer, limit: Int) -> Failure? {
        while true {
            let allowance = limit + 1 - output.readableBytes
            guard allowance > 0 else { return .tooBig }
            // Grow by what is there already (at least 4 KiB), so a large message takes few rounds.
            let chunk = min(allowance, max(4096, output.readableBytes))
            var status: Int32 = Z_OK
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk) { buffer in
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(chunk)
                status = CZlib.inflate(stream, Z_SYNC_FLUSH)
                return chunk - Int(stream.pointee.avail_out)
            }
            if output.readableBytes > limit { return .tooBig }
            switch status {
            case Z_STREAM_END:
                // The client ended its deflate stream (a final block, RFC 7692 §7.2.3.3): its
                // next message starts a new one, whatever the context takeover. Only the appended
                // tail may follow a final block, after the one 0x00 byte §7.2.3.4's example has.
                let left = Int(stream.pointee.avail_in) - Self.tail.count
                let rest = left == 1 ? stream.pointee.next_in.pointee : 0
                inflateReset(stream)
                return left <= 0 || (left == 1 && rest == 0) ? nil : .invalidData
            case Z_OK, Z_BUF_ERROR:
                // All input read, and zlib stopped short of the room it had: nothing is pending.
                if stream.pointee.avail_out > 0 {
                    return stream.pointee.avail_in == 0 ? nil : .invalidData
                }
            default:
                return .invalidData
            }
        }
    }
}
