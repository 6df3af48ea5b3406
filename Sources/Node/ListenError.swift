import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The node could not open a listening socket: a port taken by another process, an address the
/// machine does not have, or a privileged port. Names the variable to change.
public struct ListenError: Error, CustomStringConvertible {
    /// `HTTP_PORT` or `WEBSOCKET_PORT`.
    public var variable: String
    public var host: String
    public var port: Int
    public var reason: String

    public var description: String {
        "cannot listen on \(host):\(port) (\(variable)): \(reason)"
    }

    /// The listening failure inside `error`, if it is one (`bind` or `listen` failing with a
    /// system error).
    static func reason(of error: any Error) -> String? {
        guard let error = error as? IOError else { return nil }
        switch error.errnoCode {
        case EADDRINUSE: return "address already in use: another process listens there; stop it or choose another port"
        case EADDRNOTAVAIL: return "this machine has no such address"
        case EACCES: return "permission denied: ports below 1024 need privileges"
        default: return nil
        }
    }
}
