import Broker
import Foundation
import Hummingbird
import Store

/// The JSON forms of the HTTP API: accounts and messages (shared by responses and the events
/// WebSocket subscribers receive, so both show a message the same way) and JSON responses.
extension StoredMessage {
    var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "authorId": .string(authorId), "content": .string(content),
            "createdAt": .string(ISO8601.string(createdAt)),
        ]
        if let topic { object["topic"] = .string(topic) }
        if let recipientId { object["recipientId"] = .string(recipientId) }
        if let metadata, let value = try? JSONValue(parsing: Array(metadata.utf8)) { object["metadata"] = value }
        if let updatedAt { object["updatedAt"] = .string(ISO8601.string(updatedAt)) }
        return .object(object)
    }
}

extension UserAccount {
    /// What others may see of an account: never the password hash.
    var json: JSONValue {
        .object(["id": .string(id), "username": .string(username), "createdAt": .string(ISO8601.string(createdAt))])
    }
}

extension JSONValue {
    /// Encoded as a JSON response body.
    var responseBytes: [UInt8] {
        var writer = JSONWriter()
        writer.value(self)
        return writer.bytes
    }
}

extension Response {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: value.responseBytes)))
    }
}
