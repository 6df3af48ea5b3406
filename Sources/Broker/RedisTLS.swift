import NIOCore
import NIOSSL

/// TLS to a Redis server, for a `rediss://` URL (Redis 6's `tls-port`, and the managed Redis
/// services that accept TLS only).
///
/// The server's certificate is always verified: against `caFile` when given
/// (`PUBSUB_REDIS_TLS_CA_FILE`, PEM, for a private CA), else against the system's trust store;
/// and its name against the URL's host (a DNS name, sent as SNI too) or, for a numeric host,
/// against the address connected to (an IP address entry of the certificate). There is no
/// switch that skips verification. With `certificateFile` and `keyFile`
/// (`PUBSUB_REDIS_TLS_CERT_FILE`, `PUBSUB_REDIS_TLS_KEY_FILE`, PEM) the node presents a client
/// certificate, for a server with `tls-auth-clients yes` (Redis's default).
///
/// A context is made for every connection (``context()``), so certificates renewed on disk are
/// used from the next reconnect on; connections are made rarely enough for that to cost nothing.
public struct RedisTLS: Sendable, Hashable {
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// A client context from the files as they are now.
    public func context() throws(RedisConnectionError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        do {
            if let caFile { configuration.trustRoots = .file(caFile) }
            if let certificateFile, let keyFile {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisConnectionError("TLS: cannot load \(files): \(error)")
        }
    }

    /// The handler that encrypts a connection to `host` (the URL's host: its DNS name is sent
    /// as SNI and checked against the certificate; a numeric host is checked as the address).
    func handler(host: String) throws(RedisConnectionError) -> NIOSSLClientHandler {
        let context = try context()
        do {
            return try NIOSSLClientHandler(context: context, serverHostname: RedisHostResolver.isNumeric(host) ? nil : host)
        } catch {
            throw RedisConnectionError("TLS to \(host): \(error)")
        }
    }

    private var files: String {
        let named = [caFile, certificateFile, keyFile].compactMap { $0 }
        return named.isEmpty ? "the system's trust store" : named.joined(separator: ", ")
    }
}
