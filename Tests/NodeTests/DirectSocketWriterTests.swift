import Glibc
import NIOCore
import Testing

@testable import Node

@Suite("Frames written straight to a socket")
struct DirectSocketWriterTests {
    /// A connected pair of Unix stream sockets, closed after `body`.
    private func withSocketPair(_ body: (_ writer: CInt, _ reader: CInt) throws -> Void) throws {
        var fds: [CInt] = [0, 0]
        try #require(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        try body(fds[0], fds[1])
    }

    /// Everything the socket holds now, without waiting.
    private func drain(_ socket: CInt) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(socket, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if count <= 0 { return received }
            received += chunk[0..<count]
        }
    }

    private func frames(_ count: Int, size: Int) -> [ByteBuffer] {
        (0..<count).map { index in ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0) }) }
    }

    @Test("what the socket takes arrives in order; the rest comes back, starting mid-frame, for NIO to send")
    func partialWrite() throws {
        try withSocketPair { writer, reader in
            var small: CInt = 4096
            setsockopt(writer, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<CInt>.size))
            let staged = frames(200, size: 10_000)  // far more than the socket buffers
            var direct = DirectSocketWriter(socket: writer)
            for frame in staged { direct.stage(frame) }
            let rest = direct.flush()
            #expect(direct.isEmpty)
            #expect(!rest.isEmpty, "the socket took everything: the test did not fill it")
            let sent = drain(reader)
            let leftover = rest.flatMap { Array($0.readableBytesView) }
            #expect(sent + leftover == staged.flatMap { Array($0.readableBytesView) }, "bytes lost, repeated or reordered")
            #expect(!sent.isEmpty, "the socket took nothing")
        }
    }

    @Test("one frame goes out whole with one call, and nothing comes back")
    func singleFrame() throws {
        try withSocketPair { writer, reader in
            var direct = DirectSocketWriter(socket: writer)
            let frame = ByteBuffer(string: "\u{81}\u{05}hello")
            direct.stage(frame)
            #expect(direct.flush().isEmpty)
            #expect(drain(reader) == Array(frame.readableBytesView))
            #expect(direct.flush().isEmpty, "nothing staged, nothing sent")
        }
    }

    @Test("a socket that fails (its peer closed) hands every staged byte back, for NIO to meet the error")
    func failedSocket() throws {
        try withSocketPair { writer, reader in
            var direct = DirectSocketWriter(socket: writer)
            let staged = frames(3, size: 100)
            shutdown(writer, CInt(SHUT_WR))
            for frame in staged { direct.stage(frame) }
            let rest = direct.flush()
            #expect(rest.flatMap { Array($0.readableBytesView) } == staged.flatMap { Array($0.readableBytesView) })
        }
    }
}
