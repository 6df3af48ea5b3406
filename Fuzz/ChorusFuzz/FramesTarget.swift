import CZlib
import NIOCore

@testable import Node

/// Target `frames`: the WebSocket frame reader, fed an arbitrary byte stream in arbitrary reads.
///
/// Input: two bytes choose the message size limit (0xFFFF: 1 MiB, else 1 + n % 4096) and the
/// mode (0x8000 to 0xFFFE: compressed messages, below), one byte seeds the split points, the
/// rest is the stream. The stream is read whole, in pieces of random sizes, and (when short) one
/// byte at a time. Invariants:
/// - no crash (AddressSanitizer watches the unmasking loop);
/// - without permessage-deflate, the payloads returned never add up to more bytes than were fed
///   and no message comes out as compressed; a message is never longer than the limit, a
///   control frame never longer than 125 bytes;
/// - a violation is sticky: asking again reports the same violation, and no frame follows it;
/// - every way of splitting the stream yields the same frames and the same violation; so does
///   a reader with permessage-deflate agreed (context takeover when the seed byte is odd, else
///   not), read whole and in pieces.
///
/// Compressed mode: the rest is not a stream but messages, which the harness compresses and
/// frames (``DeflateMode``), so that the oracle knows what each message must come out as.
enum FramesTarget {
    struct Outcome: Equatable {
        var frames: [[UInt8]] = []  // opcode byte (| 0x40 when it came compressed), then the payload
        var violation: String?
    }

    static func run(_ input: [UInt8]) {
        var input = FuzzInput(input)
        let selector = input.uint16()
        if selector & 0x8000 != 0 && selector != 0xFFFF {
            DeflateMode.run(limit: 1 + selector % 4096, &input)
            return
        }
        // Mostly small limits, so that "too big" is reachable; sometimes the default 1 MiB.
        let limit = selector == 0xFFFF ? 1 << 20 : 1 + selector % 4096
        let seed = input.byte()
        var random = SplitMix(state: UInt64(seed))
        let stream = input.rest()

        let whole = read([stream], limit: limit)
        let chunks = random.pieces(of: stream)
        let pieces = read(chunks, limit: limit)
        guard pieces == whole else {
            fuzzFailure(.frames, "split into \(chunks.map(\.count)) gives \(pieces), whole gives \(whole)")
        }
        if stream.count <= 1024 {
            let bytewise = read(stream.map { [$0] }, limit: limit)
            guard bytewise == whole else {
                fuzzFailure(.frames, "byte by byte gives \(bytewise), whole gives \(whole)")
            }
        }
        // The same stream with the extension agreed: RSV1 now marks compressed messages.
        let inflation: WebSocketFrameReader.Inflation = seed & 1 == 1 ? .contextTakeover(nil) : .perMessage
        let inflated = read([stream], limit: limit, inflation: inflation)
        let inflatedPieces = read(chunks, limit: limit, inflation: inflation)
        guard inflatedPieces == inflated else {
            fuzzFailure(.frames, "with \(inflation), split into \(chunks.map(\.count)) gives \(inflatedPieces), whole gives \(inflated)")
        }
    }

    /// The adapter to the code under test: feeds `chunks` as successive reads, as the session
    /// does, and checks the per-read invariants.
    static func read(_ chunks: [[UInt8]], limit: Int, inflation: WebSocketFrameReader.Inflation? = nil) -> Outcome {
        var reader = WebSocketFrameReader(maxMessageSize: limit, inflation: inflation)
        var outcome = Outcome()
        var fed = 0
        var returned = 0
        for chunk in chunks {
            fed += chunk.count
            reader.receive(ByteBuffer(bytes: chunk))
            do {
                while let frame = try reader.next() {
                    let payload = Array(frame.payload.readableBytesView)
                    if frame.wasCompressed {
                        guard inflation != nil else { fuzzFailure(.frames, "a compressed message without the extension") }
                    } else {
                        returned += payload.count
                        guard returned <= fed else {
                            fuzzFailure(.frames, "\(returned) payload bytes returned after \(fed) bytes fed")
                        }
                    }
                    switch frame.opcode {
                    case .close, .ping, .pong:
                        guard payload.count <= 125 else { fuzzFailure(.frames, "a \(payload.count)-byte control frame") }
                    case .text, .binary, .continuation:
                        guard payload.count <= limit else {
                            fuzzFailure(.frames, "a \(payload.count)-byte message over the limit \(limit)")
                        }
                    }
                    outcome.frames.append([frame.opcode.rawValue | (frame.wasCompressed ? 0x40 : 0)] + payload)
                }
            } catch {
                outcome.violation = "\(error)"
                // Sticky: the same violation again, never a frame.
                let again: String
                do {
                    again = try reader.next().map { "a frame (\($0.opcode))" } ?? "nil"
                } catch {
                    again = "\(error)"
                }
                guard again == outcome.violation else {
                    fuzzFailure(.frames, "after \(error), reading again gave \(again)")
                }
                reader.reset()
                return outcome
            }
            reader.endOfRead()
        }
        return outcome
    }
}

