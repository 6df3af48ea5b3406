import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A reply of Redis (RESP2).
public enum RedisValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int)
    /// nil for the null bulk string.
    case bulk(String?)
    /// nil for the null array.
    case array([RedisValue]?)

    public var text: String? {
        switch self {
        case .simple(let text): text
        case .bulk(let text): text
        case .integer(let number): String(number)
        default: nil
        }
    }
}

/// One Redis command on a fresh loopback connection, without `redis-cli` and without blocking
/// the cooperative pool: the socket calls run on a thread of their own (see ``onOwnThread(_:)``),
/// each bounded by a timeout.
public enum RedisWire {
    /// Passwords of the loopback servers that require one (`requirepass`), by port: a command
    /// to such a port is preceded by `AUTH <password>` on the same connection.
    public static let passwords = Mutex<[Int: String]>([:])

    public static func command(_ arguments: [String], port: Int, timeout: Duration = .seconds(5)) async throws -> RedisValue {
        try await onOwnThread { try blockingCommand(arguments, port: port, timeout: timeout) }
    }

    static func blockingCommand(_ arguments: [String], port: Int, timeout: Duration) throws -> RedisValue {
        let descriptor = LoopbackPort.tcpSocket()
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { close(descriptor) }
        // On Linux SO_SNDTIMEO also bounds connect(2).
        var limit = timeval()
        limit.tv_sec = .init(timeout.components.seconds)
        limit.tv_usec = .init(timeout.components.attoseconds / 1_000_000_000_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let connected = LoopbackPort.withAddress(port) { connect(descriptor, $0, $1) }
        guard connected == 0 else { throw TestFailure("connect to 127.0.0.1:\(port): errno \(errno)") }

        let password = passwords.withLock { $0[port] }
        var request: [UInt8] = []
        for command in (password.map { [["AUTH", $0]] } ?? []) + [arguments] {
            request += Array("*\(command.count)\r\n".utf8)
            for argument in command {
                request += Array("$\(argument.utf8.count)\r\n".utf8) + Array(argument.utf8) + Array("\r\n".utf8)
            }
        }
        var awaitingAuth = password != nil
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw TestFailure("send to 127.0.0.1:\(port): errno \(errno)") }
            sent += count
        }

        var reader = Reader()
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            if let value = try reader.parse() {
                guard awaitingAuth else { return value }
                awaitingAuth = false
                if case .error = value { return value }
                continue
            }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else {
                throw TestFailure("no complete reply from 127.0.0.1:\(port) to \(arguments.first ?? "") (errno \(errno))")
            }
            reader.bytes += chunk[..<count]
        }
    }

    /// Parses RESP2 from the bytes received so far.
    struct Reader {
        var bytes: [UInt8] = []

        /// One whole reply, or nil when more bytes are needed.
        mutating func parse() throws -> RedisValue? {
            var index = 0
            guard let value = try value(at: &index) else { return nil }
            bytes.removeFirst(index)
            return value
        }

        private func line(at index: inout Int) -> String? {
            var end = index
            while end + 1 < bytes.count {
                if bytes[end] == 13, bytes[end + 1] == 10 {
                    let text = String(decoding: bytes[index..<end], as: UTF8.self)
                    index = end + 2
                    return text
                }
                end += 1
            }
            return nil
        }

        private func value(at index: inout Int) throws -> RedisValue? {
            guard index < bytes.count else { return nil }
            let kind = bytes[index]
            var cursor = index + 1
            guard let header = line(at: &cursor) else { return nil }
            switch kind {
            case UInt8(ascii: "+"):
                index = cursor
                return .simple(header)
            case UInt8(ascii: "-"):
                index = cursor
                return .error(header)
            case UInt8(ascii: ":"):
                guard let number = Int(header) else { throw TestFailure("bad RESP integer \(header)") }
                index = cursor
                return .integer(number)
            case UInt8(ascii: "$"):
                guard let length = Int(header) else { throw TestFailure("bad RESP bulk length \(header)") }
                if length < 0 {
                    index = cursor
                    return .bulk(nil)
                }
                guard cursor + length + 2 <= bytes.count else { return nil }
                let text = String(decoding: bytes[cursor..<cursor + length], as: UTF8.self)
                index = cursor + length + 2
                return .bulk(text)
            case UInt8(ascii: "*"):
                guard let count = Int(header) else { throw TestFailure("bad RESP array length \(header)") }
                if count < 0 {
                    index = cursor
                    return .array(nil)
                }
                var items: [RedisValue] = []
                for _ in 0..<count {
                    guard let item = try value(at: &cursor) else { return nil }
                    items.append(item)
                }
                index = cursor
                return .array(items)
            default:
                throw TestFailure("not RESP: \(String(decoding: bytes.prefix(40), as: UTF8.self))")
            }
        }
    }
}
