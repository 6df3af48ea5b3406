import NIOCore

@testable import Node

/// Target `inflate`: permessage-deflate's bounded inflation (``MessageInflater``), fed arbitrary
/// bytes as a compressed message, and the node's compressor round-tripped through it.
///
/// Input: two bytes choose the limit (1 + n % 65536), the rest is the data. Invariants:
/// - no crash (AddressSanitizer watches the zlib buffers);
/// - the data as a compressed message never inflates past the limit: either an output of at
///   most `limit` bytes, too big, or invalid data;
/// - the limit only cuts: under twice the limit, a message read at the limit reads the same, and
///   one too big at the limit is too big or longer than the limit;
/// - the data compressed by ``MessageDeflater`` inflates back to itself when it fits the limit,
///   and is too big when it does not.
enum InflateTarget {
    static func run(_ input: [UInt8]) {
        var input = FuzzInput(input)
        let limit = 1 + input.uint16() % 65536
        let data = input.rest()

        let atLimit = inflate(data, limit: limit)
        if case .success(let output) = atLimit, output.count > limit {
            fuzzFailure(.inflate, "\(output.count) bytes out under the limit \(limit)")
        }
        let doubled = inflate(data, limit: 2 * limit)
        switch (atLimit, doubled) {
        case (.success(let small), .success(let large)) where small != large:
            fuzzFailure(.inflate, "the limit changed the output: \(small.count) bytes against \(large.count)")
        case (.success, .failure(let failure)):
            fuzzFailure(.inflate, "read at limit \(limit), \(failure) at \(2 * limit)")
        case (.failure(.tooBig), .success(let large)) where large.count <= limit:
            fuzzFailure(.inflate, "too big at \(limit), \(large.count) bytes at \(2 * limit)")
        case (.failure(.invalidData), .success):
            fuzzFailure(.inflate, "invalid at limit \(limit), read at \(2 * limit)")
        default:
            break
        }

        let compressed = MessageDeflater().compress(data)
        switch inflate(compressed, limit: limit) {
        case .success(let output) where output == data:
            break
        case .failure(.tooBig) where data.count > limit:
            break
        case let other:
            fuzzFailure(.inflate, "\(data.count) bytes compressed to \(compressed.count) came back as \(other)")
        }
    }

    static func inflate(_ bytes: [UInt8], limit: Int) -> Result<[UInt8], MessageInflater.Failure> {
        Result { () throws(MessageInflater.Failure) in
            Array(try MessageInflater().inflate(ByteBuffer(bytes: bytes), limit: limit).readableBytesView)
        }
    }
}
