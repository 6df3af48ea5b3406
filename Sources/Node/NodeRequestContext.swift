import Hummingbird
import NIOCore

/// The request context of the node's HTTP routes: Hummingbird's basic context plus the peer's
/// address, which login throttling and the body budget need (through ``ClientAddress``).
struct NodeRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

extension NodeContext {
    /// The client network `request` comes from (``IPAddress/clientNetwork(of:)`` of
    /// ``ClientAddress``'s resolution through `TRUSTED_PROXIES`), the unit of per-address limits.
    func clientNetwork(_ request: Request, _ context: NodeRequestContext) -> String {
        IPAddress.clientNetwork(of: ClientAddress.resolve(
            peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: .xForwardedFor],
            trusted: configuration.trustedProxies))
    }

    /// Who the body of `request`, made with user `userId`'s token, is charged to: the user and
    /// the client network (``BodyBudget/Holder/user(_:network:)``).
    func bodyHolder(user userId: String, _ request: Request, _ context: NodeRequestContext) -> BodyBudget.Holder {
        .user(userId, network: clientNetwork(request, context))
    }
}
