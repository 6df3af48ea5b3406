import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// The HTTP/1.1 upgrade to a WebSocket (RFC 6455 §4.2), for NIO's typed upgrade handler.
///
/// NIO's own `NIOTypedWebSocketServerUpgrader` always adds its frame encoder and decoder to the
/// upgraded pipeline; ``WebSocketTransport`` reads and writes frames itself, so this upgrader
/// leaves the pipeline to `install`. Like NIO's, it upgrades only requests with one
/// `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13` (`HTTPRequestHead.webSocketKey`), and treats `decide`
/// returning nil headers as "not upgrading". `decide` sees every upgrade request, so that it can
/// answer each one it does not take (NIO's upgrade handler drops the head of such a request).
struct WebSocketUpgrader<UpgradeResult: Sendable>: NIOTypedHTTPServerProtocolUpgrader {
    /// `decide` refused the upgrade.
    struct NotUpgrading: Error {}

    let supportedProtocol = "websocket"
    /// RFC 6455 does not ask clients to list its headers in `Connection`, so none are required
    /// here; the handshake headers are checked in ``buildUpgradeResponse(channel:upgradeRequest:initialResponseHeaders:)``.
    let requiredUpgradeHeaders: [String] = []

    /// Headers to add to the 101 response, or nil to refuse the upgrade.
    let decide: @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<HTTPHeaders?>
    /// Sets up the upgraded channel once the 101 response is flushed.
    let install: @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<UpgradeResult>

    /// The GUID RFC 6455 appends to the client's key.
    private static var guid: String { "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        decide(channel, upgradeRequest).flatMapThrowing { extra in
            guard var headers = extra, let key = upgradeRequest.webSocketKey else { throw NotUpgrading() }
            headers.replaceOrAdd(name: "Upgrade", value: "websocket")
            headers.replaceOrAdd(name: "Connection", value: "upgrade")
            headers.add(name: "Sec-WebSocket-Accept", value: Self.acceptValue(forKey: key))
            return headers
        }
    }

    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<UpgradeResult> {
        install(channel, upgradeRequest)
    }

    /// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
    static func acceptValue(forKey key: String) -> String {
        Data(Insecure.SHA1.hash(data: Array((key + guid).utf8))).base64EncodedString()
    }
}

extension HTTPRequestHead {
    /// The request's one `Sec-WebSocket-Key`, if the request is a `GET` with
    /// `Sec-WebSocket-Version: 13` and the key is base64 of 16 bytes (RFC 6455 §4.2.1); nil when
    /// it is not a handshake this server can complete.
    var webSocketKey: String? {
        let keys = headers["Sec-WebSocket-Key"]
        guard method == .GET, keys.count == 1, headers["Sec-WebSocket-Version"] == ["13"],
            Data(base64Encoded: keys[0])?.count == 16
        else { return nil }
        return keys[0]
    }
}
