import NIOCore
import Testing

@testable import Node

@Suite("Receive buffers: none kept between reads, sized as NIO's adaptive allocator sizes them")
struct ReceiveBufferSizerTests {
    static let allocator = ByteBufferAllocator()

    @Test("the first read is tiny (the buffer NIO keeps), the next ones start at the initial size")
    func firstReadIsTiny() {
        var sizer = ReceiveBufferSizer()
        #expect(sizer.buffer(allocator: Self.allocator).capacity == Int(ReceiveBufferSizer.firstRead))
        _ = sizer.record(actualReadBytes: Int(ReceiveBufferSizer.firstRead))
        #expect(sizer.buffer(allocator: Self.allocator).capacity == Int(ReceiveBufferSizer.initial))
    }

    @Test("NIO's pool never reuses a kept buffer: no size is named and every read may grow")
    func poolKeepsNothingToReuse() {
        var sizer = ReceiveBufferSizer()
        #expect(sizer.nextBufferSize() == nil)
        let mayGrow = [1, 1, 100_000, 1].map { sizer.record(actualReadBytes: $0) }
        #expect(mayGrow == [true, true, true, true])
        #expect(sizer.nextBufferSize() == nil)
    }

    @Test("full reads double the size up to the maximum; two reads of at most half halve it down to the minimum")
    func adapts() {
        var sizer = ReceiveBufferSizer()
        _ = sizer.record(actualReadBytes: 1)
        var size = Int(ReceiveBufferSizer.initial)
        while size < Int(ReceiveBufferSizer.maximum) {
            _ = sizer.record(actualReadBytes: size)
            size *= 2
            #expect(sizer.buffer(allocator: Self.allocator).capacity == size)
        }
        _ = sizer.record(actualReadBytes: size)
        #expect(sizer.buffer(allocator: Self.allocator).capacity == Int(ReceiveBufferSizer.maximum))
        for _ in 0..<64 { _ = sizer.record(actualReadBytes: 1) }
        #expect(sizer.buffer(allocator: Self.allocator).capacity == Int(ReceiveBufferSizer.minimum))
        _ = sizer.record(actualReadBytes: 1)
        _ = sizer.record(actualReadBytes: Int(ReceiveBufferSizer.minimum) / 2 + 1)
        #expect(sizer.buffer(allocator: Self.allocator).capacity == Int(ReceiveBufferSizer.minimum), "one small read does not halve")
    }

    @Test("fits an existential's inline storage, so the channel keeps it without a box")
    func fitsInline() {
        #expect(MemoryLayout<ReceiveBufferSizer>.size <= 3 * MemoryLayout<Int>.size)
    }
}
