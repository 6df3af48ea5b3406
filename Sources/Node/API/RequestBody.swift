import Broker
import Foundation
import Hummingbird

/// Reads an HTTP API request body as a JSON object, with the API's errors: 413 past
/// `WEBSOCKET_MAX_MESSAGE_SIZE`, 400 for anything that is not a JSON object (by
/// ``JSONParser``'s rules, the WebSocket's: a duplicate key is refused, naming it).
struct RequestBody {
    let members: RawJSONObject
    /// The body's bytes.
    let size: Int

    init(_ request: inout Request, limit: Int, budget: BodyBudget, holder: BodyBudget.Holder) async throws(APIError) {
        let body = try await Self.read(&request, limit: limit, budget: budget, holder: holder)
        size = body.readableBytes
        do {
            members = try RawJSONObject(parsing: body.readableBytesView)
        } catch {
            throw APIError(400, error.problem == .notAnObject ? "malformed JSON: expected an object" : "malformed JSON: \(error)")
        }
    }

    /// The body's bytes, read within the node's ``BodyBudget``, charged to `holder`: 413 past
    /// `limit`, 503 when the budget or one of the holder's shares is taken by bodies still
    /// arriving.
    static func read(_ request: inout Request, limit: Int, budget: BodyBudget, holder: BodyBudget.Holder) async throws(APIError) -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            throw APIError(413, "body larger than WEBSOCKET_MAX_MESSAGE_SIZE (\(limit) bytes)")
        }
        var body = ByteBuffer()
        defer { budget.release(body.readableBytes, from: holder) }
        do {
            for try await chunk in request.body {
                guard body.readableBytes + chunk.readableBytes <= limit else {
                    throw APIError(413, "body larger than WEBSOCKET_MAX_MESSAGE_SIZE (\(limit) bytes)")
                }
                guard budget.charge(chunk.readableBytes, to: holder) else {
                    var error = APIError(503, "too many request bodies arriving at once: try again")
                    error.retryAfter = 1
                    throw error
                }
                body.writeImmutableBuffer(chunk)
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(400, "the request body ended early")
        }
        return body
    }

    /// A required string field.
    func string(_ field: String) throws(APIError) -> String {
        guard let value = try optionalString(field) else { throw .invalid(field, "'\(field)' is required") }
        return value
    }

    /// An optional string field (null counts as absent).
    func optionalString(_ field: String) throws(APIError) -> String? {
        guard let value = members[field], !value.isNull else { return nil }
        guard let text = value.stringValue else { throw .invalid(field, "'\(field)' must be a string") }
        return text
    }

    /// An optional object field, exactly as the caller wrote it (`description`: its text).
    func optionalObject(_ field: String) throws(APIError) -> RawJSON? {
        guard let value = members[field], !value.isNull else { return nil }
        guard value.isObject else { throw .invalid(field, "'\(field)' must be an object") }
        return value
    }
}
