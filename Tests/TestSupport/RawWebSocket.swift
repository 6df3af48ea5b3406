import Foundation
#if canImport(Glibc)
import Glibc
private let systemSend = Glibc.send
private let systemConnect = Glibc.connect
private let systemPoll = Glibc.poll
/// The peer shut its side down (seen without reading): POLLRDHUP (0x2000, which Glibc's module
/// does not export without _GNU_SOURCE), POLLHUP, POLLERR.
private let peerClosedEvents = Int16(0x2000 | POLLHUP | POLLERR)
#elseif canImport(Darwin)
import Darwin
private let systemSend = Darwin.send
private let systemConnect = Darwin.connect
private let systemPoll = Darwin.poll
private let peerClosedEvents = Int16(POLLHUP | POLLERR)
#endif

/// A WebSocket client on a plain blocking socket that writes hand-made frames: for tests of
/// what a node does with clients that misbehave, such as one that sends as fast as the socket
/// takes bytes and never reads.
///
/// Blocking calls run on a thread of their own (``onOwnThread(_:)``), each bounded by a
/// timeout. One task uses a client at a time.
public final class RawWebSocket: @unchecked Sendable {
    private let descriptor: Int32
    /// Bytes received after the 101 response; those before `parsed` are read.
    private var received: [UInt8]
    private var parsed = 0

    private init(descriptor: Int32, received: [UInt8]) {
        self.descriptor = descriptor
        self.received = received
    }

    deinit { close(descriptor) }

    /// Opens `ws://127.0.0.1:port/ws`, with `token` as `Authorization: Bearer` when given.
    public static func connect(port: Int, token: String? = nil) async throws -> RawWebSocket {
        try await onOwnThread { try blockingConnect(port: port, token: token) }
    }

    private static func blockingConnect(port: Int, token: String?) throws -> RawWebSocket {
        let descriptor = LoopbackPort.tcpSocket()
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        setTimeouts(descriptor, seconds: 10)
        guard LoopbackPort.withAddress(port, { systemConnect(descriptor, $0, $1) }) == 0 else {
            close(descriptor)
            throw TestFailure("connect to 127.0.0.1:\(port): errno \(errno)")
        }
        var request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        let client = RawWebSocket(descriptor: descriptor, received: [])
        guard client.sendAll(Array(request.utf8)) else { throw TestFailure("sending the upgrade: errno \(errno)") }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let end = client.received.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: client.received[..<end.lowerBound], as: UTF8.self)
                guard head.hasPrefix("HTTP/1.1 101") else { throw TestFailure("upgrade refused: \(head)") }
                client.received.removeSubrange(..<end.upperBound)
                return client
            }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw TestFailure("no upgrade response (errno \(errno))") }
            client.received += chunk[..<count]
        }
    }

    private static func setTimeouts(_ descriptor: Int32, seconds: Int) {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A masked client frame with `opcode` and `payload` (lengths in the minimal encoding,
    /// unless `extendedLength` forces a 16-bit one).
    public static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, extendedLength: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 && !extendedLength {
            bytes.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes.append(0x80 | 126)
            bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            bytes.append(0x80 | 127)
            bytes += withUnsafeBytes(of: UInt64(payload.count).bigEndian, Array.init)
        }
        let mask: [UInt8] = [0x5A, 0x13, 0xC7, 0x08]
        bytes += mask
        bytes += payload.enumerated().map { $1 ^ mask[$0 & 3] }
        return bytes
    }

    /// Sends `bytes` whole; false when the connection ended or a send timed out.
    public func send(_ bytes: [UInt8]) async -> Bool {
        await (try? onOwnThread { self.sendAll(bytes) }) ?? false
    }

    private func sendAll(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { systemSend(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// What a flood came to.
    public struct FloodOutcome: Sendable, CustomStringConvertible {
        /// Whether the node ended the connection (a reset, or its side shut down) before the timeout.
        public var closedByNode: Bool
        public var elapsed: Duration
        public var bytesSent: Int

        public var description: String {
            "closed by node: \(closedByNode), after \(elapsed), \(bytesSent) bytes sent"
        }
    }

    /// Sends `pattern` (whole frames) over and over as fast as the socket takes it, never
    /// reading, until the node ends the connection or `timeout` passes. The node ending it is
    /// seen as a failed send (a reset) or as its side shut down (`POLLRDHUP`), which is checked
    /// without reading anything.
    public func flood(_ pattern: [UInt8], timeout: Duration = .seconds(30)) async -> FloodOutcome {
        await (try? onOwnThread { self.blockingFlood(pattern, timeout: timeout) })
            ?? FloodOutcome(closedByNode: false, elapsed: .zero, bytesSent: 0)
    }

    private func blockingFlood(_ pattern: [UInt8], timeout: Duration) -> FloodOutcome {
        var burst: [UInt8] = []
        while burst.count < 32_768 { burst += pattern }
        var limit = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let start = ContinuousClock.now
        var sent = 0
        var offset = 0
        while ContinuousClock.now - start < timeout {
            let count = burst[offset...].withUnsafeBytes {
                systemSend(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                sent += count
                offset = (offset + count) % burst.count
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                return FloodOutcome(closedByNode: true, elapsed: ContinuousClock.now - start, bytesSent: sent)
            }
            var poll = pollfd(fd: descriptor, events: peerClosedEvents, revents: 0)
            if systemPoll(&poll, 1, 0) > 0, poll.revents & peerClosedEvents != 0 {
                return FloodOutcome(closedByNode: true, elapsed: ContinuousClock.now - start, bytesSent: sent)
            }
        }
        return FloodOutcome(closedByNode: false, elapsed: ContinuousClock.now - start, bytesSent: sent)
    }

    /// Reads what the node sent until the connection ends (or `timeout` passes) and returns the
    /// code of its close frame; nil when none arrived whole (a node may drop a connection whose
    /// close frame sat behind bytes the client never read).
    public func closeCode(timeout: Duration = .seconds(10)) async -> UInt16? {
        await (try? onOwnThread { self.blockingCloseCode(timeout: timeout) }) ?? nil
    }

    private func blockingCloseCode(timeout: Duration) -> UInt16? {
        Self.setTimeouts(descriptor, seconds: 1)
        let start = ContinuousClock.now
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while ContinuousClock.now - start < timeout {
            while let (opcode, payload) = nextFrame() {
                if opcode == 0x8 { return payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
            }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received.removeFirst(parsed)
                parsed = 0
                received += chunk[..<count]
            } else if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                break
            }
        }
        while let (opcode, payload) = nextFrame() {
            if opcode == 0x8 { return payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
        }
        return nil
    }

    /// One whole server frame (unmasked) off the received bytes.
    private func nextFrame() -> (opcode: UInt8, payload: [UInt8])? {
        let bytes = received[parsed...]
        let start = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[start + 1] & 0x7F)
        var header = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[start + 2]) << 8 | Int(bytes[start + 3])
            header = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[(start + 2)..<(start + 10)].reduce(0) { $0 << 8 | Int($1) }
            header = 10
        }
        guard bytes.count >= header + length else { return nil }
        let frame = (bytes[start] & 0x0F, Array(bytes[(start + header)..<(start + header + length)]))
        parsed += header + length
        return frame
    }
}
