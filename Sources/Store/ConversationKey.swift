/// The two participants of a direct conversation in a fixed order, so that one index serves
/// both directions: a message from a to b and one from b to a get the same key, stored in the
/// `peer_low` and `peer_high` columns.
struct ConversationKey: Equatable {
    let low: String
    let high: String

    init(_ first: String, _ second: String) {
        // Compare the UTF-8 bytes: the order only has to be the same every time, and bytes
        // do not depend on Unicode normalisation.
        if first.utf8.lexicographicallyPrecedes(second.utf8) {
            (low, high) = (first, second)
        } else {
            (low, high) = (second, first)
        }
    }

    /// The key of a message sent directly to someone; nil for one only posted to a topic.
    init?(_ message: NewMessage) {
        guard let recipient = message.recipientId else { return nil }
        self.init(message.authorId, recipient)
    }
}
