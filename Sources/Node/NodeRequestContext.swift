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

extension NodeRequestContext {
    /// The client network `request` comes from (``IPAddress/clientNetwork(of:)`` of
    /// ``ClientAddress``'s resolution), the unit of per-address limits.
    func clientNetwork(_ request: Request, trusted: [IPRange]) -> String {
        IPAddress.clientNetwork(of: ClientAddress.resolve(
            peer: remoteAddress?.ipAddress, forwardedFor: request.headers[values: .xForwardedFor], trusted: trusted))
    }
}
