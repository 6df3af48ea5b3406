import Testing

/// Tests of a real cluster on loopback: `redis-server`, three `chorus` nodes (the built binary)
/// and `nginx` in front, started by ``TestSupport/withCluster(nodes:redisServers:environment:_:)``
/// for each test and always stopped.
///
/// The suites nest here so that they run one at a time: each test starts five or more
/// processes, and the rest of the test suite runs alongside on the same cores.
@Suite("Cluster (redis-server, chorus nodes, nginx)", .serialized)
struct ClusterTests {}
