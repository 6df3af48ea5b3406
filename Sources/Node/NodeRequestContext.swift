import Hummingbird
import NIOCore

/// The request context of the node's HTTP routes: Hummingbird's basic context plus the peer's
/// address, which login throttling needs (through ``ClientAddress``).
struct NodeRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
