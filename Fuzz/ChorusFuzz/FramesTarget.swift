import NIOCore

@testable import Node

/// Target `frames`: the WebSocket frame reader, fed an arbitrary byte stream in arbitrary reads.
///
/// Input: two bytes choose the message size limit, one byte seeds the split points, the rest is
/// the stream. The stream is read whole, in pieces of random sizes, and (when short) one byte at
/// a time. Invariants:
/// - no crash (AddressSanitizer watches the unmasking loop);
/// - the payloads returned never add up to more bytes than were fed, a message is never longer
///   than the limit, a control frame never longer than 125 bytes;
/// - a violation is sticky: asking again reports the same violation, and no frame follows it;
/// - every way of splitting the stream yields the same frames and the same violation.
enum FramesTarget {
    struct Outcome: Equatable {
        var frames: [[UInt8]] = []  // opcode byte, then the payload
        var violation: String?
    }

    static func run(_ input: [UInt8]) {
        var input = FuzzInput(input)
        let selector = input.uint16()
        // Mostly small limits, so that "too big" is reachable; sometimes the default 1 MiB.
        let limit = selector == 0xFFFF ? 1 << 20 : 1 + selector % 4096
        var random = SplitMix(state: UInt64(input.byte()))
        let stream = input.rest()

        let whole = read([stream], limit: limit)
        var chunks: [[UInt8]] = []
        var start = 0
        while start < stream.count {
            let end = min(stream.count, start + 1 + random.below(random.below(4) == 0 ? 300 : 12))
            chunks.append(Array(stream[start..<end]))
            start = end
        }
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
    }

    /// The adapter to the code under test: feeds `chunks` as successive reads, as the session
    /// does, and checks the per-read invariants.
    static func read(_ chunks: [[UInt8]], limit: Int) -> Outcome {
        var reader = WebSocketFrameReader(maxMessageSize: limit)
        var outcome = Outcome()
        var fed = 0
        var returned = 0
        for chunk in chunks {
            fed += chunk.count
            reader.receive(ByteBuffer(bytes: chunk))
            do {
                while let frame = try reader.next() {
                    let payload = Array(frame.payload.readableBytesView)
                    returned += payload.count
                    guard returned <= fed else {
                        fuzzFailure(.frames, "\(returned) payload bytes returned after \(fed) bytes fed")
                    }
                    switch frame.opcode {
                    case .close, .ping, .pong:
                        guard payload.count <= 125 else { fuzzFailure(.frames, "a \(payload.count)-byte control frame") }
                    case .text, .binary, .continuation:
                        guard payload.count <= limit else {
                            fuzzFailure(.frames, "a \(payload.count)-byte message over the limit \(limit)")
                        }
                    }
                    outcome.frames.append([frame.opcode.rawValue] + payload)
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
