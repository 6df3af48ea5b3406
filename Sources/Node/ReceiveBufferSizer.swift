import NIOCore

/// How big a WebSocket or HTTP connection's receive buffers are: a buffer of its own for every
/// read, sized as NIO's adaptive allocator sizes them, and none kept between reads.
///
/// NIO keeps one receive buffer per channel for reuse (its pooled allocator), and an idle
/// connection kept it for its whole life: 512 bytes and its storage object, once the upgrade
/// request had grown it, about an eighth of an idle connection's memory. The pool keeps only
/// the first buffer it allocates, and reuses it only when the allocator neither names a size
/// (`nextBufferSize()`) nor says the next read may grow (`record(actualReadBytes:)`). So the
/// first read here is ``firstRead`` bytes (the pool keeps that tiny buffer), and every later
/// read gets a fresh buffer that is freed once the read is handled (``WebSocketFrameReader``
/// copies an unfinished frame's bytes out of it). A read costs one allocation; a busy
/// connection's reads are few and large, an idle one's are rare.
///
/// Small enough (5 bytes) to sit in an existential's inline storage: the channel keeps it
/// without a box of its own. Owned by its channel, on the channel's event loop.
struct ReceiveBufferSizer: RecvByteBufferAllocator {
    /// The first read, whose buffer NIO's pool keeps for ever.
    static let firstRead: UInt32 = 16
    /// The second read (the rest of an upgrade request, usually) and the size adaptation's
    /// start: halved after two reads that filled at most half, doubled after one that filled it.
    static let initial: UInt32 = 1024
    static let minimum: UInt32 = 64
    /// `WEBSOCKET_MAX_MESSAGE_SIZE` is not bound by this: a bigger message takes more reads.
    static let maximum: UInt32 = 65536

    private var next = Self.firstRead
    private var decreaseNow = false

    init() {}

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(next))
    }

    /// No size to grow a kept buffer to: the pool keeps none to reuse.
    func nextBufferSize() -> Int? { nil }

    /// Adapts the next read's size as NIO's `AdaptiveRecvByteBufferAllocator` does. Always true
    /// ("may grow"), which is what keeps the pool from reusing its first buffer.
    mutating func record(actualReadBytes: Int) -> Bool {
        if next == Self.firstRead {
            next = Self.initial
            return true
        }
        let lower = next >> 1
        if actualReadBytes <= Int(lower) && lower >= Self.minimum {
            if decreaseNow {
                next = lower
                decreaseNow = false
            } else {
                decreaseNow = true
            }
        } else if actualReadBytes >= Int(next) && next < Self.maximum {
            next <<= 1
            decreaseNow = false
        } else {
            decreaseNow = false
        }
        return true
    }
}
