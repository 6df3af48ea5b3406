/// Any JSON value, as a tree: for the few fields the node reads (a client message's `type`,
/// `topic`, request `id`; an envelope's fields) and the small documents it writes itself.
///
/// A message's `data` and `metadata` are not parsed into this: they travel as ``RawJSON``, the
/// bytes the publisher sent. Numbers keep their text (``JSONNumber``), so a request `id` of
/// `12345678901234567890` is echoed as sent. Objects are dictionaries: member order is not
/// kept and ``JSONWriter`` writes members sorted by name.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue {
    /// The string inside `.string`, else nil.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The member `key` of an object, else nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}

extension JSONValue {
    /// Parses JSON text (one value, surrounding white space allowed) by ``JSONParser``'s rules.
    public init(parsing bytes: some Collection<UInt8>) throws(JSONError) {
        self = try JSONParser.withContiguous(bytes) { buffer throws(JSONError) in try JSONParser.value(buffer) }
    }
}
