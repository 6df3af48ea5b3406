/// Each named client of a `CLIENT LIST` reply with the local port it is connected to (`laddr`):
/// which of a server's ports, plain or TLS, it came in on. Only names that start with `prefix`.
public func namedClientPorts(_ clientList: String, prefix: String) -> [String: Int] {
    var ports: [String: Int] = [:]
    for line in clientList.split(separator: "\n") {
        var fields: [Substring: Substring] = [:]
        for field in line.split(separator: " ") {
            guard let equals = field.firstIndex(of: "=") else { continue }
            fields[field[..<equals]] = field[field.index(after: equals)...]
        }
        guard let name = fields["name"], !name.isEmpty, name.hasPrefix(prefix), let port = fields["laddr"]?.split(separator: ":").last else { continue }
        ports[String(name)] = Int(port)
    }
    return ports
}
