#!/usr/bin/env bash
# Makes Python's `websockets` importable by whichever python3 is first on PATH (the
# permessage-deflate interop test and the README check use it): pip, or Debian's package
# when pip refuses (an externally managed system Python).
set -euo pipefail
python3 -c 'import websockets' 2>/dev/null && exit 0
python3 -m pip install -q websockets 2>/dev/null || "$(dirname "$0")/../install-deps.sh" python3-websockets
