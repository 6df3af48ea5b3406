import CHiredis
import NIOCore

/// Writes Redis commands in RESP with hiredis' `redisFormatCommandArgv`; every argument is
/// binary-safe. A pure function: any thread.
enum RedisCommandEncoder {
    /// Appends one command to `buffer`.
    static func append(_ arguments: [[UInt8]], to buffer: inout ByteBuffer) {
        var target: UnsafeMutablePointer<CChar>? = nil
        let length = RedisConnection.withArgv(arguments) { argc, argv, lengths in
            redisFormatCommandArgv(&target, argc, argv, lengths)
        }
        guard length > 0, let target else { fatalError("hiredis could not format a command (out of memory)") }
        defer { redisFreeCommand(target) }
        buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(length)))
    }

    /// Appends one command of text arguments.
    static func append(_ arguments: [String], to buffer: inout ByteBuffer) {
        append(arguments.map { Array($0.utf8) }, to: &buffer)
    }
}
