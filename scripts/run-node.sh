#!/usr/bin/env bash
# Builds and runs one Chorus node with the in-memory adapter (no Redis needed) on port 3000.
# Any variable of the configuration table in README.md can be set in front of the command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh libhiredis-dev zlib1g-dev pkg-config
# shellcheck source=lib/release-build.sh
source scripts/lib/release-build.sh
release_build --product chorus
if [ -z "${JWT_SECRET:-}" ] && [ -z "${JWT_PUBLIC_KEY_FILE:-}" ]; then
    export JWT_SECRET="dev-only-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    # Kept where the README's snippets read it from, for this user only.
    (umask 077 && printf '%s\n' "$JWT_SECRET" > .build/dev-jwt-secret && chmod 600 .build/dev-jwt-secret)
    echo "JWT_SECRET was not set; using a throwaway development secret for this run (also in .build/dev-jwt-secret):" >&2
    echo "  export JWT_SECRET=$JWT_SECRET" >&2
    echo "a token to try it with (user 'demo', valid 1 hour):" >&2
    echo "  $(.build/release/chorus token --sub demo)" >&2
fi
# A development secret (made above, or printed by an earlier run and passed back in) means a
# development node: this machine only, unless HTTP_HOST says otherwise.
if [[ "${JWT_SECRET:-}" == dev-only-secret-* ]] && [ -z "${HTTP_HOST:-}" ]; then
    export HTTP_HOST=127.0.0.1
    echo "listening on 127.0.0.1 with a development secret (set HTTP_HOST=0.0.0.0 to accept other machines)" >&2
fi
exec .build/release/chorus "$@"
