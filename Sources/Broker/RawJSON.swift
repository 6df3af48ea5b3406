/// The exact UTF-8 bytes of one JSON value that ``JSONParser`` has checked: how a message's
/// `data` and `metadata` travel from the publisher, through the node, Redis and the store, to
/// every subscriber, byte for byte (numbers, escapes, member order and white space inside).
///
/// Made only by checking bytes (``init(validating:)``, ``RawJSONObject``) or by writing a
/// ``JSONValue`` (``init(_:)``), so its bytes are always one valid JSON value, without white
/// space around it. A value type; its bytes are copied once out of the text they came in.
public struct RawJSON: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Wraps bytes known to be one valid JSON value with no white space around it.
    init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Checks `bytes` as one JSON value (white space around it is dropped).
    public init(validating bytes: some Collection<UInt8>) throws(JSONError) {
        self = try JSONParser.withContiguous(bytes) { buffer throws(JSONError) in
            let range = try JSONParser.validate(buffer)
            return RawJSON(unchecked: Array(buffer[range]))
        }
    }

    /// A value the node made, written by ``JSONWriter``.
    public init(_ value: JSONValue) {
        var writer = JSONWriter()
        writer.value(value)
        bytes = writer.bytes
    }

    public static let null = RawJSON(unchecked: Array("null".utf8))
    public static let emptyObject = RawJSON(unchecked: Array("{}".utf8))

    /// A JSON string holding `text`.
    public static func string(_ text: String) -> RawJSON {
        var writer = JSONWriter(capacity: text.utf8.count + 2)
        writer.string(text)
        return RawJSON(unchecked: writer.bytes)
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }

    public var isObject: Bool { bytes.first == UInt8(ascii: "{") }
    public var isString: Bool { bytes.first == UInt8(ascii: "\"") }
    public var isNull: Bool { bytes.first == UInt8(ascii: "n") }
    public var isNumber: Bool {
        guard let first = bytes.first else { return false }
        return first == UInt8(ascii: "-") || JSONParser.Cursor.isDigit(first)
    }

    /// The string this value is (unescaped), else nil.
    public var stringValue: String? {
        guard isString else { return nil }
        return bytes.withUnsafeBufferPointer { buffer in
            var cursor = JSONParser.Cursor(bytes: buffer)
            guard let token = try? cursor.string() else { return nil }
            return cursor.decode(token)
        }
    }

    /// This value as a tree (for the small fields the node reads).
    public var value: JSONValue {
        (try? JSONValue(parsing: bytes)) ?? .null  // never nil: the bytes were checked
    }

    /// This object with its member `key` set to `value`: a member of that name keeps its place
    /// and has its value replaced; otherwise the member is added last. Every other member keeps
    /// its bytes and its place. How the node sets `metadata.senderId`.
    /// - Precondition: this value is an object.
    public func settingMember(_ key: String, to value: RawJSON) -> RawJSON {
        precondition(isObject, "settingMember on a JSON value that is not an object")
        let members = (try? RawJSONObject.memberRanges(bytes)) ?? []
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count + key.utf8.count + value.bytes.count + 4)
        if let existing = members.first(where: { $0.key == key }) {
            result.append(contentsOf: bytes[..<existing.value.lowerBound])
            result.append(contentsOf: value.bytes)
            result.append(contentsOf: bytes[existing.value.upperBound...])
        } else {
            result.append(contentsOf: bytes.dropLast())  // all but the closing brace
            var member = JSONWriter(capacity: key.utf8.count + value.bytes.count + 4)
            if !members.isEmpty { member.raw(",") }
            member.string(key)
            member.raw(":")
            member.raw(value)
            member.raw("}")
            result.append(contentsOf: member.bytes)
        }
        return RawJSON(unchecked: result)
    }
}

extension RawJSON {
    /// How deep arrays and objects nest in the value, counting the outermost (`1` for `{}`,
    /// `0` for a scalar): what ``JSONParser/maxDepth`` bounds once the value sits inside others.
    public var nestingDepth: Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}
