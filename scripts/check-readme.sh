#!/usr/bin/env bash
# Runs the README's snippets as written against a real node on port 3000 (as the README's
# snippets expect), with the debug binary standing in for .build/release/chorus; and checks that
# every shell snippet in docs/ says whether and where it is run (see scripts/lib/doc_snippets.py).
# Usage: scripts/check-readme.sh [path/to/chorus]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${1:-$REPO/.build/debug/chorus}
[ -x "$BIN" ] || { echo "check-readme: $BIN missing: run swift build first" >&2; exit 1; }
python3 scripts/lib/doc_snippets.py --lint docs/*.md
scripts/install-deps.sh jq curl
scripts/lib/python-websockets.sh
log() { echo "check-readme: $*" >&2; }
source scripts/lib/loopback.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chorus-readme.XXXXXX")
NODE_PID=""
stop() {
    local rc=$?
    if [ -n "$NODE_PID" ]; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        local status=0
        wait "$NODE_PID" || status=$?
        if [ "$status" -ne 0 ] || grep -qE 'Assertion failed|Fatal error|Signal [0-9]|Crash' "$WORK/node.log"; then
            echo "check-readme: the node exited with status $status or crashed; its log:" >&2
            tail -40 "$WORK/node.log" >&2
            rc=1
        fi
    fi
    [ "$rc" -eq 0 ] && rm -rf "$WORK" || echo "check-readme: kept $WORK" >&2
    exit "$rc"
}
trap stop EXIT
mkdir -p "$WORK/.build/release" "$WORK/deploy" "$WORK/scripts"
ln -s "$BIN" "$WORK/.build/release/chorus"
if [ "$(http_status http://127.0.0.1:3000/health)" != 000 ]; then
    echo "check-readme: port 3000 is in use; the README's snippets need it" >&2
    exit 1
fi
# Where scripts/run-node.sh keeps its development secret, for the snippets that read it.
JWT_SECRET="readme-check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$JWT_SECRET" > "$WORK/.build/dev-jwt-secret"
JWT_SECRET=$JWT_SECRET API_KEY=secret-key HTTP_HOST=127.0.0.1 HTTP_PORT=3000 \
    DATABASE_URL="sqlite:$WORK/chorus.sqlite" AUTH_BCRYPT_COST=4 "$BIN" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
wait_for http://127.0.0.1:3000/ready 60 "$NODE_PID" "the node" "$WORK/node.log"
python3 scripts/lib/doc_snippets.py README.md "$WORK"
echo "check-readme: every README snippet ran as written"
