import Broker

/// Finds a request's top-level `id` in a frame the JSON parser refused (a lone surrogate deep in
/// `data`, nesting past the limit), so that the 400 reaches the request it answers instead of
/// leaving the client to time out.
///
/// A lenient pass over the top level only: strings are skipped by their escapes without being
/// checked, nested values by counting brackets outside strings. The `id` value it finds is then
/// read by the strict parser, and only a string or a number is used. Nil whenever the frame is
/// not an object with such an `id` at its top level. One pass, no recursion, no allocation but
/// the `id`'s own.
enum RequestIdScanner {
    static func id(in frame: some Collection<UInt8>) -> JSONValue? {
        let bytes = Array(frame)
        var index = 0
        func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
                index += 1
            }
        }
        /// Past the string that starts at `index` (a quote); false when it does not end.
        func skipString() -> Bool {
            index += 1
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\\"): index += 2
                case UInt8(ascii: "\""): index += 1; return true
                default: index += 1
                }
            }
            return false
        }
        /// Past the value that starts at `index`; false when it does not end.
        func skipValue() -> Bool {
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    if depth == 0 { return true }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return true }  // the end of the enclosing object
                    depth -= 1
                    if depth == 0 { index += 1; return true }
                case UInt8(ascii: ","):
                    if depth == 0 { return true }
                default:
                    break
                }
                index += 1
            }
            return false
        }
        skipSpace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let keyStart = index
            guard skipString() else { return nil }
            let key = bytes[keyStart..<index]
            // `"id"`, or written with escapes (`"\u0069d"`), as the strict parser would read it.
            let isId = key.elementsEqual("\"id\"".utf8)
                || (key.contains(UInt8(ascii: "\\")) && (try? RawJSON(validating: key))?.stringValue == "id")
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            let valueStart = index
            guard skipValue() else { return nil }
            if isId {
                guard let id = try? RawJSON(validating: bytes[valueStart..<index]).value else { return nil }
                switch id {
                case .string, .number: return id
                default: return nil
                }
            }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ",") else { return nil }
            index += 1
        }
    }
}
