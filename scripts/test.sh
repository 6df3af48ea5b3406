#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every test: unit tests, a node over real
# WebSockets, the Redis adapter against real redis-server, clusters of nodes behind nginx, and
# the store against SQLite and a real PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh libhiredis-dev zlib1g-dev pkg-config redis-server redis-tools redis-sentinel nginx postgresql util-linux jq curl prometheus chromium chromium-driver openssl
scripts/lib/python-websockets.sh
swift build --build-tests
swift test --skip-build "$@"
# The JavaScript SDK and the example chat app against real nodes (node --test; headless Chromium).
scripts/install-deps.sh nodejs node-typescript node-ws
clients/js/test.sh
# The README's snippets, run as written against a node, and the cluster quick start's check.
scripts/check-readme.sh
deploy/run-cluster.sh -n 3 --check
# Alert rules and their unit tests, a real Prometheus scraping two nodes, the Grafana dashboard.
scripts/check-monitoring.py