/// The `frames` target's compressed mode: messages compressed by the harness (with zlib, as a
/// client does), framed, and read by a reader with permessage-deflate agreed and by one without.
///
/// Input after the two selector bytes: one byte seeds the split points, masks and ping payloads;
/// one byte configures the client: bit 0 context takeover (else `client_no_context_takeover`,
/// each message a deflate stream of its own), bits 1-2 the level (0, 1, 6, 9), bits 3-5 the
/// window (2^9 to 2^15 bytes). Then messages, each a header byte (bit 0 text, else binary;
/// bit 1 compressed, RSV1 set; bits 2-3 one to four fragments; bit 4 a ping after the first
/// fragment, or before a message of one; bit 5 ended by a final deflate block instead of a sync
/// flush; bit 7 the length counts in 32 bytes), a length byte, and that many bytes of data.
/// Invariants, the same for the stream read whole, in random pieces and (when short) byte by
/// byte:
/// - with the extension agreed, every message comes out byte for byte as the data the harness
///   compressed (or sent uncompressed), marked compressed exactly when RSV1 was set, and pings
///   where they were sent; unless a message's frames add up to more than the limit or its data
///   is longer than the limit (too big), or it is text that is not UTF-8 (invalid UTF-8): then
///   everything before it comes out, and that violation;
/// - without the extension, everything before the first frame with RSV1 comes out as above,
///   then a protocol error naming RSV1.
enum DeflateMode {
    struct Message {
        var text: Bool
        var compressed: Bool
        var fragments: Int
        var ping: Bool
        var finalBlock: Bool
        var data: [UInt8]
    }

