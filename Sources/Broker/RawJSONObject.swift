/// One JSON object read member by member: each name unescaped, each value kept as the
/// ``RawJSON`` bytes it was written with. How the node reads a client message, an
/// `/api/publish` body or an envelope from Redis: the whole text is checked once, the few
/// fields the node needs are read from their members, and `data` and `metadata` are sliced out
/// unchanged.
public struct RawJSONObject: Sendable {
    public struct Member: Sendable {
        public var key: String
        public var value: RawJSON
    }

    /// The members in the order they were written (names are unique: ``JSONParser``).
    public let members: [Member]

    /// Checks `bytes` as JSON and reads its object; ``JSONError/Problem/notAnObject`` when it
    /// is valid JSON but not an object.
    public init(parsing bytes: some Collection<UInt8>) throws(JSONError) {
        members = try JSONParser.withContiguous(bytes) { buffer throws(JSONError) in
            try JSONParser.members(buffer).map { Member(key: $0.key, value: RawJSON(unchecked: Array(buffer[$0.value]))) }
        }
    }

    /// The value of member `key`, if present.
    public subscript(key: String) -> RawJSON? {
        members.first { $0.key == key }?.value
    }

    /// The names and value ranges of the members of a checked object.
    static func memberRanges(_ bytes: [UInt8]) throws(JSONError) -> [(key: String, value: Range<Int>)] {
        try JSONParser.withContiguous(bytes) { buffer throws(JSONError) in try JSONParser.members(buffer) }
    }
}
