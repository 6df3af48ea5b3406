#!/usr/bin/env bash
# Local Chorus cluster on loopback, no Docker: redis-server, N nodes and nginx in front.
#
#   deploy/run-cluster.sh [-n NODES] [--no-redis]    start, print URLs, wait for Ctrl-C
#   deploy/run-cluster.sh [-n NODES] --check          start, verify delivery through nginx,
#                                                     stop; exit 0 (PASS) or 1 (FAIL)
#
# Environment:
#   CHORUS_BIN   node binary (default: .build/debug/chorus, brought up to date with `swift build`)
#   JWT_SECRET   HS256 secret for the nodes (default: random per run)
#   API_KEY      key for POST /api/publish (default: random per run)
#   LOG_LEVEL    node log level (default: info)
#   DATABASE_URL accounts and messages (default: one SQLite file in the temp dir, shared by
#                the nodes of this host; point it at PostgreSQL to try the production setup)
#   KEEP_TMP=1   keep the temp dir (logs, generated nginx.conf) after stopping
#   Any other node variable (WEBSOCKET_PING_INTERVAL, DRAIN_TIMEOUT, ...) is passed through.
#
# Everything runs in one temp dir and binds 127.0.0.1 only. Every wait is bounded. On exit,
# Ctrl-C or SIGTERM the script stops what it started (nodes first, with SIGTERM so they
# drain; then nginx; then Redis) and removes the temp dir.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
NODES=3
USE_REDIS=1
CHECK=0

usage() {
    sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        -n|--nodes)
            [ $# -ge 2 ] || { echo "run-cluster: $1 needs a number" >&2; exit 2; }
            NODES="$2"; shift 2 ;;
        -n*) NODES="${1#-n}"; shift ;;
        --no-redis) USE_REDIS=0; shift ;;
        --check) CHECK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-cluster: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$NODES" in
    ''|*[!0-9]*) echo "run-cluster: -n expects a whole number, got '$NODES'" >&2; exit 2 ;;
esac
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 32 ]; then
    echo "run-cluster: -n expects 1 to 32 nodes, got $NODES" >&2; exit 2
fi

log() { printf 'run-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}
# Debian packages the cluster needs, installed when missing (as scripts/run-node.sh does).
if command -v dpkg-query >/dev/null 2>&1; then
    "$REPO/scripts/install-deps.sh" libhiredis-dev zlib1g-dev pkg-config curl nginx util-linux redis-server || die "could not install the cluster's packages"
fi
need python3 "install python3"
need curl "install curl"
need nginx "install nginx (Debian: apt-get install -y nginx-light or nginx)"
need setsid "install util-linux"
[ "$USE_REDIS" = 1 ] && need redis-server "install redis-server, or pass --no-redis"

if [ -z "${CHORUS_BIN:-}" ]; then
    CHORUS_BIN="$REPO/.build/debug/chorus"
    # Brings the debug binary up to date: seconds when nothing changed, about 15 minutes the
    # first time on 2 cores.
    log "building chorus (swift build --product chorus)"
    (cd "$REPO" && swift build --product chorus) || die "swift build failed"
fi
[ -x "$CHORUS_BIN" ] || die "$CHORUS_BIN is missing or not executable"

random_hex() { python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }
export JWT_SECRET="${JWT_SECRET:-$(random_hex 24)}"
export API_KEY="${API_KEY:-$(random_hex 16)}"
export LOG_LEVEL="${LOG_LEVEL:-info}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/chorus-cluster.XXXXXX")"
NODE_PIDS=()
NGINX_PID=""
REDIS_PID=""

