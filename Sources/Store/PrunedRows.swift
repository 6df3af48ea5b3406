/// What one pruning pass, or a store since it started, deleted under
/// ``StoreConfiguration/messageRetention``.
public struct PrunedRows: Sendable, Equatable {
    /// Messages created before the cutoff.
    public var messages: Int
    /// Ids of deleted messages (`deleted_messages`) deleted before the cutoff: free to be used again.
    public var deletedIds: Int

    public init(messages: Int = 0, deletedIds: Int = 0) {
        self.messages = messages
        self.deletedIds = deletedIds
    }

    static func += (lhs: inout PrunedRows, rhs: PrunedRows) {
        lhs.messages += rhs.messages
        lhs.deletedIds += rhs.deletedIds
    }
}
