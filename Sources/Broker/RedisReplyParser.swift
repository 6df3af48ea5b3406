import CHiredis
import NIOCore

/// Turns the bytes of one Redis connection into replies with hiredis' `redisReader` (the C
/// module parses, NIO does the I/O).
///
/// **Ownership.** Belongs to one connection's channel handler and is used only on that
/// channel's event loop (deliberately not `Sendable`); the reader is freed with it.
final class RedisReplyParser {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else { fatalError("cannot allocate a hiredis reader") }
        self.reader = reader
    }

    deinit {
        redisReaderFree(reader)
    }

    /// Appends bytes read from the socket.
    func feed(_ buffer: ByteBuffer) throws(RedisConnectionError) {
        let status = buffer.withUnsafeReadableBytes { bytes in
            redisReaderFeed(reader, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        guard status == REDIS_OK else { throw RedisConnectionError("parse: \(errorText)") }
    }

    /// The next complete reply fed so far, or nil when none is complete yet; a protocol error
    /// throws (the connection is then unusable).
    func next() throws(RedisConnectionError) -> RedisReply? {
        var reply: UnsafeMutableRawPointer? = nil
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else { throw RedisConnectionError("parse: \(errorText)") }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return RedisReply(reply.assumingMemoryBound(to: redisReply.self))
    }

    private var errorText: String {
        withUnsafeBytes(of: reader.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
