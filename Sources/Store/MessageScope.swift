/// Which messages a listing covers.
public enum MessageScope: Sendable, Equatable {
    /// The messages posted to one topic.
    case topic(String)
    /// The direct messages between two user ids, sent in either direction. The order of the two
    /// ids does not matter: `.conversation("a", "b")` and `.conversation("b", "a")` list the same.
    case conversation(String, String)
}
