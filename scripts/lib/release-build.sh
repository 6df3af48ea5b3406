# The one definition of how this repository builds release binaries (scripts/run-node.sh,
# scripts/bench.sh, scripts/bench-crosscheck.sh; deploy/Dockerfile spells the same flags in its
# ARG): optimized, without Swift's run-time exclusivity checks in any module, dependencies
# included (docs/operations.md, "Release builds"). Source it; extra arguments go to swift build.
release_build() {
    swift build -c release -Xswiftc -enforce-exclusivity=unchecked "$@"
}
