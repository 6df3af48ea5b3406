import Hummingbird
import Store

/// Turns failures from below the routes into the API's error shape: the store unreachable or
/// shutting down, and a full password-hashing queue, are 503 (try again); the store's own
/// refusals map to the statuses the routes document.
struct BackendErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let outages: BackendOutage

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as StoreError {
            switch error {
            case .duplicateUsername: throw APIError(409, "user name is taken", field: "username")
            case .duplicateMessageId: throw APIError(409, "a message with this id exists already", field: "id")
            case .invalidCursor: throw APIError.invalid("before", "'before' is not a cursor this API returned")
            case .unavailable(let reason): throw outages.error("store", reason: reason)
            }
        } catch is PasswordHasher.Busy {
            throw APIError(503, "too many password checks in progress: try again shortly")
        }
    }
}
