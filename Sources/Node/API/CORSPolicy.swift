import HTTPTypes
import Hummingbird
import NIOCore

/// CORS for the HTTP API (`CORS_ALLOWED_ORIGINS`), by Hummingbird's `CORSMiddleware`.
///
/// A request whose `Origin` is allowed goes through `CORSMiddleware`, which answers a preflight
/// (`OPTIONS`) with 204 and the allowed methods and headers, and adds
/// `Access-Control-Allow-Origin` (the request's origin, with `Vary: Origin`) to every other
/// answer. A request from any other origin (or none) gets no CORS header at all, so the browser
/// keeps its response from the page, but `Vary: Origin` all the same. `CORSMiddleware` can list origins only as a literal variadic
/// list (`.oneOf("a", "b")`); this type supplies the list from the configuration and nothing
/// else.
///
/// Credentials (cookies, HTTP authentication) are never allowed: the API uses none. Tokens
/// travel in `Authorization`, which is an allowed request header; the API key (`X-API-Key`)
/// is not, because it is a server's secret and never belongs in a page.
struct CORSPolicy<Context: RequestContext>: RouterMiddleware {
    let origins: AllowedOrigins
    private let cors: CORSMiddleware<Context>

    init(origins: AllowedOrigins) {
        self.origins = origins
        self.cors = CORSMiddleware(
            allowOrigin: origins.any ? .all : .originBased,
            allowHeaders: [.accept, .authorization, .contentType],
            allowMethods: [.get, .post, .patch, .delete, .head, .options],
            allowCredentials: false,
            exposedHeaders: ["Retry-After"],
            maxAge: .seconds(600))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let origin = request.headers[.origin], origins.allows(origin) else {
            var response = try await next(request, context)
            // Without CORS headers, but an answer to a listed origin would have them: a shared
            // cache must not hand this copy to a page of that origin.
            if !origins.any { response.headers.append(HTTPField(name: .vary, value: "Origin")) }
            return response
        }
        return try await cors.handle(request, context: context, next: next)
    }
}
