import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real headless Chromium, driven through `chromedriver`'s W3C WebDriver HTTP API (Debian's
/// `chromium` and `chromium-driver` packages): navigate, run a script in the page, save a
/// screenshot. Whoever opens a browser calls ``close()``; the driver process dies with the
/// ``ChildProcess`` otherwise.
public final class Browser: Sendable {
    private let driver: ChildProcess
    private let port: Int
    private let session: String

    private init(driver: ChildProcess, port: Int, session: String) {
        self.driver = driver
        self.port = port
        self.session = session
    }

    /// Starts chromedriver on a loopback port and opens a headless Chromium session.
    public static func open(logDirectory: URL) async throws -> Browser {
        let chromedriver = try Executable.find(
            "chromedriver", hint: "install Chromium's driver (Debian: apt-get install -y chromium chromium-driver)")
        let chromium = try Executable.find("chromium", hint: "install Chromium (Debian: apt-get install -y chromium)")
        let port = try LoopbackPort.reserve()
        let driver = try ChildProcess(
            chromedriver, ["--port=\(port)", "--allowed-ips=127.0.0.1"],
            log: logDirectory.appendingPathComponent("chromedriver.log"))
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await exchange(port: port, "GET", "/status"))?.status != 200 {
            guard driver.isRunning, ContinuousClock.now < deadline else {
                await driver.stop()
                throw TestFailure("chromedriver did not start: \(driver.output())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let capabilities: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": [
                        "binary": chromium,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                 "--window-size=1400,1000"],
                    ],
                ]
            ]
        ]
        let created = try await exchange(port: port, "POST", "/session", capabilities).json()
        guard let value = created["value"] as? [String: Any], let session = value["sessionId"] as? String else {
            await driver.stop()
            throw TestFailure("chromedriver did not open a session: \(created)")
        }
        return Browser(driver: driver, port: port, session: session)
    }

    public func navigate(to url: String) async throws {
        _ = try await command("POST", "url", ["url": url])
    }

    /// Runs `script` (a function body: `return ...;`) in the page and returns its value.
    public func evaluate(_ script: String) async throws -> Any? {
        try await command("POST", "execute/sync", ["script": script, "args": [Any]()])
    }

    /// Saves a PNG of the page to `file`.
    public func screenshot(to file: URL) async throws {
        guard let base64 = try await command("GET", "screenshot") as? String, let png = Data(base64Encoded: base64)
        else { throw TestFailure("chromedriver returned no screenshot") }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try png.write(to: file)
    }

    public func close() async {
        _ = try? await Self.exchange(port: port, "DELETE", "/session/\(session)")
        await driver.stop()
    }

    private func command(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        let response = try await Self.exchange(port: port, method, "/session/\(session)/\(path)", body)
        let answer = try response.json()
        guard response.status == 200 else { throw TestFailure("WebDriver \(path): \(answer)") }
        return answer["value"] is NSNull ? nil : answer["value"]
    }

    /// One HTTP/1.1 request to chromedriver over a plain socket. Foundation's URLSession on Linux fails on chromedriver's responses ("Failed writing
    /// header"), so the few requests WebDriver needs are made by hand.
    private static func exchange(
        port: Int, _ method: String, _ path: String, _ json: [String: Any]? = nil
    ) async throws -> HTTP.Response {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if json != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        let request = Data(head.utf8) + body
        let raw = try await onOwnThread { () throws -> Data in
            let descriptor = LoopbackPort.tcpSocket()
            guard descriptor >= 0 else { throw TestFailure("socket: \(errno)") }
            defer { Glibc.close(descriptor) }
            var timeout = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard LoopbackPort.withAddress(port, { connect(descriptor, $0, $1) }) == 0 else {
                throw TestFailure("connect to chromedriver on \(port): \(errno)")
            }
            var sent = 0
            while sent < request.count {
                let written = request.withUnsafeBytes { send(descriptor, $0.baseAddress! + sent, request.count - sent, 0) }
                guard written > 0 else { throw TestFailure("send to chromedriver: \(errno)") }
                sent += written
            }
            var received = Data()
            var buffer = [UInt8](repeating: 0, count: 65_536)
            // chromedriver keeps the connection open whatever the request says: read up to the
            // end its headers announce.
            while !Self.isComplete(received) {
                let count = recv(descriptor, &buffer, buffer.count, 0)
                guard count > 0 else { break }
                received.append(contentsOf: buffer[..<count])
            }
            return received
        }
        guard let split = raw.range(of: Data("\r\n\r\n".utf8)) else {
            throw TestFailure("chromedriver sent no HTTP response: \(String(decoding: raw, as: UTF8.self))")
        }
        let headers = String(decoding: raw[..<split.lowerBound], as: UTF8.self)
        let status = Int(headers.split(separator: " ").dropFirst().first ?? "") ?? 0
        var content = Data(raw[split.upperBound...])
        if headers.lowercased().contains("transfer-encoding: chunked") { content = dechunk(content) }
        return HTTP.Response(status: status, body: content)
    }

    /// Whether `raw` holds a whole response: headers, then `Content-Length` bytes or the last chunk.
    private static func isComplete(_ raw: Data) -> Bool {
        guard let split = raw.range(of: Data("\r\n\r\n".utf8)) else { return false }
        let headers = String(decoding: raw[..<split.lowerBound], as: UTF8.self).lowercased()
        let body = raw[split.upperBound...]
        if headers.contains("transfer-encoding: chunked") {
            return body.range(of: Data("0\r\n\r\n".utf8)) != nil
        }
        for line in headers.split(separator: "\r\n") where line.hasPrefix("content-length:") {
            return body.count >= Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return false
    }

    private static func dechunk(_ data: Data) -> Data {
        var result = Data()
        var rest = data[...]
        while let line = rest.range(of: Data("\r\n".utf8)),
              let size = Int(String(decoding: rest[..<line.lowerBound], as: UTF8.self), radix: 16), size > 0 {
            let start = line.upperBound
            result.append(rest[start..<start + size])
            rest = rest[(start + size + 2)...]
        }
        return result
    }
}
