import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Counts pipelined HTTP responses in order.
final class HTTPResponseCounter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    /// Called on the loop for every complete response with its status and body.
    var onResponse: ((HTTPResponseStatus, ByteBuffer?) -> Void)?
    var onClose: (() -> Void)?
    private var status: HTTPResponseStatus = .ok
    private var body: ByteBuffer?
    private let keepBody: Bool

    init(keepBody: Bool) {
        self.keepBody = keepBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            body = nil
        case .body(var part):
            if keepBody {
                if body == nil { body = part } else { body!.writeBuffer(&part) }
            }
        case .end:
            onResponse?(status, body)
            body = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose?()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Opens a keep-alive HTTP/1.1 connection whose responses go to a ``HTTPResponseCounter``.
func connectHTTP(group: any EventLoopGroup, to endpoint: Endpoint, keepBody: Bool) async throws
    -> (any Channel, HTTPResponseCounter)
{
    let channel = try await ClientBootstrap(group: group)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(HTTPResponseCounter(keepBody: keepBody))
            }
        }
        .connect(host: endpoint.host, port: endpoint.port).get()
    let counter = try await channel.eventLoop.submit {
        try channel.pipeline.syncOperations.handler(type: HTTPResponseCounter.self)
    }.get()
    return (channel, counter)
}

/// One GET, for `/stats`: returns the status code and body.
func httpGet(group: any EventLoopGroup, _ endpoint: Endpoint, path: String) async throws -> (Int, Data) {
    let (channel, counter) = try await connectHTTP(group: group, to: endpoint, keepBody: true)
    let promise = channel.eventLoop.makePromise(of: (Int, Data).self)
    try await channel.eventLoop.submit {
        counter.onResponse = { status, body in
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            promise.succeed((Int(status.code), Data(bytes)))
        }
        counter.onClose = { promise.fail(BenchError("\(endpoint) closed the connection before answering")) }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(endpoint)")
        headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }.get()
    let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) {
        promise.fail(BenchError("GET \(path) on \(endpoint) timed out"))
    }
    defer { timeout.cancel() }
    let result = try await promise.futureResult.get()
    try? await channel.close()
    return result
}

/// A Chorus node's `/stats`, as far as the benchmark needs it.
struct NodeStatsSample: Codable, Sendable {
    var residentBytes: Int
    var connections: Int
    var subscriptions: Int
    var delivered: Int
    var closedSlowConsumer: Int

    static func fetch(group: any EventLoopGroup, _ endpoint: Endpoint) async throws -> NodeStatsSample {
        let (status, body) = try await httpGet(group: group, endpoint, path: "/stats")
        guard status == 200, let json = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw BenchError("GET /stats on \(endpoint): HTTP \(status)")
        }
        let memory = json["memory"] as? [String: Any]
        let connections = json["connections"] as? [String: Any]
        let subscriptions = json["subscriptions"] as? [String: Any]
        let messages = json["messages"] as? [String: Any]
        return NodeStatsSample(
            residentBytes: memory?["residentBytes"] as? Int ?? 0,
            connections: connections?["total"] as? Int ?? 0,
            subscriptions: subscriptions?["total"] as? Int ?? 0,
            delivered: messages?["delivered"] as? Int ?? 0,
            closedSlowConsumer: connections?["closedSlowConsumer"] as? Int ?? 0)
    }
}