# Sends SIGTERM to the given pids, waits up to $1 seconds, then SIGKILLs what is left.
stop_pids() {
    local seconds="$1" label="$2"; shift 2
    local pid alive deadline rc
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$(( $(date +%s) + seconds ))
    while :; do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "$label did not stop within ${seconds}s: SIGKILL"
            for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
            break
        fi
        sleep 0.1
    done
    for pid in "$@"; do
        rc=0; wait "$pid" 2>/dev/null || rc=$?
        STOPPED+=("$label pid $pid exit $rc")
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    STOPPED=()
    if [ ${#NODE_PIDS[@]} -gt 0 ] || [ -n "$NGINX_PID" ] || [ -n "$REDIS_PID" ]; then
        log "stopping the cluster"
        # Nodes first, while Redis is still up: SIGTERM drains them (WebSockets get 1001).
        local drain_ms="${DRAIN_TIMEOUT:-10000}"
        [ ${#NODE_PIDS[@]} -gt 0 ] && stop_pids $(( drain_ms / 1000 + 5 )) node "${NODE_PIDS[@]}"
        [ -n "$NGINX_PID" ] && stop_pids 10 nginx "$NGINX_PID"
        [ -n "$REDIS_PID" ] && stop_pids 10 redis "$REDIS_PID"
        local line
        for line in "${STOPPED[@]}"; do log "  $line"; done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports, http_status, wait_for
# shellcheck source=../scripts/lib/loopback.sh
source "$REPO/scripts/lib/loopback.sh"

read -r -a PORTS <<<"$(free_ports $(( NODES + 2 )))"
NGINX_PORT="${PORTS[0]}"
REDIS_PORT="${PORTS[1]}"
NODE_PORTS=("${PORTS[@]:2}")

# ---- Redis --------------------------------------------------------------------------
if [ "$USE_REDIS" = 1 ]; then
    mkdir -p "$WORK/redis"
    setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --maxmemory 512mb --maxmemory-policy volatile-lru \
        --dir "$WORK/redis" --logfile "$WORK/redis.log" --daemonize no </dev/null &
    REDIS_PID=$!
    deadline=$(( $(date +%s) + 10 ))
    until [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
        kill -0 "$REDIS_PID" 2>/dev/null || { tail -n 20 "$WORK/redis.log" >&2; die "redis-server exited during start"; }
        [ "$(date +%s)" -lt "$deadline" ] || die "redis-server did not answer PING within 10s"
        sleep 0.1
    done
    ADAPTER=redis
else
    ADAPTER=memory
fi

# ---- nodes --------------------------------------------------------------------------
for i in $(seq 1 "$NODES"); do
    port="${NODE_PORTS[$((i - 1))]}"
    env -u WEBSOCKET_PORT -u WEBSOCKET_HOST \
        HTTP_HOST=127.0.0.1 HTTP_PORT="$port" NODE_ID="node-$i" \
        PUBSUB_ADAPTER="$ADAPTER" PUBSUB_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
        TRUSTED_PROXIES=127.0.0.1 DATABASE_URL="${DATABASE_URL:-sqlite:$WORK/chorus.sqlite}" \
        setsid "$CHORUS_BIN" serve </dev/null >"$WORK/node-$i.log" 2>&1 &
    NODE_PIDS+=($!)
done
for i in $(seq 1 "$NODES"); do
    wait_for "http://127.0.0.1:${NODE_PORTS[$((i - 1))]}/ready" 30 "${NODE_PIDS[$((i - 1))]}" \
        "node-$i" "$WORK/node-$i.log" || exit 1
done

# ---- nginx --------------------------------------------------------------------------
# The loopback variant of deploy/nginx.conf: same proxy settings, static upstream
# servers, every path (pid, logs, temp files) inside $WORK/nginx.
NGX="$WORK/nginx"
mkdir -p "$NGX/tmp"
# WebSocket idle limit: 75 s for the default 30 s ping interval, and always more than
# twice WEBSOCKET_PING_INTERVAL, so nginx never cuts a connection the node keeps alive.
WS_TIMEOUT=75
case "${WEBSOCKET_PING_INTERVAL:-}" in
    ''|*[!0-9]*) ;;
    *) [ $(( WEBSOCKET_PING_INTERVAL * 2 / 1000 + 15 )) -gt "$WS_TIMEOUT" ] \
           && WS_TIMEOUT=$(( WEBSOCKET_PING_INTERVAL * 2 / 1000 + 15 )) ;;
esac
{
    # Without a `user` line, nginx started as root runs its workers as `nobody`, who cannot
    # enter the private temp dir (large request bodies then fail with 500); name ourselves
    # instead. Not root: no line (nginx would only warn that it is ignored).
    [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);"
    cat <<EOF
worker_processes auto;
pid $NGX/nginx.pid;
error_log $NGX/error.log notice;

events {
    worker_connections 4096;
}

http {
    # Without the query string: a token in \`/ws?token=\` stays out of the log (deploy/nginx.conf).
    log_format chorus '\$remote_addr - \$remote_user [\$time_local] "\$request_method \$uri \$server_protocol" '
                      '\$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" \$request_time';
    access_log $NGX/access.log chorus;
    client_body_temp_path $NGX/tmp/client_body;
    proxy_temp_path $NGX/tmp/proxy;
    fastcgi_temp_path $NGX/tmp/fastcgi;
    uwsgi_temp_path $NGX/tmp/uwsgi;
    scgi_temp_path $NGX/tmp/scgi;

    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }

    upstream chorus_nodes {
        least_conn;
EOF
    for port in "${NODE_PORTS[@]}"; do
        echo "        server 127.0.0.1:$port max_fails=0;"
    done
    cat <<EOF
        # No keepalive: a node upgrades to WebSocket only on a connection's first request.
    }

    client_max_body_size 2m;

    server {
        listen 127.0.0.1:$NGINX_PORT;

        location /ws {
            proxy_pass http://chorus_nodes;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_read_timeout ${WS_TIMEOUT}s;
            proxy_send_timeout ${WS_TIMEOUT}s;
            proxy_connect_timeout 2s;
            proxy_buffering off;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
        }

        # As deploy/nginx.conf: operator data for loopback only (a no-op on this
        # loopback listener, kept so the two files stay in step).
        location ~* ^/(stats|metrics|dashboard)(/|\$) {
            allow 127.0.0.1;
            deny all;
            proxy_pass http://chorus_nodes;
            proxy_http_version 1.1;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }

        location / {
            proxy_pass http://chorus_nodes;
            proxy_http_version 1.1;
            proxy_set_header Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            proxy_send_timeout 30s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
        }
    }
}
EOF
} >"$NGX/nginx.conf"

nginx -t -q -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" \
    || { tail -n 20 "$NGX/error.log" >&2; die "nginx -t rejected $NGX/nginx.conf"; }
setsid nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" -g 'daemon off;' </dev/null \
    >"$NGX/stdout.log" 2>&1 &
NGINX_PID=$!
wait_for "http://127.0.0.1:$NGINX_PORT/ready" 10 "$NGINX_PID" nginx "$NGX/error.log" || exit 1

TOKEN="$("$CHORUS_BIN" token --sub demo --ttl 12h)" || die "chorus token failed"

# ---- --check ------------------------------------------------------------------------
if [ "$CHECK" = 1 ]; then
    cat >"$WORK/check.py" <<'EOF'
"""Delivery through nginx: a subscriber on /ws via nginx receives what the nodes publish
through POST /api/publish. Standard library only (a minimal RFC 6455 client)."""
import base64, hashlib, json, os, socket, struct, sys, time, urllib.request

nginx_port = int(os.environ["CHECK_NGINX_PORT"])
node_ports = [int(p) for p in os.environ["CHECK_NODE_PORTS"].split()]
token, api_key = os.environ["CHECK_TOKEN"], os.environ["CHECK_API_KEY"]
shared = os.environ["CHECK_ADAPTER"] == "redis"
topic = "check.delivery.%s" % os.urandom(4).hex()


class WebSocket:
    def __init__(self, port, path, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path, port, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise RuntimeError("upgrade refused: %s" % lines[0])
        expected = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        if headers.get("sec-websocket-accept") != expected:
            raise RuntimeError("bad Sec-WebSocket-Accept")

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_json(self, value):
        self._send(0x1, json.dumps(value).encode())

    def _read(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            if not chunk:
                raise RuntimeError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_json(self, timeout):
        """The next text message as JSON, or None when nothing arrives within timeout."""
        deadline = time.monotonic() + timeout
        message = b""
        try:
            while True:
                b0, b1 = self._read(2, deadline)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._read(2, deadline))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._read(8, deadline))[0]
                payload = self._read(n, deadline)
                if opcode == 0x9:
                    self._send(0xA, payload)
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    raise RuntimeError("server closed the WebSocket (code %s)" % code)
                elif opcode in (0x0, 0x1, 0x2):
                    message += payload
                    if b0 & 0x80:
                        return json.loads(message)
        except TimeoutError:
            return None

    def close(self):
        try:
            self._send(0x8, struct.pack("!H", 1000))
            self.sock.close()
        except OSError:
            pass


def get_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=3) as r:
        return json.load(r)


def publish(port, body):
    request = urllib.request.Request(
        "http://127.0.0.1:%d/api/publish" % port, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": api_key})
    with urllib.request.urlopen(request, timeout=3) as r:
        return r.status


def adapter_states():
    states = []
    for i, port in enumerate(node_ports, 1):
        try:
            adapter = get_json(port, "/stats").get("adapter", {})
            states.append("node-%d: %s/%s" % (i, adapter.get("adapter"), adapter.get("state")))
        except Exception as error:
            states.append("node-%d: /stats failed (%s)" % (i, error))
    return ", ".join(states)


def main():
    # Plain HTTP through nginx first: an upgrade must still work after it (nginx must not
    # hand the upgrade to a node over a connection that already served a request).
    for _ in range(2 * len(node_ports)):
        get_json(nginx_port, "/health")
    ws = WebSocket(nginx_port, "/ws?token=" + token)
    print("check: connected through nginx 127.0.0.1:%d/ws" % nginx_port)
    ws.send_json({"type": "subscribe", "topic": topic, "id": 1})
    deadline = time.monotonic() + 5
    while True:
        reply = ws.recv_json(max(0.0, deadline - time.monotonic()))
        if reply is None:
            print("check: no 'subscribed' reply within 5s")
            return False
        if reply.get("type") == "subscribed":
            break
        if reply.get("type") == "error":
            print("check: subscribe refused: %s" % reply)
            return False

    home = None
    for i, port in enumerate(node_ports, 1):
        if get_json(port, "/stats").get("connections", {}).get("total", 0) > 0:
            home = i
    print("check: the subscriber landed on node-%s; adapters: %s" % (home, adapter_states()))

    # Publishers: node 2 first (the required path), every other node, then nginx. Without a
    # shared adapter (--no-redis) only the subscriber's own node can reach it.
    if shared:
        first = 2 if len(node_ports) >= 2 else 1
        order = [("node-%d" % i, node_ports[i - 1]) for i in
                 [first] + [i for i in range(1, len(node_ports) + 1) if i != first]]
        order.append(("nginx", nginx_port))
    else:
        order = [("node-%d" % home, node_ports[home - 1])]
        print("check: --no-redis: nodes do not share topics; publishing through node-%s only" % home)

    # Warm-up: the node may confirm the Redis SUBSCRIBE just after answering 'subscribed'.
    first_label, first_port = order[0]
    deadline = time.monotonic() + 10
    warmed = False
    while time.monotonic() < deadline and not warmed:
        publish(first_port, {"topic": topic, "eventType": "check.warmup", "data": {}})
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            m = ws.recv_json(max(0.0, end - time.monotonic()))
            if m and m.get("type") == "message" and m.get("eventType") == "check.warmup":
                warmed = True
                break
    if not warmed:
        print("check: nothing published through %s reached the subscriber on node-%s within 10s"
              % (first_label, home))
        print("check: adapters now: %s" % adapter_states())
        return False

    expected = []
    for n, (label, port) in enumerate(order):
        status = publish(port, {"topic": topic, "eventType": "check", "data": {"seq": n, "via": label}})
        if status != 202:
            print("check: POST /api/publish through %s answered %d" % (label, status))
            return False
        expected.append((n, label))

    received = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(received) < len(expected):
        m = ws.recv_json(max(0.0, deadline - time.monotonic()))
        if m and m.get("type") == "message" and m.get("eventType") == "check":
            received.append((m["data"]["seq"], m["data"]["via"]))
    # Linger briefly: a duplicate would arrive now.
    end = time.monotonic() + 1
    while time.monotonic() < end:
        m = ws.recv_json(max(0.0, end - time.monotonic()))
        if m and m.get("type") == "message" and m.get("eventType") == "check":
            received.append((m["data"]["seq"], m["data"]["via"]))
    ws.close()

    for seq, via in expected:
        count = received.count((seq, via))
        mark = "ok" if count == 1 else ("MISSING" if count == 0 else "DUPLICATED x%d" % count)
        where = {"node-%s" % home: "same node", "nginx": "any node"}.get(via, "cross-node")
        print("check: published via %s (%s) -> %s" % (via, where, mark))
    return sorted(received) == sorted(expected)


try:
    ok = main()
except Exception as error:
    print("check: %s: %s" % (type(error).__name__, error))
    ok = False
sys.exit(0 if ok else 1)
EOF
    log "running the delivery check"
    rc=0
    CHECK_NGINX_PORT="$NGINX_PORT" CHECK_NODE_PORTS="${NODE_PORTS[*]}" CHECK_TOKEN="$TOKEN" \
        CHECK_API_KEY="$API_KEY" CHECK_ADAPTER="$ADAPTER" \
        timeout 60 python3 "$WORK/check.py" || rc=$?
    if [ "$rc" = 0 ]; then
        echo "PASS"
        exit 0
    fi
    echo "FAIL"
    for i in $(seq 1 "$NODES"); do
        log "last lines of node-$i.log:"
        tail -n 5 "$WORK/node-$i.log" >&2 || true
    done
    exit 1
fi

# ---- interactive: print the cluster and wait ----------------------------------------
cat <<EOF

Chorus cluster: $NODES node(s), adapter $ADAPTER$( [ "$USE_REDIS" = 1 ] && echo ", Redis on 127.0.0.1:$REDIS_PORT" )

  nginx        http://127.0.0.1:$NGINX_PORT    WebSocket: ws://127.0.0.1:$NGINX_PORT/ws
EOF
for i in $(seq 1 "$NODES"); do
    port="${NODE_PORTS[$((i - 1))]}"
    printf '  node-%-7s http://127.0.0.1:%s    stats: http://127.0.0.1:%s/stats    pid %s\n' \
        "$i" "$port" "$port" "${NODE_PIDS[$((i - 1))]}"
done
[ "$USE_REDIS" = 1 ] && echo "  redis        redis-cli -p $REDIS_PORT    (channels: pubsub:<topic>)"
cat <<EOF

  logs         $WORK   (node-N.log, redis.log, nginx/)
  JWT_SECRET   $JWT_SECRET
  API_KEY      $API_KEY
  token (sub demo, 12h):
    $TOKEN

  Connect:   ws://127.0.0.1:$NGINX_PORT/ws?token=$TOKEN
             then send {"type":"subscribe","topic":"demo.*"}
  Publish:   curl -sS -X POST http://127.0.0.1:$NGINX_PORT/api/publish \\
               -H 'X-API-Key: $API_KEY' -H 'Content-Type: application/json' \\
               -d '{"topic":"demo.hello","eventType":"demo","data":{"text":"hi"}}'

Ctrl-C stops everything.
EOF

# Report processes that exit on their own (kill a node to watch nginx move its clients);
# return when none is left.
ALL_PIDS=("${NODE_PIDS[@]}" "$NGINX_PID")
[ -n "$REDIS_PID" ] && ALL_PIDS+=("$REDIS_PID")
declare -A REPORTED=()
while :; do
    alive=0
    for pid in "${ALL_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            alive=1
        elif [ -z "${REPORTED[$pid]:-}" ]; then
            REPORTED[$pid]=1
            log "process $pid exited on its own (see the logs in $WORK)"
        fi
    done
    [ "$alive" = 1 ] || break
    sleep 2 & wait $! || true
done
