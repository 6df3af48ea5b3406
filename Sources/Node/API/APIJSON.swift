import Broker
import Foundation
import Hummingbird
import Store

/// The JSON forms of the HTTP API: accounts and messages (shared by responses and the events
/// WebSocket subscribers receive, so both show a message the same way) and JSON responses.
extension StoredMessage {
    /// The message's JSON, members sorted by name, `metadata` as it was posted (the store
    /// keeps its text verbatim), so numbers read back are the numbers posted.
    var json: RawJSON {
        write(all: true)
    }

    /// What a `message.deleted` event carries: the id, author, topic or recipient.
    var deletedJSON: RawJSON {
        write(all: false)
    }

    private func write(all: Bool) -> RawJSON {
        var writer = JSONWriter(capacity: 256 + content.utf8.count + (metadata?.utf8.count ?? 0))
        writer.raw("{\"authorId\":")
        writer.string(authorId)
        if all {
            writer.raw(",\"content\":")
            writer.string(content)
            writer.raw(",\"createdAt\":")
            writer.string(ISO8601.string(createdAt))
        }
        writer.raw(",\"id\":")
        writer.string(id)
        if all, let metadata, let raw = try? RawJSON(validating: metadata.utf8), raw.isObject {
            writer.raw(",\"metadata\":")
            writer.raw(raw)
        }
        if let recipientId {
            writer.raw(",\"recipientId\":")
            writer.string(recipientId)
        }
        if let topic {
            writer.raw(",\"topic\":")
            writer.string(topic)
        }
        if all, let updatedAt {
            writer.raw(",\"updatedAt\":")
            writer.string(ISO8601.string(updatedAt))
        }
        writer.raw("}")
        return (try? RawJSON(validating: writer.bytes)) ?? .emptyObject  // always valid: written above
    }
}

extension UserAccount {
    /// What others may see of an account: never the password hash.
    var json: JSONValue {
        .object(["id": .string(id), "username": .string(username), "createdAt": .string(ISO8601.string(createdAt))])
    }
}

extension Response {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        json(RawJSON(value), status: status)
    }

    static func json(_ value: RawJSON, status: HTTPResponse.Status = .ok) -> Response {
        json(bytes: value.bytes, status: status)
    }

    /// A page written by the route from values checked already. Not checked again: a page
    /// nests a message's `metadata` (up to ``MessageRoutes/maxMetadataDepth`` deep) further
    /// than ``JSONParser/maxDepth``, which bounds what the node reads, not what it writes.
    static func json(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
