import Broker
import Foundation
import Hummingbird

/// Reads an HTTP API request body as a JSON object, with the API's errors: 413 past
/// `WEBSOCKET_MAX_MESSAGE_SIZE`, 400 for anything that is not a JSON object.
struct RequestBody {
    let members: [String: JSONValue]

    init(_ request: inout Request, limit: Int) async throws(APIError) {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(413, "body larger than WEBSOCKET_MAX_MESSAGE_SIZE (\(limit) bytes)")
        }
        guard case .object(let members)? = try? JSONValue(parsing: body.readableBytesView) else {
            throw APIError(400, "malformed JSON: expected an object")
        }
        self.members = members
    }

    /// A required string field.
    func string(_ field: String) throws(APIError) -> String {
        guard let value = try optionalString(field) else { throw .invalid(field, "'\(field)' is required") }
        return value
    }

    /// An optional string field (null counts as absent).
    func optionalString(_ field: String) throws(APIError) -> String? {
        switch members[field] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw .invalid(field, "'\(field)' must be a string")
        }
    }

    /// An optional object field, as its JSON text.
    func optionalObjectText(_ field: String) throws(APIError) -> String? {
        switch members[field] {
        case nil, .null?: return nil
        case let value? where value.isObject: return String(decoding: value.responseBytes, as: UTF8.self)
        default: throw .invalid(field, "'\(field)' must be an object")
        }
    }
}

extension JSONValue {
    var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}
