import CZlib

/// Compresses whole messages for permessage-deflate (RFC 7692 §7.2.1) with no context
/// takeover: each message is a raw deflate stream of its own, ended by a sync flush whose
/// trailing `00 00 FF FF` is left off, so any client that agreed can inflate it, whatever it
/// received before.
///
/// Not thread-safe: one thread at a time (``OutboundDeflate`` holds one behind a lock, and one
/// per event loop). The
/// zlib stream is reset, not remade, between messages, so compressing costs no allocation but
/// the output's.
final class MessageDeflater {
    /// The zlib stream, at an address of its own: zlib keeps a pointer back to it.
    private let stream: UnsafeMutablePointer<z_stream>

    /// - Parameter level: zlib's compression level, 1 (fastest) to 9 (smallest).
    init(level: Int32 = 6) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = czlib_deflate_init_raw(stream, level, Int32(PerMessageDeflate.serverWindowBits), 8)
        precondition(status == Z_OK, "deflateInit2 failed (\(status)): out of memory")
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// `message` compressed, as the payload of a frame with RSV1 set.
    func compress(_ message: some Collection<UInt8>) -> [UInt8] {
        if let compressed = message.withContiguousStorageIfAvailable({ compress(UnsafeRawBufferPointer($0)) }) {
            return compressed
        }
        return Array(message).withUnsafeBytes { compress($0) }
    }

    private func compress(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        deflateReset(stream)
        // deflateBound covers a finished stream; a sync flush adds at most a few bytes more.
        var capacity = Int(deflateBound(stream, uLong(input.count))) + 16
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        while true {
            let status = output.withUnsafeMutableBytes { buffer in
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self) + produced
                stream.pointee.avail_out = uInt(capacity - produced)
                let status = deflate(stream, Z_SYNC_FLUSH)
                produced = capacity - Int(stream.pointee.avail_out)
                return status
            }
            precondition(status == Z_OK || status == Z_BUF_ERROR, "deflate failed (\(status))")
            // Done once all input is in and zlib left room: the flush is complete.
            if stream.pointee.avail_in == 0 && produced < capacity { break }
            capacity *= 2
            output.append(contentsOf: repeatElement(0, count: capacity - output.count))
        }
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        output.removeSubrange(produced...)
        if output.count >= 4 && output.suffix(4).elementsEqual([0x00, 0x00, 0xFF, 0xFF]) {
            output.removeLast(4)
        }
        return output
    }
}
