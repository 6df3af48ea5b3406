import Hummingbird

/// Gives Hummingbird's own errors (no route for a path: 404; a body over the limit: 413; ...)
/// the API's error shape, `{"type":"error","code":...,"message":...}`, instead of an empty body.
struct HTTPErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let message: String
            switch error.status {
            case .notFound: message = "no route for \(request.method) \(request.uri.path)"
            default: message = error.body ?? error.status.reasonPhrase
            }
            throw APIError(error.status.code, message)
        }
    }
}
