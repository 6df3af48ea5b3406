import CZlib

/// Inflates the start of a compressed delivery (permessage-deflate, `--deflate`), enough to find
/// its `"t"` and `"s"` markers, so that the generator's cost per compressed delivery stays close
/// to an uncompressed one's and the figures measure the server, not the generator's zlib.
///
/// One per event loop (``LoopStats``): the server compresses each message with no context
/// (server_no_context_takeover), so the stream is reset before each message.
final class PrefixInflater {
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var output = [UInt8](repeating: 0, count: 256)

    init() {
        stream.initialize(to: z_stream())
        precondition(czlib_inflate_init_raw(stream, 15) == Z_OK)
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Calls `body` with the first bytes (at most 256) of the message `compressed` inflates to.
    func withPrefix<T>(of compressed: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        inflateReset(stream)
        let produced = output.withUnsafeMutableBytes { out in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: compressed.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(compressed.count)
            stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(out.count)
            _ = inflate(stream, Z_SYNC_FLUSH)
            return out.count - Int(stream.pointee.avail_out)
        }
        return output.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<produced])) }
    }
}
