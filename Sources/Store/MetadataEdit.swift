/// What an edit does to a message's metadata. `keep` leaves the stored value in the same
/// statement that changes the content: an edit that reads the metadata first and writes it back
/// could put back a value another edit had just replaced.
public enum MetadataEdit: Sendable, Equatable {
    case keep
    /// JSON text, or nil to remove it.
    case set(String?)
}
