import Broker
import Hummingbird
import NIOCore

/// An HTTP API failure in the seed's error shape:
/// `{"type":"error","code":<status>,"message":"...","details":{...}}`.
///
/// Route handlers throw it; Hummingbird turns it into the response. `details` names the
/// offending field (`{"field":"username"}`) for validation errors.
struct APIError: HTTPResponseError {
    let code: Int
    let message: String
    let details: JSONValue?
    /// Seconds for `Retry-After`: a 429's (60 unless set), or another status's when set.
    var retryAfter: Int?

    init(_ code: Int, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.details = field.map { .object(["field": .string($0)]) }
    }

    var status: HTTPResponse.Status { .init(code: code) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }

    /// The error as an HTTP response (also for routes that return rather than throw).
    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let seconds = retryAfter ?? (code == 429 ? 60 : nil) { headers[.retryAfter] = "\(seconds)" }
        let body = ServerMessage.error(code: code, message: message, details: details, id: nil).encoded()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func invalid(_ field: String, _ message: String) -> APIError {
        APIError(400, message, field: field)
    }
}
