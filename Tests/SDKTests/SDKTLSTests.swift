import ChorusSDK
import Foundation
import NIOSSL
import Testing
import TestSupport

/// The Swift SDK over `wss://`: a real nginx terminating TLS in front of a real node, with a
/// certificate made for the test by `openssl`.
@Suite("Swift SDK over TLS", .timeLimit(.minutes(2)))
struct SDKTLSTests {
    @Test("a wss:// client that trusts the proxy's certificate connects, publishes and receives; one that does not is refused")
    func tls() async throws {
        let directory = try TestLogs.folder("sdk-tls")
        let files = try Self.selfSignedCertificate(in: directory)
        try await withNodeProcess { node in
            let nginx = try await NginxProcess.start(
                upstreamPorts: [node.port], directory: directory.appendingPathComponent("nginx"), tls: files)
            defer { Task { _ = await nginx.process.stop() } }
            let url = "wss://127.0.0.1:\(nginx.port)/ws"

            var trusting = ChorusClient.Configuration()
            trusting.tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.certificate))
            let client = try ChorusClient(url: url, token: node.token("alice"), configuration: trusting)
            try await client.connect()
            let subscription = try await client.subscribe("chat.secure")
            try await client.publish("chat.secure", ["text": "over TLS"])
            var messages = subscription.makeAsyncIterator()
            #expect(try #require(await messages.next()).data == ["text": "over TLS"])
            await client.close()

            // The system's trust roots do not include the test's certificate.
            var untrusting = ChorusClient.Configuration()
            untrusting.reconnects = false
            let refused = try ChorusClient(url: url, token: node.token("bob"), configuration: untrusting)
            await #expect(throws: (any Error).self) { try await refused.connect() }
            await refused.close()
            #expect(await nginx.process.stop() == 0, "nginx exits cleanly: \(nginx.errorLog())")
        }
    }

    /// A certificate for 127.0.0.1 (and localhost), valid for a day, with its key.
    private static func selfSignedCertificate(in directory: URL) throws -> NginxProcess.TLSFiles {
        let files = NginxProcess.TLSFiles(
            certificate: directory.appendingPathComponent("cert.pem").path,
            key: directory.appendingPathComponent("key.pem").path)
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: try Executable.find("openssl", hint: "install openssl (Debian: apt-get install -y openssl)"))
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=chorus-test",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", files.key, "-out", files.certificate,
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw TestFailure("openssl failed (\(openssl.terminationStatus))") }
        return files
    }
}
