// TEMPORARY: the Store API agreed with the store branch; replaced at merge.
import Foundation
import Logging
import ServiceLifecycle

public struct UserAccount: Sendable, Equatable { public var id: String; public var username: String; public var passwordHash: String; public var createdAt: Date }
public struct NewMessage: Sendable, Equatable {
    public var authorId: String; public var topic: String?; public var recipientId: String?; public var content: String; public var metadata: String?
    public init(authorId: String, topic: String?, recipientId: String?, content: String, metadata: String?) {
        self.authorId = authorId; self.topic = topic; self.recipientId = recipientId; self.content = content; self.metadata = metadata
    }
}
public struct StoredMessage: Sendable, Equatable { public var id: String; public var authorId: String; public var topic: String?; public var recipientId: String?; public var content: String; public var metadata: String?; public var createdAt: Date; public var updatedAt: Date? }
public enum MessageScope: Sendable, Equatable { case topic(String); case conversation(String, String) }
public struct MessagePage: Sendable, Equatable { public var messages: [StoredMessage]; public var nextCursor: String? }
public enum StoreError: Error, Equatable, CustomStringConvertible { case duplicateUsername; case invalidCursor; case unavailable(String)
    public var description: String { "\(self)" } }
public protocol UserRepository: Sendable {
    func createUser(username: String, passwordHash: String) async throws -> UserAccount
    func user(named username: String) async throws -> UserAccount?
    func user(id: String) async throws -> UserAccount?
}
public protocol MessageRepository: Sendable {
    func createMessage(_ message: NewMessage) async throws -> StoredMessage
    func message(id: String) async throws -> StoredMessage?
    func messages(in scope: MessageScope, before cursor: String?, limit: Int) async throws -> MessagePage
    func updateMessage(id: String, content: String, metadata: String?) async throws -> StoredMessage?
    func deleteMessage(id: String) async throws -> Bool
}
public protocol ChatStore: UserRepository, MessageRepository, Service { func ready() async throws }
public struct PostgresSettings: Sendable, Equatable {}
public enum DatabaseURL: Sendable, Equatable { case sqliteFile(String); case sqliteMemory; case postgres(PostgresSettings)
    public init(parsing: String) throws { fatalError() } }
public func makeStore(_ url: DatabaseURL, logger: Logger) -> any ChatStore { fatalError() }
