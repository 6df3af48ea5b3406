import Foundation

@testable import ChorusSDK

/// Target `member`: the Swift SDK's `RawJSON.member`, which finds a message's `data` text
/// without parsing (``ChorusMessage/rawData``), against Foundation's `JSONSerialization`.
///
/// Input: any bytes, read as UTF-8 with repair. Never a crash; a member found is a slice of the
/// input; and when Foundation reads the input as an object with a `data` member and the text
/// spells `"data"` once (no escaped spelling, no duplicate key), the member is found and reads
/// as the same value.
enum MemberTarget {
    static func run(_ input: [UInt8]) {
        let text = String(decoding: input, as: UTF8.self)
        let member = RawJSON.member("data", in: text)
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let value = object["data"], text.components(separatedBy: "\"data\"").count == 2
        else { return }
        guard let member else { fuzzFailure(.member, "no data member found in \(text.debugDescription)") }
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(member.utf8), options: .fragmentsAllowed),
            canonical(parsed) == canonical(value)
        else { fuzzFailure(.member, "\(member.debugDescription) is not data's value in \(text.debugDescription)") }
    }

    private static func canonical(_ value: Any) -> Data? {
        try? JSONSerialization.data(withJSONObject: ["v": value], options: .sortedKeys)
    }
}
