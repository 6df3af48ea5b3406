/// Parses JSON text (RFC 8259) into a ``JSONValue``: the decoder's half of ``EnvelopeCodec``.
///
/// Written by hand because it runs once per message received from Redis: Foundation's
/// `JSONDecoder` reaches a ``JSONValue`` only by trying each JSON type in turn and throwing on
/// every miss, which measured about ten times slower for an envelope with an object in `data`.
/// Strict where it matters (no trailing commas, no control characters in strings, nesting
/// bounded by ``maxDepth``), lenient where harmless: invalid UTF-8 becomes U+FFFD, and a
/// duplicated object key keeps its first value (as `JSONDecoder` does).
enum JSONValueParser {
    /// The deepest nesting of arrays and objects accepted (the parser recurses).
    static let maxDepth = 128

    struct Failure: Error, CustomStringConvertible {
        let reason: String
        let offset: Int
        var description: String { "\(reason) at byte \(offset)" }
    }

    /// Parses exactly one JSON value, surrounded by optional whitespace.
    static func parse(_ bytes: some Collection<UInt8>) throws(Failure) -> JSONValue {
        let result =
            bytes.withContiguousStorageIfAvailable { buffer in
                Result { () throws(Failure) in try parse(buffer) }
            }
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(Failure) in try parse(buffer) }
            }
        return try result.get()
    }

    private static func parse(_ buffer: UnsafeBufferPointer<UInt8>) throws(Failure) -> JSONValue {
        var cursor = Cursor(bytes: buffer)
        let value = try cursor.value(depth: 0)
        cursor.skipWhitespace()
        guard cursor.atEnd else { throw cursor.failure("unexpected text after the JSON value") }
        return value
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        var atEnd: Bool { position >= bytes.count }

        func failure(_ reason: String) -> Failure {
            Failure(reason: reason, offset: position)
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw failure("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count,
                UnsafeBufferPointer(start: word.utf8Start, count: count).elementsEqual(bytes[position..<position + count])
            else { throw failure("invalid literal") }
            position += count
        }

        mutating func object(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= JSONValueParser.maxDepth else { throw failure("nesting too deep") }
            position += 1  // {
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                    throw failure("expected a string key")
                }
                let key = try string()
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                position += 1
                let member = try value(depth: depth)
                if members[key] == nil { members[key] = member }
                skipWhitespace()
                guard position < bytes.count else { throw failure("unexpected end of input") }
                switch bytes[position] {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "}"):
                    position += 1
                    return .object(members)
                default: throw failure("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= JSONValueParser.maxDepth else { throw failure("nesting too deep") }
            position += 1  // [
            var elements: [JSONValue] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                elements.append(try value(depth: depth))
                skipWhitespace()
                guard position < bytes.count else { throw failure("unexpected end of input") }
                switch bytes[position] {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"):
                    position += 1
                    return .array(elements)
                default: throw failure("expected ',' or ']'")
                }
            }
        }

        /// A string; `position` is at the opening quote.
        mutating func string() throws(Failure) -> String {
            position += 1
            let start = position
            // Fast path: no escapes.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    defer { position += 1 }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw failure("control character in a string") }
                position += 1
            }
            // Slow path: unescape into a byte buffer.
            var utf8 = Array(bytes[start..<position])
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { throw failure("unterminated escape") }
                    let escaped = bytes[position]
                    position += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A high surrogate must be followed by an escaped low surrogate.
                            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                                bytes[position + 1] == UInt8(ascii: "u")
                            else { throw failure("unpaired surrogate") }
                            position += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw failure("unpaired surrogate") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw failure("unpaired surrogate")
                        }
                        utf8.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default:
                        throw failure("invalid escape")
                    }
                default:
                    guard byte >= 0x20 else { throw failure("control character in a string") }
                    utf8.append(byte)
                }
            }
            throw failure("unterminated string")
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard position + 4 <= bytes.count else { throw failure("short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure("invalid \\u escape")
                }
                value = value << 4 | UInt32(digit)
                position += 1
            }
            return value
        }

        /// A number in JSON syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
        mutating func number() throws(Failure) -> Double {
            let start = position
            var negative = false
            if bytes[position] == UInt8(ascii: "-") {
                negative = true
                position += 1
            }
            guard position < bytes.count, Self.isDigit(bytes[position]) else { throw failure("invalid number") }
            var integer: Int64 = 0
            var digits = 0
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
            } else {
                while position < bytes.count, Self.isDigit(bytes[position]) {
                    if digits < 18 { integer = integer * 10 + Int64(bytes[position] - UInt8(ascii: "0")) }
                    digits += 1
                    position += 1
                }
            }
            var simple = digits < 16  // exactly representable as a Double
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                simple = false
                position += 1
                guard position < bytes.count, Self.isDigit(bytes[position]) else { throw failure("invalid number") }
                while position < bytes.count, Self.isDigit(bytes[position]) { position += 1 }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                simple = false
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                    position += 1
                }
                guard position < bytes.count, Self.isDigit(bytes[position]) else { throw failure("invalid number") }
                while position < bytes.count, Self.isDigit(bytes[position]) { position += 1 }
            }
            if simple { return negative ? -Double(integer) : Double(integer) }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            guard let value = Double(text) else { throw failure("invalid number") }
            return value
        }

        static func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }
    }
}
