/// ``ChorusNode/httpPort()`` asked of a node whose ``ChorusNode/run()`` ended before it
/// listened (a taken port, a service that failed at start): the error is `run()`'s to throw.
public struct NodeNotListening: Error, CustomStringConvertible {
    public var description: String { "the node stopped before it listened" }
}
