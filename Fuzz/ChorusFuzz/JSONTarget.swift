import Foundation

import Broker
@testable import Node

/// Target `json`: the node's JSON parser (`JSONParser`, through `JSONValue(parsing:)`,
/// `RawJSON(validating:)` and `RawJSONObject(parsing:)`), against Foundation's `JSONSerialization`.
///
/// Both must accept and refuse the same texts, and what both accept must parse to the same
/// values (strings compared scalar by scalar, numbers as `Double`). The three ways into the
/// parser must agree with each other: the same texts accepted, `RawJSON` holding exactly the text
/// without the white space around it, `RawJSONObject` the tree's member names, and each of its
/// members' bytes (and `RawJSON`'s) one value without white space around it that parses as the
/// tree's value of that member, with `isObject`, `isString`, `isNull`, `isNumber` and
/// `stringValue` saying what that value is. The deliberate
/// differences, documented in `JSONParser` and docs/fuzzing.md, are the only exceptions:
/// 1. Top-level scalars: both accept them (`JSONSerialization` with `.fragmentsAllowed`).
/// 2. Duplicate keys: Chorus refuses an object naming a member twice (I-JSON; names compared
///    code point by code point after unescaping); Foundation accepts. The name Chorus reports
///    must be the first name in the text that its own object (not merely the text) has named
///    before, found by a scan of the harness's own with a stack of name sets, and the offset
///    Chorus reports that second occurrence's opening quote. Two names Swift holds equal but that differ in
///    code points (é and e + U+0301) are not compared.
/// 3. Depth: Chorus refuses nesting deeper than `JSONParser.maxDepth` (128); Foundation allows
///    more.
/// 4. Encodings: Chorus reads UTF-8 only; Foundation also guesses UTF-16 and UTF-32 and skips a
///    byte order mark. A text with a NUL byte or a leading UTF-8 BOM must be refused by Chorus
///    and is not compared.
/// 5. Invalid UTF-8: Chorus must refuse every text that Swift's own UTF-8 decoding would have to
///    repair (overlong forms, encoded surrogates, beyond U+10FFFF, truncated sequences).
/// 6. Trailing commas: Foundation on Linux accepts `[1,]` and `{"a":1,}`; RFC 8259 and Chorus
///    refuse them. Such a text is compared as Chorus parses it with those commas removed.
/// 7. Numbers: Chorus keeps a number's text; a text that is one number must keep it exactly.
///    Otherwise numbers are compared as `Double`s: Foundation refuses a number beyond `Double`'s
///    range (`1e400`, "not representable"), which Chorus keeps, and reads some long numbers a few
///    units in the last place off (`900719925454740993808`), so they agree within a relative 1e-12.
/// 8. U+FEFF in strings: Foundation drops it where it begins a run of raw text (at the start of the
///    string or after an escape); Chorus keeps it. Strings and names are compared without U+FEFF.
enum JSONTarget {
    /// A parsed value in a form both parsers' results convert to.
    indirect enum Value: Equatable, CustomStringConvertible {
        case null, bool(Bool), number(Double), string([Unicode.Scalar])
        case array([Value]), object([String: Value])

        var description: String {
            switch self {
            case .null: "null"
            case .bool(let flag): "\(flag)"
            case .number(let number): "\(number)"
            case .string(let scalars): "\"\(String(String.UnicodeScalarView(scalars)).debugDescription.dropFirst().dropLast())\""
            case .array(let elements): "[\(elements.map(\.description).joined(separator: ","))]"
            case .object(let members):
                "{\(members.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription):\($0.value)" }.joined(separator: ","))}"
            }
        }
    }

    enum Outcome {
        case value(Value)
        case refused(String)
    }

    static func run(_ bytes: [UInt8]) {
        let chorus = parseWithChorus(bytes)
        checkRawParsers(bytes)
        checkRequestIdScanner(bytes)
        checkDuplicates(chorus, bytes)
        if bytes.contains(0) || bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            if case .value(let value) = chorus {
                fuzzFailure(.json, "a text with a NUL byte or a BOM was accepted as \(value)")
            }
            return
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if Array(text.utf8) != bytes {
            if case .value(let value) = chorus { fuzzFailure(.json, "invalid UTF-8 was accepted as \(value)") }
            return  // difference 5
        }
        // A lone number keeps its text.
        let trimmed = text.trimmingCharacters(in: .init(charactersIn: " \t\r\n"))
        if case .number(let number)? = try? JSONValue(parsing: bytes), number.text != trimmed {
            fuzzFailure(.json, "the number \(trimmed) became \(number.text)")
        }
        judge(chorus, parseWithFoundation(bytes), bytes)
    }

    /// Fails unless the two outcomes for `bytes` agree up to the documented differences.
    static func judge(_ chorus: Outcome, _ foundation: Outcome, _ bytes: [UInt8], commasRemoved: Bool = false) {
        switch (chorus, foundation) {
        case (.refused(let reason), .value) where reason.hasPrefix("arrays and objects nested deeper"):
            return  // difference 3
        case (.refused(let reason), .value) where reason.hasPrefix("duplicate key"):
            // Difference 2: the name Chorus reports is the first name in the text to occur a
            // second time in the same object, and it reports that second occurrence.
            guard let (key, offset) = duplicateKey(bytes) else {
                fuzzFailure(.json, "\(reason), but the error names no key")
            }
            guard let first = firstRepeatedKey(bytes), Array(key.utf8) == first.name, offset == first.offset else {
                let found = firstRepeatedKey(bytes).map { "\(String(decoding: $0.name, as: UTF8.self).debugDescription) at byte \($0.offset)" }
                fuzzFailure(.json, "\(reason), but the first name repeated in one object is \(found ?? "none")")
            }
        case (.refused, .refused):
            return
        case (.value, .refused(let reason)) where tooLargeForDouble(reason):
            return  // difference 7
        case (.refused, .value) where !commasRemoved && withoutTrailingCommas(bytes) != bytes:
            // Difference 6: compare Chorus's reading of the text without trailing commas.
            let stripped = withoutTrailingCommas(bytes)
            judge(parseWithChorus(stripped), foundation, stripped, commasRemoved: true)
        case (.value(let ours), .value(let theirs)):
            if let difference = compare(ours, theirs, repeatedKeys: repeatedKeys(bytes), path: "$") {
                let note = commasRemoved ? " (trailing commas removed)" : ""
                fuzzFailure(.json, "values differ at \(difference)\(note)\n chorus: \(ours)\n foundation: \(theirs)")
            }
        default:
            fuzzFailure(.json, "chorus: \(chorus), foundation: \(foundation)\(commasRemoved ? " (trailing commas removed)" : "")")
        }
    }

    /// The adapter to the code under test: the tree, or why the text was refused.
    static func parseWithChorus(_ bytes: [UInt8]) -> Outcome {
        do {
            return .value(convert(try JSONValue(parsing: bytes)))
        } catch {
            return .refused(error.description)
        }
    }

    /// The adapter to the parser's other two ways in, which must agree with the tree's.
    static func checkRawParsers(_ bytes: [UInt8]) {
        let tree = try? JSONValue(parsing: bytes)
        let raw = try? RawJSON(validating: bytes)
        let object = try? RawJSONObject(parsing: bytes)
        guard let tree else {
            guard raw == nil, object == nil else {
                fuzzFailure(.json, "the tree refused, RawJSON \(raw != nil), RawJSONObject \(object != nil)")
            }
            return
        }
        let space: [UInt8] = [0x20, 0x09, 0x0A, 0x0D]
        let trimmed = bytes.drop { space.contains($0) }.reversed().drop { space.contains($0) }.reversed()
        guard let raw, raw.bytes == Array(trimmed) else {
            fuzzFailure(.json, "RawJSON holds \(raw.map { "\($0)" } ?? "nothing") for the value \(tree)")
        }
        checkRaw(raw, is: tree, "RawJSON")
        if case .object(let members) = tree {
            guard let object, Set(object.members.map(\.key)) == Set(members.keys) else {
                fuzzFailure(.json, "RawJSONObject has \(object.map { "\($0.members.map(\.key))" } ?? "nothing") for \(tree)")
            }
            // Each member's bytes are its value: the tree's, for the first of names Swift holds
            // equal (the tree keeps that one; difference 2).
            var named: Set<String> = []
            for member in object.members where named.insert(member.key).inserted {
                checkRaw(member.value, is: members[member.key]!, "member \(member.key.debugDescription)")
            }
        } else if object != nil {
            fuzzFailure(.json, "RawJSONObject accepted \(tree)")
        }
    }

    /// `raw` is one value without white space around it, which parses as `value`, and its
    /// flags and string say what `value` is.
    static func checkRaw(_ raw: RawJSON, is value: JSONValue, _ what: String) {
        let space: [UInt8] = [0x20, 0x09, 0x0A, 0x0D]
        guard let first = raw.bytes.first, let last = raw.bytes.last, !space.contains(first), !space.contains(last) else {
            fuzzFailure(.json, "\(what) is \(raw.bytes.count) bytes with white space around them: \(raw)")
        }
        guard (try? JSONValue(parsing: raw.bytes)) == value, raw.value == value else {
            fuzzFailure(.json, "\(what) holds \(raw), which does not parse as \(value)")
        }
        var kind: (object: Bool, string: Bool, null: Bool, number: Bool) = (false, false, false, false)
        switch value {
        case .object: kind.object = true
        case .string: kind.string = true
        case .null: kind.null = true
        case .number: kind.number = true
        case .bool, .array: break
        }
        guard raw.isObject == kind.object, raw.isString == kind.string, raw.isNull == kind.null, raw.isNumber == kind.number,
            raw.stringValue == value.stringValue
        else {
            fuzzFailure(.json, "\(what) \(raw): isObject \(raw.isObject), isString \(raw.isString), isNull \(raw.isNull), isNumber \(raw.isNumber), stringValue \(String(describing: raw.stringValue)) for \(value)")
        }
    }

    /// Whatever Foundation says: an accepted text has no object naming a member twice, and a
    /// duplicate key refusal names the first repeated name (``firstRepeatedKey(_:)``) where it
    /// occurs the second time.
    static func checkDuplicates(_ chorus: Outcome, _ bytes: [UInt8]) {
        let repeated = firstRepeatedKey(bytes)
        if case .value(let value) = chorus, let repeated {
            fuzzFailure(.json, "accepted as \(value), but an object names \(String(decoding: repeated.name, as: UTF8.self).debugDescription) twice (byte \(repeated.offset))")
        }
        // Parsed again only for a duplicate key refusal, whose offset the outcome lacks.
        guard case .refused(let reason) = chorus, reason.hasPrefix("duplicate key"), let (key, offset) = duplicateKey(bytes) else { return }
        guard let first = repeated, Array(key.utf8) == first.name, offset == first.offset else {
            let found = repeated.map { "\(String(decoding: $0.name, as: UTF8.self).debugDescription) at byte \($0.offset)" }
            fuzzFailure(.json, "duplicate key \(key.debugDescription) at byte \(offset), but the first name repeated in one object is \(found ?? "none")")
        }
    }

    /// The name and offset of a duplicate key refusal.
    static func duplicateKey(_ bytes: [UInt8]) -> (String, Int)? {
        do {
            _ = try JSONValue(parsing: bytes)
        } catch {
            if case .duplicateKey(let key) = error.problem { return (key, error.offset) }
        }
        return nil
    }

    /// The first key in the text (decoded, as UTF-8: code point by code point) that its object
    /// has named before, and the offset of its opening quote; nil when no object names a member
    /// twice. A scan of its own: one set of names per open object, on a stack.
    static func firstRepeatedKey(_ bytes: [UInt8]) -> (name: [UInt8], offset: Int)? {
        var objects: [Set<[UInt8]>?] = []  // nil for an array
        var previous: UInt8 = 0  // the last byte outside strings that is not white space
        var index = 0
        while index < bytes.count {
            defer {
                // (A switch, not an array literal: this runs for every byte of every input.)
                if index - 1 < bytes.count {
                    switch bytes[index - 1] {
                    case 0x20, 0x09, 0x0A, 0x0D: break
                    default: previous = bytes[index - 1]
                    }
                }
            }
            switch bytes[index] {
            case UInt8(ascii: "{"): objects.append([])
            case UInt8(ascii: "["): objects.append(nil)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = objects.popLast()
            case UInt8(ascii: "\""):
                let start = index
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard index < bytes.count else { return nil }
                // A key: a string in an object right after its `{` or a `,` (the parser checks
                // the name before it reads the colon).
                guard previous == UInt8(ascii: "{") || previous == UInt8(ascii: ","), let names = objects.last, var names
                else { break }
                let token = bytes[start...index]
                let name: [UInt8]
                if !token.contains(UInt8(ascii: "\\")) {
                    name = Array(token.dropFirst().dropLast())
                } else if case .string(let text)? = try? JSONValue(parsing: token) {
                    name = Array(text.utf8)
                } else {
                    break
                }
                objects[objects.count - 1] = nil  // unique while it changes
                guard names.insert(name).inserted else { return (name, start) }
                objects[objects.count - 1] = names
            default: break
            }
            index += 1
        }
        return nil
    }

    static func convert(_ value: JSONValue) -> Value {
        switch value {
        case .null: .null
        case .bool(let flag): .bool(flag)
        case .number(let number): .number(number.doubleValue)
        case .string(let text): .string(scalars(text))
        case .array(let elements): .array(elements.map(convert))
        case .object(let members): objectValue(members.map { ($0.key, convert($0.value)) })
        }
    }

    static func parseWithFoundation(_ bytes: [UInt8]) -> Outcome {
        do {
            let object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
            return .value(convert(foundation: object))
        } catch {
            return .refused("\(error)")
        }
    }

    static func convert(foundation object: Any) -> Value {
        switch object {
        case is NSNull: return .null
        case let number as NSNumber:
            // Foundation on Linux gives booleans as NSNumber too; their type encoding is "c".
            if type(of: object) == Bool.self || String(cString: number.objCType) == "c" {
                return .bool(number.boolValue)
            }
            return .number(number.doubleValue)
        case let text as String: return .string(scalars(text))
        case let elements as [Any]: return .array(elements.map(convert(foundation:)))
        case let members as [String: Any]: return objectValue(members.map { ($0.key, convert(foundation: $0.value)) })
        default: return .string(Array("unexpected \(type(of: object))".unicodeScalars))
        }
    }

    /// A string's scalars, without U+FEFF (difference 8).
    static func scalars(_ text: String) -> [Unicode.Scalar] {
        text.unicodeScalars.filter { $0 != "\u{FEFF}" }
    }

    /// An object with member names without U+FEFF (difference 8); the first of colliding names wins.
    static func objectValue(_ members: [(String, Value)]) -> Value {
        .object(Dictionary(members.map { (String(String.UnicodeScalarView(scalars($0.0))), $0.1) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Where `ours` and `theirs` differ, or nil when they agree (up to the documented differences).
    static func compare(_ ours: Value, _ theirs: Value, repeatedKeys: Set<String>, path: String) -> String? {
        switch (ours, theirs) {
        case (.number(let a), .number(let b)):
            // Difference 7: Foundation's reading of a long number can be a few units in the
            // last place off; Chorus keeps the text, checked in `run`.
            return a == b || a.isInfinite || abs(a - b) <= 1e-12 * max(abs(a), abs(b)) ? nil : path
        case (.array(let a), .array(let b)):
            guard a.count == b.count else { return path + " (length)" }
            for index in a.indices {
                if let difference = compare(a[index], b[index], repeatedKeys: repeatedKeys, path: "\(path)[\(index)]") {
                    return difference
                }
            }
            return nil
        case (.object(let a), .object(let b)):
            guard Set(a.keys) == Set(b.keys) else { return path + " (keys)" }
            for (key, value) in a where !repeatedKeys.contains(key) {
                if let difference = compare(value, b[key]!, repeatedKeys: repeatedKeys, path: "\(path).\(key.debugDescription)") {
                    return difference
                }
            }
            return nil
        default:
            return ours == theirs ? nil : path
        }
    }

    /// Keys (decoded) that occur more than once anywhere in `bytes`: a string followed by `:`.
    static func repeatedKeys(_ bytes: [UInt8]) -> Set<String> {
        var seen: Set<String> = []
        var repeated: Set<String> = []
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "\"") else {
                index += 1
                continue
            }
            let start = index
            index += 1
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            guard index < bytes.count else { break }
            index += 1
            let token = Array(bytes[start..<index])
            var after = index
            while after < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[after]) { after += 1 }
            guard after < bytes.count, bytes[after] == UInt8(ascii: ":") else { continue }
            if case .value(.string(let scalars)) = parseWithChorus(token) {
                let key = String(String.UnicodeScalarView(scalars))
                if !seen.insert(key).inserted { repeated.insert(key) }
            }
        }
        return repeated
    }

    /// The text without any `,` that only white space separates from a closing `]` or `}`
    /// (outside strings).
    static func withoutTrailingCommas(_ bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        var inString = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                result.append(byte)
                if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                    result.append(bytes[index + 1])
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if byte == UInt8(ascii: ",") {
                var next = index + 1
                while next < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[next]) { next += 1 }
                if next == bytes.count || (bytes[next] != UInt8(ascii: "]") && bytes[next] != UInt8(ascii: "}")) {
                    result.append(byte)
                }
            } else {
                if byte == UInt8(ascii: "\"") { inString = true }
                result.append(byte)
            }
            index += 1
        }
        return result
    }

    /// Whether Foundation refused a number because it is beyond `Double`'s range (Chorus keeps
    /// its text): "Number 1e400 is not representable in Swift."
    static func tooLargeForDouble(_ reason: String) -> Bool {
        guard let start = reason.range(of: "Number "), let end = reason.range(of: " is not representable") else {
            return false
        }
        return Double(reason[start.upperBound..<end.lowerBound])?.isInfinite == true
    }
}

extension JSONTarget {
    /// `RequestIdScanner` (the `id` of a frame the parser refused) never traps, and on every
    /// object the strict parser reads it finds that object's `id` member when it is a string or a
    /// number, and nothing otherwise.
    static func checkRequestIdScanner(_ bytes: [UInt8]) {
        let scanned = RequestIdScanner.id(in: bytes)
        guard let object = try? RawJSONObject(parsing: bytes) else { return }
        let expected: JSONValue? = switch object["id"]?.value {
        case .string(let text): .string(text)
        case .number(let number): .number(number)
        default: nil
        }
        guard scanned == expected else {
            fatalError("RequestIdScanner found \(String(describing: scanned)), the parser's object has id \(String(describing: expected)) in \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
    }
}
