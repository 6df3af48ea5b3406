import Foundation
import Testing
@testable import Broker

@Test func redisBenchTmp() throws {
    let e = Envelope(id: "a:1234", origin: "a", topic: try Topic("load.t"), eventType: "test", data: .object(["n": .number(1234)]))
    let clock = ContinuousClock()
    var bytes: [UInt8] = []
    let enc = clock.measure { for _ in 0..<5000 { bytes = EnvelopeCodec.encode(e) } }
    let dec = try clock.measure { for _ in 0..<5000 { _ = try EnvelopeCodec.decode(bytes) } }
    let topic = clock.measure { for _ in 0..<5000 { _ = try? Topic("load.t") } }
    let date = clock.measure { for _ in 0..<5000 { _ = e.timestamp.formatted(EnvelopeCodec.timestampFormat) } }
    let parse = clock.measure { for _ in 0..<5000 { _ = try? EnvelopeCodec.timestampFormat.parse("2025-01-31T12:00:00.125Z") } }
    let simple = Array(#"{"v":1,"id":"a:1","origin":"a","topic":"load.t","data":1,"timestamp":"2025-01-31T12:00:00.125Z"}"#.utf8)
    let dsimple = try clock.measure { for _ in 0..<5000 { _ = try EnvelopeCodec.decode(simple) } }
    struct Plain: Decodable { let v: Int; let id: String; let origin: String; let topic: String; let data: Int; let timestamp: String }
    let dplain = try clock.measure { for _ in 0..<5000 { _ = try JSONDecoder().decode(Plain.self, from: Data(simple)) } }
    let dser = try clock.measure { for _ in 0..<5000 { _ = try JSONSerialization.jsonObject(with: Data(bytes)) } }
    print("BENCH simple \(dsimple / 5000) plain \(dplain / 5000) serialization \(dser / 5000)")
    print("BENCH encode \(enc / 5000) decode \(dec / 5000) topic \(topic / 5000) date \(date / 5000) parse \(parse / 5000)")
}
