/// Where user accounts live.
public protocol UserRepository: Sendable {
    /// Makes an account with a fresh id.
    ///
    /// Throws ``StoreError/duplicateUsername`` when the name is taken, compared case-sensitively.
    /// A UNIQUE index enforces it, so two nodes racing on one PostgreSQL cannot both succeed.
    func createUser(username: String, passwordHash: String) async throws -> UserAccount

    /// The account with exactly this name (case-sensitive), if any.
    func user(named username: String) async throws -> UserAccount?

    /// The account with this id, if any.
    func user(id: String) async throws -> UserAccount?
}
