/// A configuration value the node cannot start with. Its description is the one line the node
/// prints before exiting: the variable, what was expected, and what it got.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    public let variable: String
    public let problem: String

    public init(_ variable: String, _ problem: String) {
        self.variable = variable
        self.problem = problem
    }

    public var description: String { "\(variable): \(problem)" }
}
