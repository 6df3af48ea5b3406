/// The exact text of one member of a JSON object, found without parsing it: what keeps a
/// message's `data` as it was published (numbers past `Int64` or `Double`, for instance)
/// for ``ChorusMessage/decode(_:)`` and ``ChorusMessage/rawData``.
enum RawJSON {
    /// The text of the top-level member `key` of the object `text`; nil when `text` is not an
    /// object, has no such member, or is malformed. Keys are compared as written (the node
    /// writes its members' keys without escapes).
    static func member(_ key: String, in text: String) -> Substring? {
        let bytes = text.utf8
        var index = bytes.startIndex
        skipSpace(bytes, &index)
        guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "{") else { return nil }
        bytes.formIndex(after: &index)
        let wanted = Array("\"\(key)\"".utf8)
        while true {
            skipSpace(bytes, &index)
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let keyStart = index
            guard skipValue(bytes, &index) else { return nil }
            let isWanted = bytes[keyStart..<index].elementsEqual(wanted)
            skipSpace(bytes, &index)
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ":") else { return nil }
            bytes.formIndex(after: &index)
            skipSpace(bytes, &index)
            let valueStart = index
            guard skipValue(bytes, &index) else { return nil }
            if isWanted { return text[valueStart..<index] }
            skipSpace(bytes, &index)
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ",") else { return nil }
            bytes.formIndex(after: &index)
        }
    }

    private static func skipSpace(_ bytes: String.UTF8View, _ index: inout String.Index) {
        while index < bytes.endIndex, isSpace(bytes[index]) { bytes.formIndex(after: &index) }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    /// Moves past one value: a string, a nested array or object (counted by depth outside
    /// strings), or a number or literal (up to the next delimiter); false when the text ends
    /// first or the value is empty.
    private static func skipValue(_ bytes: String.UTF8View, _ index: inout String.Index) -> Bool {
        guard index < bytes.endIndex else { return false }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return skipString(bytes, &index)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.endIndex {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard skipString(bytes, &index) else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        bytes.formIndex(after: &index)
                        return true
                    }
                default:
                    break
                }
                bytes.formIndex(after: &index)
            }
            return false
        default:
            let start = index
            while index < bytes.endIndex, !isSpace(bytes[index]),
                ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[index])
            {
                bytes.formIndex(after: &index)
            }
            return index > start
        }
    }

    /// Moves past a string from its opening quote, escapes included.
    private static func skipString(_ bytes: String.UTF8View, _ index: inout String.Index) -> Bool {
        bytes.formIndex(after: &index)
        while index < bytes.endIndex {
            switch bytes[index] {
            case UInt8(ascii: "\\"):
                bytes.formIndex(after: &index)
                guard index < bytes.endIndex else { return false }
            case UInt8(ascii: "\""):
                bytes.formIndex(after: &index)
                return true
            default:
                break
            }
            bytes.formIndex(after: &index)
        }
        return false
    }
}
