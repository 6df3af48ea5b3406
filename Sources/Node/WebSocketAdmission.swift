import Logging
import NIOCore
import NIOHTTP1

/// Decides, during the HTTP upgrade, whether a client may open a WebSocket, and sets up the
/// pipeline of the ones that may.
///
/// A refused upgrade is answered in HTTP with the seed's error shape, checked in this order,
/// cheapest first: 404 for a path other than `/ws`, 400 for a handshake without one
/// `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`, 403 for an `Origin` not in `WEBSOCKET_ALLOWED_ORIGINS`, 503 while the node
/// drains, 429 past `WEBSOCKET_MAX_CONNECTIONS_PER_IP`, 503 past the node's limit, then 401 for
/// a bad token given at the upgrade (`Authorization: Bearer` or `?token=`), so a refused client
/// costs no signature check.
struct WebSocketAdmission: Sendable {
    struct Accepted: Sendable {
        var remoteAddress: String
        var user: AuthenticatedUser?
        /// permessage-deflate as agreed (`WEBSOCKET_COMPRESSION=on` and an offer the node can
        /// honour); its ``PerMessageDeflate/responseHeader`` goes in the 101 response.
        var deflate: PerMessageDeflate?
    }

    struct Refusal: Sendable, Error {
        var status: Int
        var message: String
        /// Set for a handshake of a WebSocket version the node does not speak: the
        /// `Sec-WebSocket-Version` it does, sent back with the 426 (RFC 6455 §4.4).
        var webSocketVersion: String? = nil
    }

    enum Decision: Sendable {
        case accept(Accepted)
        case refuse(Refusal)
    }

    let node: NodeContext
    /// The limits, counters and compressor every WebSocket of the node shares.
    let settings: WebSocketSettings

    init(node: NodeContext) {
        self.node = node
        self.settings = WebSocketSettings(
            maxMessageSize: node.configuration.maxMessageSize,
            maxMessagesPerSecond: node.configuration.maxMessagesPerSecond,
            maxBytesPerSecond: node.configuration.maxBytesPerSecond, counters: node.counters, deflate: node.hub.deflate)
    }

    /// The decision for an upgrade request.
    func decide(head: HTTPRequestHead, channel: any Channel) -> Decision {
        let (path, query) = Self.split(head.uri)
        // Refused here rather than passed on as plain HTTP: NIO's upgrade handler drops the head
        // of an upgrade request it does not take, so the router would never see it.
        guard path == "/ws" else {
            return .refuse(Refusal(status: 404, message: "no WebSocket at '\(path.prefix(200))': the endpoint is /ws"))
        }
        let versions = head.headers["Sec-WebSocket-Version"]
        if !versions.isEmpty, versions != ["13"] {
            return .refuse(Refusal(
                status: 426, message: "WebSocket version '\(versions.joined(separator: ",").prefix(20))' is not spoken here: use 13",
                webSocketVersion: "13"))
        }
        guard head.webSocketKey != nil else {
            return .refuse(Refusal(
                status: 400,
                message: "not a WebSocket handshake: it needs GET, one Sec-WebSocket-Key (base64 of 16 bytes) and Sec-WebSocket-Version: 13"))
        }
        // Browsers always send Origin on a WebSocket upgrade; other clients send none, and
        // are not what this check protects (a page on a foreign origin using its visitors).
        if let allowed = node.configuration.websocketAllowedOrigins, let origin = head.headers["Origin"].first,
            !allowed.allows(origin)
        {
            return .refuse(Refusal(
                status: 403, message: "origin '\(origin.prefix(200))' may not open a WebSocket here (WEBSOCKET_ALLOWED_ORIGINS)"))
        }
        guard node.readiness.state == .ready else {
            return .refuse(Refusal(status: 503, message: "node is \(node.readiness.state): connect to another node"))
        }
        // The per-IP and node limits come before the token: a refused client costs no crypto.
        let address = clientAddress(head: head, channel: channel)
        switch node.limiter.acquire(address) {
        case .granted:
            break
        case .addressFull:
            node.counters.connectionsRefused.add(1, ordering: .relaxed)
            node.logger.notice("connection refused: per-IP limit", metadata: ["ip": .string(address)])
            return .refuse(Refusal(
                status: 429,
                message: "too many connections from \(address): the limit is \(node.configuration.maxConnectionsPerIP)"))
        case .nodeFull:
            node.counters.connectionsRefusedNodeFull.add(1, ordering: .relaxed)
            let limit = node.limiter.total
            if node.limiter.nodeFullWarnings.allows() {
                node.logger.warning(
                    "connections refused: the node holds \(limit) WebSockets, its limit (WEBSOCKET_MAX_CONNECTIONS, or the open-file limit less what other uses keep); raise `ulimit -n` or add nodes")
            }
            return .refuse(Refusal(
                status: 503, message: "node at its connection limit (\(limit)): connect to another node"))
        }
        var user: AuthenticatedUser?
        if let token = Self.token(head: head, query: query) {
            do {
                user = try node.verifier.verify(token)
            } catch {
                node.limiter.release(address)
                return .refuse(Refusal(status: 401, message: error.description))
            }
        }
        // Released by the session when its channel closes, or by ``abandon(_:)`` if the upgrade
        // fails before the session is installed.
        let deflate = node.hub.deflate == nil
            ? nil : PerMessageDeflate.negotiate(offers: head.headers["Sec-WebSocket-Extensions"])
        return .accept(Accepted(remoteAddress: address, user: user, deflate: deflate))
    }

    /// Makes the upgraded channel a WebSocket: its one handler, the transport with the session
    /// above it, and the watermark past which the transport closes a slow consumer (and stops
    /// reading).
    func installSession(_ accepted: Accepted, on channel: any Channel) throws {
        let pending = node.configuration.maxPendingBytes
        try channel.syncOptions?.setOption(
            ChannelOptions.writeBufferWaterMark, value: .init(low: pending / 2, high: pending))
        let registry = node.hub.registry(for: channel.eventLoop)
        let transport = WebSocketTransport(settings: settings, agreed: accepted.deflate)
        let session = WebSocketSession(
            id: node.nextConnectionId(), remoteAddress: accepted.remoteAddress, transport: transport, node: node,
            registry: registry)
        transport.delegate = session
        try channel.pipeline.syncOperations.addHandler(transport)
        if let user = accepted.user { session.authenticateAtUpgrade(user) }
    }

    /// Gives back what ``decide(head:channel:)`` took for an accepted upgrade that failed before
    /// ``installSession(_:on:)`` added its session.
    func abandon(_ accepted: Accepted) {
        node.limiter.release(accepted.remoteAddress)
    }

    private func clientAddress(head: HTTPRequestHead, channel: any Channel) -> String {
        ClientAddress.resolve(
            peer: channel.remoteAddress?.ipAddress, forwardedFor: head.headers["X-Forwarded-For"],
            trusted: node.configuration.trustedProxies)
    }

    private static func split(_ uri: String) -> (path: String, query: Substring) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), uri[uri.index(after: mark)...])
    }

    /// A token given at the upgrade, from `Authorization: Bearer` or the `token` query parameter.
    private static func token(head: HTTPRequestHead, query: Substring) -> String? {
        if let credential = BearerCredential.from(head.headers["Authorization"].first) { return credential }
        for pair in query.split(separator: "&") where pair.hasPrefix("token=") {
            let value = pair.dropFirst(6)
            // A JWT is base64url and dots: nothing to unescape, so Foundation is not asked.
            return value.utf8.contains(UInt8(ascii: "%")) ? String(value).removingPercentEncoding : String(value)
        }
        return nil
    }
}
