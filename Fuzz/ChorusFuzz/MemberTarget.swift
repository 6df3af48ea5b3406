@testable import Broker
@testable import ChorusSDK

/// Target `member`: the Swift SDK's `RawJSON.member`, which finds a message's `data` text
/// without parsing (``ChorusMessage/rawData``), against the node's own parser
/// (Broker's `RawJSONObject(parsing:)`).
///
/// Input: any bytes, read as UTF-8 with repair. Never a crash; and whenever the node's parser
/// reads the text as an object, the SDK's answer is, byte for byte, the value of the top-level
/// member whose name is spelled `"data"` literally (no escapes), or nil when there is no such
/// member (none at all, or only an escaped spelling such as `"d\u0061ta"`, which the SDK does
/// not look for). Duplicate keys, a `data` key inside `metadata` or inside `data` itself, and an
/// `eventType` of `"data"` are all compared: the node's parser refuses a duplicate top-level
/// name, so there is at most one such member, and nested or string occurrences must be skipped.
enum MemberTarget {
    static func run(_ input: [UInt8]) {
        let text = String(decoding: input, as: UTF8.self)
        let member = ChorusSDK.RawJSON.member("data", in: text)
        let bytes = Array(text.utf8)
        guard let members = try? RawJSONObject.memberRanges(bytes) else { return }
        let literal = Array("\"data\"".utf8)
        let expected = members.first { entry in
            entry.key == "data" && nameBefore(entry.value.lowerBound, in: bytes).elementsEqual(literal)
        }
        let found = member.map { Array($0.utf8) }
        let wanted = expected.map { Array(bytes[$0.value]) }
        guard found == wanted else {
            fuzzFailure(
                .member,
                "found \(found.map { String(decoding: $0, as: UTF8.self).debugDescription } ?? "nothing"), the node's parser "
                    + "reads \(wanted.map { String(decoding: $0, as: UTF8.self).debugDescription } ?? "no literal data member") "
                    + "in \(text.debugDescription)")
        }
    }

    /// The last six bytes before `value` once the white space and the colon between them are
    /// skipped: the member's name as written when it is `"data"` spelled literally (its opening
    /// quote cannot be an escaped one, since the name then would hold a quote).
    static func nameBefore(_ value: Int, in bytes: [UInt8]) -> ArraySlice<UInt8> {
        var end = value
        func skipSpace() {
            while end > 0, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[end - 1]) { end -= 1 }
        }
        skipSpace()
        guard end > 0, bytes[end - 1] == UInt8(ascii: ":") else { return [] }
        end -= 1
        skipSpace()
        return bytes[max(0, end - 6)..<end]
    }
}
