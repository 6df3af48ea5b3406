public struct Topic: Hashable, Sendable, CustomStringConvertible { public let name: String; public init(_ name: String) throws { self.name = name }; public var description: String { name } }
public struct TopicPattern: Hashable, Sendable, CustomStringConvertible { public let text: String; public init(_ text: String) throws { self.text = text }; public var description: String { text } }
