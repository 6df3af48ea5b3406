import Testing
@testable import Broker
@Test func placeholder() { #expect(Bool(true)) }
