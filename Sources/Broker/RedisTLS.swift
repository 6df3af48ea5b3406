import NIOCore
import NIOSSL
import Synchronization

/// TLS to a Redis server, for a `rediss://` URL (Redis 6's `tls-port`, and the managed Redis
/// services that accept TLS only).
///
/// The server's certificate is always verified: against `caFile` when given
/// (`PUBSUB_REDIS_TLS_CA_FILE`, PEM, for a private CA), else against the system's trust store;
/// and its name against the URL's host (a DNS name, sent as SNI too) or, for a numeric host,
/// against the address connected to (an IP address entry of the certificate), by the usual
/// rules (subjectAltName entries; the common name only in a certificate without them). There is
/// no switch that skips verification. With `certificateFile` and `keyFile`
/// (`PUBSUB_REDIS_TLS_CERT_FILE`, `PUBSUB_REDIS_TLS_KEY_FILE`, PEM) the node presents a client
/// certificate, for a server with `tls-auth-clients yes` (Redis's default).
///
/// The files are read once per process (``context()``), by the node's configuration at start:
/// connects, which happen on event loops, never read files or parse the trust store.
/// Certificates renewed on disk are used after a restart.
public struct RedisTLS: Sendable, Hashable {
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// Which file a ``FileError`` is about.
    public enum File: Sendable {
        case authority, certificate, key
    }

    /// A file that cannot be used, or the system's trust store (`file` nil).
    public struct FileError: Error, CustomStringConvertible {
        public var file: File?
        public var description: String
    }

    /// The client context for these files: made at the first call, then the same one.
    public func context() throws(FileError) -> NIOSSLContext {
        if let made = Self.contexts.withLock({ $0[self] }) { return made }
        let context = try makeContext()
        Self.contexts.withLock { $0[self] = context }
        return context
    }

    private static let contexts = Mutex<[RedisTLS: NIOSSLContext]>([:])

    /// Reads each file on its own first, so that an error names the file at fault.
    private func makeContext() throws(FileError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        if let caFile {
            configuration.trustRoots = .certificates(try Self.reading(caFile, .authority) { try NIOSSLCertificate.fromPEMFile(caFile) })
        }
        if let certificateFile {
            configuration.certificateChain = try Self.reading(certificateFile, .certificate) {
                try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            }
        }
        if let keyFile {
            configuration.privateKey = .privateKey(try Self.reading(keyFile, .key) { try NIOSSLPrivateKey(file: keyFile, format: .pem) })
        }
        // The trust store (no CA file), or whether the key fits the certificate.
        let blame: File? = certificateFile != nil ? .certificate : (caFile != nil ? .authority : nil)
        return try Self.reading(certificateFile ?? caFile, blame) { try NIOSSLContext(configuration: configuration) }
    }

    /// `body`'s result, or its error as a ``FileError`` about `path` (nil: the trust store).
    private static func reading<Value>(_ path: String?, _ file: File?, _ body: () throws -> Value) throws(FileError) -> Value {
        do {
            return try body()
        } catch {
            throw FileError(file: file, description: "TLS: cannot use \(path ?? "the system's trust store"): \(error)")
        }
    }

    /// The handler that encrypts a connection to `host` (the URL's host: its DNS name is sent
    /// as SNI and checked against the certificate; a numeric host is checked as the address).
    func handler(host: String) throws(RedisConnectionError) -> NIOSSLClientHandler {
        do {
            return try NIOSSLClientHandler(context: context(), serverHostname: RedisHostResolver.isNumeric(host) ? nil : host)
        } catch let error as FileError {
            throw RedisConnectionError(error.description)
        } catch {
            throw RedisConnectionError("TLS to \(host): \(error)")
        }
    }
}
