/// A position in a user's conversation listing, as handed out in ``ConversationPage/nextCursor``.
///
/// Conversations are listed by the sequence number of their newest message, descending, ties
/// (conversations whose messages were all deleted) broken by the membership row's id. The text
/// form is `v`, both numbers in base 36, separated by `.`.
struct ConversationCursor: Equatable {
    /// The newest message's sequence number of the last conversation listed (0 for none).
    let lastSequence: Int64
    /// The id of that conversation's membership row.
    let receipt: Int64

    /// Before the first page: everything comes next.
    static let start = ConversationCursor(lastSequence: .max, receipt: .max)

    init(lastSequence: Int64, receipt: Int64) {
        self.lastSequence = lastSequence
        self.receipt = receipt
    }

    /// Throws ``StoreError/invalidCursor`` for text no listing produced.
    init(parsing text: String) throws {
        let parts = text.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        guard text.hasPrefix("v"), text.count <= 28, parts.count == 2,
              let last = Int64(parts[0], radix: 36), let receipt = Int64(parts[1], radix: 36), last >= 0, receipt > 0,
              text == ConversationCursor(lastSequence: last, receipt: receipt).text
        else { throw StoreError.invalidCursor }
        self.init(lastSequence: last, receipt: receipt)
    }

    var text: String { "v" + String(lastSequence, radix: 36) + "." + String(receipt, radix: 36) }
}
