import Foundation
import Synchronization

/// A private certificate authority and certificates it signed, made by `openssl` for one test:
/// a server certificate for `serverNames` and a client certificate (for mutual TLS). Valid for
/// a day; PEM files in `directory`; P-256 keys (fast to make).
///
/// Made with ``make(in:serverNames:)``, on a thread of its own: waiting for five `openssl` runs
/// on Swift's cooperative pool (as wide as the cores) would stall every other test meanwhile,
/// down to clients that then miss their pongs. Tests that need no particular names share one
/// set (``loopback()``), so that a run makes it once rather than once per test.
public struct TestCertificates: Sendable {
    public let authority: String
    public let serverCertificate: String
    public let serverKey: String
    public let clientCertificate: String
    public let clientKey: String

    /// The set for `127.0.0.1` and `localhost` that every test of the process shares, made at
    /// the first call.
    public static func loopback() async throws -> TestCertificates {
        let making = shared.withLock { making in
            if let making { return making }
            let task = Task { try await make(in: TestLogs.folder("certificates-loopback")) }
            making = task
            return task
        }
        return try await making.value
    }

    private static let shared = Mutex<Task<TestCertificates, any Error>?>(nil)

    /// - Parameter serverNames: the server certificate's subjectAltName entries.
    public static func make(in directory: URL, serverNames: String = "IP:127.0.0.1,DNS:localhost") async throws -> TestCertificates {
        try await onOwnThread { try TestCertificates(in: directory, serverNames: serverNames) }
    }

    private init(in directory: URL, serverNames: String) throws {
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        authority = path("ca.pem")
        serverCertificate = path("server.pem")
        serverKey = path("server-key.pem")
        clientCertificate = path("client.pem")
        clientKey = path("client-key.pem")
        let openssl = try Executable.find("openssl", hint: "install openssl (Debian: apt-get install -y openssl)")
        try Self.run(openssl, [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=chorus-test-ca", "-keyout", path("ca-key.pem"), "-out", authority,
        ])
        for (certificate, key, subject, names) in [
            (serverCertificate, serverKey, "/CN=chorus-test-server", serverNames),
            (clientCertificate, clientKey, "/CN=chorus-test-client", nil),
        ] {
            try Self.run(openssl, [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subject,
                "-keyout", key, "-out", certificate + ".csr",
            ])
            var signing = [
                "x509", "-req", "-in", certificate + ".csr", "-CA", authority, "-CAkey", path("ca-key.pem"),
                "-CAcreateserial", "-days", "1", "-out", certificate,
            ]
            if let names {
                let extensions = path("server.ext")
                try "subjectAltName=\(names)\n".write(toFile: extensions, atomically: true, encoding: .utf8)
                signing += ["-extfile", extensions]
            }
            try Self.run(openssl, signing)
        }
    }

    private static func run(_ openssl: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("openssl \(arguments.prefix(2).joined(separator: " ")) failed (\(process.terminationStatus))")
        }
    }
}
