/// Why bytes are not JSON this node accepts (see ``JSONParser``). The description names the
/// problem and its byte offset; it is what a client reads in a 400 `error`.
public struct JSONError: Error, Equatable, CustomStringConvertible {
    public enum Problem: Equatable, Sendable {
        /// Not JSON text (RFC 8259): the reason names what was expected.
        case syntax(String)
        /// An object names the same member twice (I-JSON, RFC 7493 §2.3), at any depth.
        case duplicateKey(String)
        /// Arrays and objects nest deeper than ``JSONParser/maxDepth``.
        case tooDeep
        /// A byte sequence that is not UTF-8 (RFC 8259 §8.1, RFC 3629).
        case invalidUTF8
        /// Valid JSON, but not the object the reader expected.
        case notAnObject
    }

    public var problem: Problem
    /// Where the problem was found, in bytes from the start of the text.
    public var offset: Int

    public init(_ problem: Problem, at offset: Int) {
        self.problem = problem
        self.offset = offset
    }

    public var description: String {
        switch problem {
        case .syntax(let reason): "\(reason) at byte \(offset)"
        case .duplicateKey(let key):
            "duplicate key '\(EchoedText.cut(key))' at byte \(offset): member names must be unique"
        case .tooDeep: "arrays and objects nested deeper than \(JSONParser.maxDepth) levels at byte \(offset)"
        case .invalidUTF8: "invalid UTF-8 at byte \(offset)"
        case .notAnObject: "expected a JSON object"
        }
    }
}