    static func run(limit: Int, _ input: inout FuzzInput) {
        var random = SplitMix(state: UInt64(input.byte()) | 0x100)
        let config = input.byte()
        let takeover = config & 1 != 0
        let level: Int32 = [0, 1, 6, 9][Int(config >> 1 & 3)]
        let windowBits = min(15, 9 + Int32(config >> 3 & 7))
        var messages: [Message] = []
        var rest = input.rest()[...]
        while !rest.isEmpty, messages.count < 64 {
            let header = rest.popFirst()!
            let length = Int(rest.popFirst() ?? 0) * (header & 0x80 != 0 ? 32 : 1)
            let data = Array(rest.prefix(length))
            rest = rest.dropFirst(length)
            messages.append(Message(
                text: header & 1 != 0, compressed: header & 2 != 0, fragments: 1 + Int(header >> 2 & 3),
                ping: header & 0x10 != 0, finalBlock: header & 0x20 != 0, data: data))
        }

        // The frames, and what each reader must make of them.
        let deflater = Deflater(level: level, windowBits: windowBits)
        var stream: [UInt8] = []
        var agreed = Expectation()
        var refused = Expectation()
        for message in messages {
            var payload = message.data
            if message.compressed {
                if !takeover { deflater.reset() }
                payload = deflater.compress(message.data, finalBlock: message.finalBlock)
            }
            // Fragment boundaries, sorted; empty fragments allowed.
            let cuts = (1..<message.fragments).map { _ in random.below(payload.count + 1) }.sorted()
            let bounds = [0] + cuts + [payload.count]
            let ping = (0..<random.below(4)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var total = 0
            for index in 0..<message.fragments {
                if message.ping && (index == 1 || message.fragments == 1) {
                    stream += frame(fin: true, rsv1: false, opcode: 0x9, ping, &random)
                    agreed.expect(frame: [0x9] + ping)
                    refused.expect(frame: [0x9] + ping)
                }
                let fragment = Array(payload[bounds[index]..<bounds[index + 1]])
                let opcode: UInt8 = index > 0 ? 0x0 : message.text ? 0x1 : 0x2
                let rsv1 = index == 0 && message.compressed
                stream += frame(fin: index == message.fragments - 1, rsv1: rsv1, opcode: opcode, fragment, &random)
                if rsv1 { refused.expect(violation: "RSV1") }
                total += fragment.count
                if total > limit {
                    agreed.expect(violation: "tooBig")
                    refused.expect(violation: "tooBig")
                }
            }
            let verdict: String? =
                message.data.count > limit ? "tooBig"
                : message.text && String(validating: message.data, as: UTF8.self) == nil ? "invalidUTF8" : nil
            let out = [(message.text ? 0x1 : 0x2) | (message.compressed ? 0x40 : 0)] + message.data
            if let verdict {
                agreed.expect(violation: verdict)
                refused.expect(violation: verdict)
            }
            agreed.expect(frame: out)
            refused.expect(frame: out)
        }

        let chunks = random.pieces(of: stream)
        let inflation: WebSocketFrameReader.Inflation = takeover ? .contextTakeover(nil) : .perMessage
        var readings = [("whole", [stream]), ("split into \(chunks.map(\.count))", chunks)]
        if stream.count <= 2048 { readings.append(("byte by byte", stream.map { [$0] })) }
        for (how, pieces) in readings {
            let read = normalised(FramesTarget.read(pieces, limit: limit, inflation: inflation))
            guard read == agreed.expected else {
                fuzzFailure(.frames, "permessage-deflate (takeover \(takeover), level \(level), window \(windowBits)), \(how): read \(read)\n expected \(agreed.expected)")
            }
        }
        for (how, pieces) in readings.prefix(2) {
            let read = normalised(FramesTarget.read(pieces, limit: limit))
            guard read == refused.expected else {
                fuzzFailure(.frames, "no extension, \(how): read \(read)\n expected \(refused.expected)")
            }
        }
    }

    /// What a reader must return: frames until the first violation, then that violation.
    struct Expectation {
        var expected = FramesTarget.Outcome()

        mutating func expect(frame: [UInt8]) {
            if expected.violation == nil { expected.frames.append(frame) }
        }

        mutating func expect(violation: String) {
            if expected.violation == nil { expected.violation = violation }
        }
    }

    /// The reader's violation as the model names it: `tooBig`, `invalidUTF8`, `RSV1` for a
    /// protocol error about RSV1; any other stays as it is (and is no model's).
    static func normalised(_ outcome: FramesTarget.Outcome) -> FramesTarget.Outcome {
        var outcome = outcome
        if let violation = outcome.violation, violation.hasPrefix("protocolError"), violation.contains("RSV1") {
            outcome.violation = "RSV1"
        }
        return outcome
    }

    /// One masked client frame.
    static func frame(fin: Bool, rsv1: Bool, opcode: UInt8, _ payload: [UInt8], _ random: inout SplitMix) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
        if payload.count < 126 {
            bytes.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            bytes.append(0x80 | 127)
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: payload.count >> ($0 * 8)) }
        }
        let mask = (0..<4).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes += mask
        bytes += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
        return bytes
    }

    /// A client's compressor (RFC 7692 §7.2.1): raw deflate, each message ended by a sync flush
    /// whose `00 00 FF FF` is left off, or by a final block; the window carries over between
    /// messages unless ``reset()``.
    final class Deflater {
        let stream: UnsafeMutablePointer<z_stream>

        init(level: Int32, windowBits: Int32) {
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            let status = czlib_deflate_init_raw(stream, level, windowBits, 8)
            precondition(status == Z_OK, "deflateInit2 failed (\(status))")
        }

        deinit {
            deflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }

        func reset() {
            deflateReset(stream)
        }

        func compress(_ data: [UInt8], finalBlock: Bool) -> [UInt8] {
            var output: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            var input = data
            input.withUnsafeMutableBufferPointer { buffer in
                stream.pointee.next_in = buffer.baseAddress
                stream.pointee.avail_in = uInt(buffer.count)
                repeat {
                    let status = chunk.withUnsafeMutableBufferPointer { out in
                        stream.pointee.next_out = out.baseAddress
                        stream.pointee.avail_out = uInt(out.count)
                        return deflate(stream, finalBlock ? Z_FINISH : Z_SYNC_FLUSH)
                    }
                    precondition(status == Z_OK || status == Z_BUF_ERROR || status == Z_STREAM_END, "deflate failed (\(status))")
                    output += chunk[..<(chunk.count - Int(stream.pointee.avail_out))]
                } while stream.pointee.avail_out == 0
                stream.pointee.next_in = nil
                stream.pointee.next_out = nil
            }
            if finalBlock {
                deflateReset(stream)  // the reader's inflater starts a new stream too
            } else if output.suffix(4).elementsEqual([0x00, 0x00, 0xFF, 0xFF]) {
                output.removeLast(4)
            } else {
                // zlib wrote nothing (no new input since the last flush): RFC 7692 §7.2.1 appends
                // an empty stored block, `00 00 00 FF FF`, and takes the last four bytes off.
                output.append(0x00)
            }
            return output
        }
    }
}
