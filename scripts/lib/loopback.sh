# Shell helpers for scripts that start servers on loopback (deploy/run-cluster.sh,
# scripts/bench.sh). Source it after defining `log` (prints one line to stderr).

# free_ports N: N free TCP ports on 127.0.0.1, bound together so that they are distinct.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

http_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# wait_for URL SECONDS PID LABEL LOG: until URL answers 200; returns 1 (after printing the
# last lines of LOG) if PID dies first or SECONDS pass.
wait_for() {
    local url="$1" seconds="$2" pid="$3" label="$4" logfile="$5" deadline
    deadline=$(( $(date +%s) + seconds ))
    while [ "$(http_status "$url")" != 200 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$label exited during start; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "$label: $url did not answer 200 within ${seconds}s; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

# stop_pid PID: TERM, up to 10 s to exit, then KILL; reaps it when it is a child of this shell.
stop_pid() {
    local pid="$1" i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
