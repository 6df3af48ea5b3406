/// The node's one JSON parser (RFC 8259, strict), for every JSON text a client, an HTTP caller
/// or another node (through Redis) sends.
///
/// It either checks a value and reports where it lies in the text (``RawJSON``,
/// ``RawJSONObject``: how `data` and `metadata` are carried, byte for byte) or builds a
/// ``JSONValue`` (small fields the node reads: `type`, `topic`, a request `id`).
/// Both ways apply the same rules:
/// - RFC 8259 grammar exactly: no trailing commas, no leading zeros, no `NaN`/`Infinity`, no
///   comments, no single quotes, no byte-order mark; one value per text, white space around it.
/// - Numbers are checked for their syntax only and never converted, so any number JSON can
///   write (`12345678901234567890`, `1e400`, `-0`) is accepted and kept as written.
/// - Strings: no raw control characters (U+0000-U+001F), only the escapes of RFC 8259
///   (`\" \\ \/ \b \f \n \r \t \uXXXX`); a `\u` escape of a surrogate must be a high surrogate
///   followed by an escaped low one (a lone surrogate is refused: it is no character).
/// - The whole text must be UTF-8 (RFC 3629: no overlong forms, no encoded surrogates, nothing
///   above U+10FFFF); invalid bytes are refused, never repaired into U+FFFD.
/// - Member names are unique in each object, at any depth (I-JSON, RFC 7493 §2.3): a
///   duplicate is refused, naming the key. Names are compared after unescaping, code point by
///   code point, so `"a"` and `"\u0061"` are the same name.
/// - Arrays and objects nest at most ``maxDepth`` levels, counting the outermost.
///
/// Written by hand because it runs once per message: checking `data` is one pass that allocates
/// only the scratch list of member names (one per text), where building a tree cost an
/// allocation per member (docs/benchmarks.md has the before and after).
public enum JSONParser {
    /// The deepest nesting of arrays and objects accepted in one text, the outermost counted:
    /// a client message or envelope is one level, so its `data` may nest 127 more.
    public static let maxDepth = 128

    /// The range of the one JSON value in `buffer` (surrounding white space excluded).
    static func validate(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONError) -> Range<Int> {
        var cursor = Cursor(bytes: buffer)
        cursor.skipWhitespace()
        let start = cursor.position
        try cursor.skipValue(depth: 0)
        let end = cursor.position
        try cursor.expectEnd()
        return start..<end
    }

    /// The one JSON value in `buffer`, as a tree.
    static func value(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONError) -> JSONValue {
        var cursor = Cursor(bytes: buffer)
        let value = try cursor.value(depth: 0)
        try cursor.expectEnd()
        return value
    }

    /// The members of the one JSON object in `buffer`, in order: each name unescaped and the
    /// range of its value. Throws ``JSONError/Problem/notAnObject`` for any other valid value.
    static func members(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONError) -> [(key: String, value: Range<Int>)] {
        var cursor = Cursor(bytes: buffer)
        cursor.skipWhitespace()
        guard cursor.position < buffer.count, buffer[cursor.position] == UInt8(ascii: "{") else {
            _ = try validate(buffer)
            throw JSONError(.notAnObject, at: 0)
        }
        var members: [(key: String, value: Range<Int>)] = []
        try cursor.object(depth: 1) { cursor, key throws(JSONError) in
            cursor.skipWhitespace()
            let start = cursor.position
            try cursor.skipValue(depth: 1)
            members.append((cursor.decode(key), start..<cursor.position))
        }
        try cursor.expectEnd()
        return members
    }

