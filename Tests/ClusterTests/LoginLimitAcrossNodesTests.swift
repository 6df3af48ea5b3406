import Testing
import TestSupport

extension ClusterTests {
    @Suite("Login and registration limits across nodes")
    struct LoginLimitAcrossNodesTests {
        @Test("AUTH_LOGIN_ATTEMPTS_PER_MINUTE holds for the cluster: logins for one name, and registrations, from one address spread over two nodes are refused with 429 past the limit on either node")
        func limitsAcrossNodes() async throws {
            try await withCluster(nodes: 2, environment: ["AUTH_LOGIN_ATTEMPTS_PER_MINUTE": "4"]) { cluster in
                for number in 1...2 {
                    try #require(await eventually { await cluster.node(number).adapterState() == "connected" }, "node-\(number)'s Redis link")
                }
                var logins: [Int] = []
                for attempt in 0..<8 {
                    let node = cluster.node(attempt % 2 + 1)
                    let response = try await HTTP.post(
                        "\(node.baseURL)/api/auth/login", json: ["username": "victim", "password": "guess number \(attempt)"])
                    logins.append(response.status)
                }
                // Each node's own count alone allows four here, so eight attempts over two nodes.
                #expect(logins == [401, 401, 401, 401, 429, 429, 429, 429])

                var registrations: [Int] = []
                for attempt in 0..<6 {
                    let node = cluster.node(attempt % 2 + 1)
                    let response = try await HTTP.post(
                        "\(node.baseURL)/api/auth/register", json: ["username": "user\(attempt)", "password": "correct horse \(attempt)"])
                    registrations.append(response.status)
                }
                #expect(registrations == [201, 201, 201, 201, 429, 429])
            }
        }
    }
}
