import Foundation

/// A user who registered with a name and a password.
///
/// The store keeps only the password's hash, made by the caller: hashing belongs with the
/// authentication code, so the store never sees a password and cannot leak one.
public struct UserAccount: Sendable, Equatable {
    /// A lowercase UUID string, made by the store.
    public var id: String
    /// Unique, compared case-sensitively (`Alice` and `alice` are two users).
    public var username: String
    public var passwordHash: String
    /// When the account was made, to the millisecond.
    public var createdAt: Date

    public init(id: String, username: String, passwordHash: String, createdAt: Date) {
        self.id = id
        self.username = username
        self.passwordHash = passwordHash
        self.createdAt = createdAt
    }
}