    /// Runs `body` on contiguous bytes (copying only a collection that has none).
    static func withContiguous<R>(
        _ bytes: some Collection<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) throws(JSONError) -> R
    ) throws(JSONError) -> R {
        let result =
            bytes.withContiguousStorageIfAvailable { buffer in
                Result { () throws(JSONError) in try body(buffer) }
            }
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(JSONError) in try body(buffer) }
            }
        return try result.get()
    }

    /// A string token: where its content lies (between the quotes) and whether it has escapes.
    struct StringToken {
        var content: Range<Int>
        var escaped: Bool
    }

    struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        /// The names of the objects being read, innermost last: the duplicate check's scratch.
        private var names: [StringToken] = []

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        func failure(_ reason: String) -> JSONError {
            JSONError(.syntax(reason), at: position)
        }

        mutating func expectEnd() throws(JSONError) {
            skipWhitespace()
            guard position >= bytes.count else { throw failure("unexpected text after the JSON value") }
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        // MARK: Values

        /// Checks one value and moves past it.
        mutating func skipValue(depth: Int) throws(JSONError) {
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"): try object(depth: depth + 1) { cursor, _ throws(JSONError) in try cursor.skipValue(depth: depth + 1) }
            case UInt8(ascii: "["): try array(depth: depth + 1) { cursor throws(JSONError) in try cursor.skipValue(depth: depth + 1) }
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw failure("unexpected character")
            }
        }

        /// Reads one value as a tree.
        mutating func value(depth: Int) throws(JSONError) -> JSONValue {
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                var members: [String: JSONValue] = [:]
                try object(depth: depth + 1) { cursor, key throws(JSONError) in
                    let name = cursor.decode(key)
                    let member = try cursor.value(depth: depth + 1)
                    // Names are unique by code points (checked above); two names Swift holds equal
                    // (canonically equivalent, é and e + U+0301) keep the first value.
                    if members[name] == nil { members[name] = member }
                }
                return .object(members)
            case UInt8(ascii: "["):
                var elements: [JSONValue] = []
                try array(depth: depth + 1) { cursor throws(JSONError) in elements.append(try cursor.value(depth: depth + 1)) }
                return .array(elements)
            case UInt8(ascii: "\""): return .string(decode(try string()))
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = position
                try number()
                return .number(JSONNumber(unchecked: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)))
            default: throw failure("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONError) {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count,
                UnsafeBufferPointer(start: word.utf8Start, count: count).elementsEqual(bytes[position..<position + count])
            else { throw failure("invalid literal") }
            position += count
        }

        /// An object at `position` (its `{`, `depth` levels deep): checks the names' syntax and
        /// uniqueness, and calls `member` with each name, `position` just past its colon.
        mutating func object(
            depth: Int, _ member: (inout Cursor, StringToken) throws(JSONError) -> Void
        ) throws(JSONError) {
            guard depth <= JSONParser.maxDepth else { throw JSONError(.tooDeep, at: position) }
            position += 1  // {
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return
            }
            let base = names.count
            /// Past a few names, a set of them (unescaped) keeps the check linear.
            var seen: Set<[UInt8]>? = nil
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                    throw failure("expected a string key")
                }
                let keyOffset = position
                let key = try string()
                if var set = seen {
                    seen = nil  // keeps the set uniquely referenced while it is changed
                    guard set.insert(unescaped(key)).inserted else {
                        throw JSONError(.duplicateKey(decode(key)), at: keyOffset)
                    }
                    seen = set
                } else {
                    for index in base..<names.count where sameName(names[index], key) {
                        throw JSONError(.duplicateKey(decode(key)), at: keyOffset)
                    }
                    names.append(key)
                    if names.count - base == 16 {
                        seen = Set(names[base...].map(unescaped))
                        names.removeSubrange(base...)
                    }
                }
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                position += 1
                try member(&self, key)
                skipWhitespace()
                guard position < bytes.count else { throw failure("unexpected end of input") }
                switch bytes[position] {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "}"):
                    position += 1
                    if names.count > base { names.removeSubrange(base...) }
                    return
                default: throw failure("expected ',' or '}'")
                }
            }
        }

        /// An array at `position` (its `[`): calls `element` at each element.
        mutating func array(depth: Int, _ element: (inout Cursor) throws(JSONError) -> Void) throws(JSONError) {
            guard depth <= JSONParser.maxDepth else { throw JSONError(.tooDeep, at: position) }
            position += 1  // [
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return
            }
            while true {
                try element(&self)
                skipWhitespace()
                guard position < bytes.count else { throw failure("unexpected end of input") }
                switch bytes[position] {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"):
                    position += 1
                    return
                default: throw failure("expected ',' or ']'")
                }
            }
        }

        // MARK: Strings

        /// Checks a string at `position` (its opening quote) and moves past its closing quote.
        mutating func string() throws(JSONError) -> StringToken {
            position += 1
            let start = position
            var escaped = false
            while position < bytes.count {
                let byte = bytes[position]
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return StringToken(content: start..<position - 1, escaped: escaped)
                case UInt8(ascii: "\\"):
                    escaped = true
                    try escape()
                case 0x00..<0x20:
                    throw failure("control character in a string (escape it)")
                case 0x20..<0x80:
                    position += 1
                default:
                    try utf8Sequence()
                }
            }
            throw failure("unterminated string")
        }

        /// Checks the escape at `position` (its backslash) and moves past it.
        private mutating func escape() throws(JSONError) {
            guard position + 1 < bytes.count else { throw failure("unterminated escape") }
            switch bytes[position + 1] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                position += 2
            case UInt8(ascii: "u"):
                let unit = try hex4(at: position + 2)
                if (0xD800..<0xDC00).contains(unit) {
                    guard position + 7 < bytes.count, bytes[position + 6] == UInt8(ascii: "\\"),
                        bytes[position + 7] == UInt8(ascii: "u"),
                        (0xDC00..<0xE000).contains(try hex4(at: position + 8))
                    else { throw failure("lone surrogate in a \\u escape (a high surrogate needs an escaped low one)") }
                    position += 12
                } else if (0xDC00..<0xE000).contains(unit) {
                    throw failure("lone surrogate in a \\u escape (a low surrogate without a high one)")
                } else {
                    position += 6
                }
            default:
                throw failure("invalid escape")
            }
        }

        private func hex4(at offset: Int) throws(JSONError) -> UInt32 {
            guard offset + 4 <= bytes.count else { throw failure("short \\u escape") }
            var value: UInt32 = 0
            for byte in bytes[offset..<offset + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure("invalid \\u escape")
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        /// Checks the multi-byte UTF-8 sequence at `position` (RFC 3629 §4) and moves past it.
        private mutating func utf8Sequence() throws(JSONError) {
            let lead = bytes[position]
            let count: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF  // bounds of the second byte
            switch lead {
            case 0xC2...0xDF: count = 2
            case 0xE0: count = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: count = 3
            case 0xED: count = 3; high = 0x9F  // not U+D800-U+DFFF
            case 0xF0: count = 4; low = 0x90
            case 0xF1...0xF3: count = 4
            case 0xF4: count = 4; high = 0x8F  // not above U+10FFFF
            default: throw JSONError(.invalidUTF8, at: position)
            }
            guard position + count <= bytes.count else { throw JSONError(.invalidUTF8, at: position) }
            guard (low...high).contains(bytes[position + 1]) else { throw JSONError(.invalidUTF8, at: position) }
            for offset in 2..<count where bytes[position + offset] & 0xC0 != 0x80 {
                throw JSONError(.invalidUTF8, at: position)
            }
            position += count
        }

        /// The unescaped UTF-8 of a checked string.
        func unescaped(_ token: StringToken) -> [UInt8] {
            let content = bytes[token.content]
            guard token.escaped else { return Array(content) }
            var utf8: [UInt8] = []
            utf8.reserveCapacity(content.count)
            var index = content.startIndex
            func hex(_ at: Int) -> UInt32 {
                (try? hex4(at: at)) ?? 0  // checked by string()
            }
            while index < content.endIndex {
                let byte = bytes[index]
                guard byte == UInt8(ascii: "\\") else {
                    utf8.append(byte)
                    index += 1
                    continue
                }
                let escaped = bytes[index + 1]
                index += 2
                switch escaped {
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = hex(index)
                    index += 4
                    if (0xD800..<0xDC00).contains(scalar) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (hex(index + 2) - 0xDC00)
                        index += 6
                    }
                    utf8.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}")!)
                default: utf8.append(escaped)  // " \ /
                }
            }
            return utf8
        }

        /// A checked string as a Swift string (its UTF-8 is valid, so nothing is replaced).
        func decode(_ token: StringToken) -> String {
            if !token.escaped {
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[token.content]), as: UTF8.self)
            }
            return String(decoding: unescaped(token), as: UTF8.self)
        }

        private func sameName(_ a: StringToken, _ b: StringToken) -> Bool {
            if !a.escaped, !b.escaped { return bytes[a.content].elementsEqual(bytes[b.content]) }
            return unescaped(a) == unescaped(b)
        }

        // MARK: Numbers

        /// Checks a number, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, and moves past it.
        /// Its value is never computed: the text is what travels.
        mutating func number() throws(JSONError) {
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard position < bytes.count, Self.isDigit(bytes[position]) else { throw failure("invalid number") }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
                if position < bytes.count, Self.isDigit(bytes[position]) { throw failure("leading zero in a number") }
            } else {
                skipDigits()
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard position < bytes.count, Self.isDigit(bytes[position]) else { throw failure("invalid number") }
                skipDigits()
            }
            if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                    position += 1
                }
                guard position < bytes.count, Self.isDigit(bytes[position]) else { throw failure("invalid number") }
                skipDigits()
            }
        }

        private mutating func skipDigits() {
            while position < bytes.count, Self.isDigit(bytes[position]) { position += 1 }
        }

        static func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }
    }
}
