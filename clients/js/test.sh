#!/usr/bin/env bash
# Runs the JavaScript SDK's tests (node --test) against the built node (.build/debug/chorus,
# or $CHORUS_BINARY, or $CHORUS_BIN as the Swift tests and deploy/run-cluster.sh read it), real redis-server and nginx, and type-checks chorus.d.ts with tsc.
# Node 20 needs --experimental-websocket for its built-in WebSocket (Node 22+ has it anyway).
set -euo pipefail
cd "$(dirname "$0")/../.."
flags=()
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
    # Node 20: the built-in WebSocket is behind a flag; older Node: the tests use the ws package.
    node --experimental-websocket -e 1 2>/dev/null && flags+=(--experimental-websocket)
fi
# JSON.rawJSON (native from Node 21 and in browsers) for the test of publishing exact numbers.
if ! node -e 'process.exit(typeof JSON.rawJSON === "function" ? 0 : 1)'; then
    node --harmony-json-parse-with-source -e 1 2>/dev/null && flags+=(--harmony-json-parse-with-source)
fi
# A hung test fails after 5 minutes instead of hanging the run (Node 20.11+).
node --test-timeout=1 -e 1 2>/dev/null && flags+=(--test-timeout=300000)
exec node "${flags[@]}" --test clients/js/test/*.test.mjs "$@"
