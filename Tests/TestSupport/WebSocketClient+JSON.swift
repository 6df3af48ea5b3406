import ChorusClient
import Foundation

extension WebSocketClient {
    /// Sends a JSON object.
    public func send(json object: [String: Any]) async throws {
        let data = try JSONSerialization.data(withJSONObject: object)
        try await send(text: String(decoding: data, as: UTF8.self))
    }

    /// The next text message as a JSON object.
    public func nextJSON(timeout: Duration = .seconds(10)) async throws -> [String: Any] {
        let text = try await nextText(timeout: timeout)
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(text)")
        }
        return object
    }

    /// The next JSON message whose `type` is `type`, skipping others.
    public func next(type: String, timeout: Duration = .seconds(10)) async throws -> [String: Any] {
        while true {
            let message = try await nextJSON(timeout: timeout)
            if message["type"] as? String == type { return message }
        }
    }

    /// Sends a request and returns the reply (the next JSON message).
    public func request(_ object: [String: Any]) async throws -> [String: Any] {
        try await send(json: object)
        return try await nextJSON()
    }
}
