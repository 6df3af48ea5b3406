#!/usr/bin/env bash
# Keeps chorus-bench honest: the same broadcast scenario measured by chorus-bench and by gogen
# (bench/gogen, a Go client over Debian's gorilla/websocket), alternating, against the same
# servers, started as scripts/bench.sh starts them (Redis, two Chorus nodes, two nginx+Nchan).
#
#   scripts/bench-crosscheck.sh [--runs N] [--duration S] [--only LIST] [--quick]
#
#   --runs N        runs of each (generator, server) pair in the cross-check (default 3)
#   --duration S    measured seconds per cross-check trial (default 10; warm-up 1 s)
#   --only LIST     comma list of: crosscheck (the default), crossnode, curve, loops, redis
#                     crosscheck  1,000 subscribers at 100 msg/s; per run, for each server
#                                 (chorus, nchan publishing over WebSocket, nchan-http
#                                 publishing with POST), chorus-bench then gogen
#                     crossnode   cross-node latency as bench.sh's latency scenario: 100
#                                 subscribers on the second node, 100 msg/s published on the
#                                 first (both generators' broadcast mode, so that they count
#                                 alike); per run, each generator on Chorus then Nchan
#                     curve       p50/p99 by rate 100, 200, 500, 1,000, 2,000 msg/s with 1,000
#                                 subscribers, Chorus and Nchan (ws and http), with gogen
#                                 (CURVE_GENERATOR=chorus-bench, or "gogen chorus-bench")
#                     loops       Chorus only: the nodes with one event loop against two
#                                 (NIO_SINGLETON_GROUP_LOOP_COUNT), alternating, at 100 and
#                                 2,000 msg/s, with chorus-bench
#                     redis       PUBLISH throughput of one Redis (redis-benchmark), with 0, 2
#                                 and 10 subscribing connections
#   --quick         one run, 3 s trials (a smoke test)
#
# Prints medians and ranges per (server, generator) and writes every run to
# bench/results/<stamp>-xcheck-*.json (and -crossnode-, -curve-, -loops-, -redis-), the tables to
# bench/results/<stamp>-crosscheck.md. Everything it starts is stopped on exit, also on
# Ctrl-C or SIGTERM. Environment: SKIP_BUILD=1 and SCRATCH (as bench.sh; default: use
# .build/release when it has both binaries), CURVE_RUNS (default 1), CURVE_DURATION (5),
# CURVE_RATES ("100 200 500 1000 2000"), CURVE_SERVERS ("chorus nchan nchan-http"),
# LOOPS_RUNS (2), KEEP_TMP=1.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
cd "$REPO"

RUNS=3
DURATION=10
ONLY="crosscheck"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --quick) RUNS=1; DURATION=3; CURVE_DURATION=3; LOOPS_RUNS=1; shift ;;
        -h|--help) sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "crosscheck: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
# Set per trial by the crossnode scenario only (an inherited value must not change the others).
CROSS_NODE=0
TRIAL_SUBSCRIBERS=1000
CURVE_RUNS="${CURVE_RUNS:-1}"
CURVE_DURATION="${CURVE_DURATION:-5}"
LOOPS_RUNS="${LOOPS_RUNS:-2}"

log() { printf 'crosscheck: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
wants() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- packages and binaries ---------------------------------------------------------------
"$REPO/scripts/install-deps.sh" redis-server redis-tools nginx libnginx-mod-nchan curl python3 \
    golang golang-github-gorilla-websocket-dev

if [ -z "${SCRATCH:-}" ] && [ -x .build/release/chorus ] && [ -x .build/release/chorus-bench ]; then
    SCRATCH=.build
    SKIP_BUILD=1
fi
SCRATCH="${SCRATCH:-.build-bench}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries in $SCRATCH (nice 19)"
    # shellcheck source=lib/release-build.sh
    source "$REPO/scripts/lib/release-build.sh"
    (
        renice -n 19 -p "$BASHPID" >/dev/null  # the builds only, not the servers
        release_build --scratch-path "$SCRATCH" --product chorus >&2
        release_build --scratch-path "$SCRATCH" --product chorus-bench >&2
    )
fi
CHORUS="$REPO/$SCRATCH/release/chorus"
BENCH="$REPO/$SCRATCH/release/chorus-bench"
[ -x "$CHORUS" ] && [ -x "$BENCH" ] || die "missing $CHORUS or $BENCH"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$REPO/bench/results"
mkdir -p "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chorus-crosscheck.XXXXXX")"

# gogen, built offline in GOPATH mode against /usr/share/gocode (Debian's Go packages).
GOGEN="$WORK/gogen"
log "building gogen"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-$WORK/gocache}" GOFLAGS= \
    nice -n 19 go build -o "$GOGEN" ./bench/gogen || die "go build failed"

# ---- processes, and their cleanup ---------------------------------------------------------
REDIS_PID=""
GEN_PID=""
SUB_PID=""
declare -A NODE_PID=()
declare -A NGINX_PID=()

# shellcheck source=lib/loopback.sh
source "$REPO/scripts/lib/loopback.sh"
# shellcheck source=lib/nchan.sh
source "$REPO/scripts/lib/nchan.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$GEN_PID"
    for k in $SUB_PID; do stop_pid "$k"; done
    for k in "${!NODE_PID[@]}"; do stop_pid "${NODE_PID[$k]}"; done
    for k in "${!NGINX_PID[@]}"; do stop_pid "${NGINX_PID[$k]}"; done
    stop_pid "$REDIS_PID"
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_gen CMD...: a generator in the background, waited for, so that a signal to this script
# runs the trap at once (and the trap stops the generator) instead of after the trial.
run_gen() {
    "$@" &
    GEN_PID=$!
    local rc=0
    wait "$GEN_PID" || rc=$?
    GEN_PID=""
    return "$rc"
}

# cpu_seconds PID: utime + stime of a process, in seconds
cpu_seconds() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }


read -r -a PORTS <<<"$(free_ports 5)"
REDIS_PORT="${PORTS[0]}"
CHORUS_PORT=([1]="${PORTS[1]}" [2]="${PORTS[2]}")
NCHAN_PORT=([1]="${PORTS[3]}" [2]="${PORTS[4]}")
JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
API_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export JWT_SECRET API_KEY

# ---- servers, as scripts/bench.sh starts them ---------------------------------------------
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$WORK/redis" --logfile "$WORK/redis.log" --daemonize no </dev/null &
REDIS_PID=$!
for _ in $(seq 1 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] || die "redis-server did not start"

LOOPS=""  # NIO_SINGLETON_GROUP_LOOP_COUNT for the nodes; empty: NIO's default (the core count)
start_chorus() {  # N
    local i="$1" loops=()
    [ -n "$LOOPS" ] && loops=(NIO_SINGLETON_GROUP_LOOP_COUNT="$LOOPS")
    env HTTP_HOST=127.0.0.1 HTTP_PORT="${CHORUS_PORT[$i]}" NODE_ID="xcheck-$i" \
        PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
        WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 WEBSOCKET_MAX_BYTES_PER_SECOND=1073741824 \
        LOG_LEVEL=warning "${loops[@]}" "$CHORUS" serve </dev/null >>"$WORK/chorus-$i.log" 2>&1 &
    NODE_PID[$i]=$!
    wait_for "http://127.0.0.1:${CHORUS_PORT[$i]}/ready" 30 "${NODE_PID[$i]}" "chorus-$i" "$WORK/chorus-$i.log" || die "chorus-$i did not start"
}

write_nginx_conf() {  # N (bench.sh's configuration: one worker, nostore)
    mkdir -p "$WORK/nginx-$1/tmp"
    nchan_conf "$WORK/nginx-$1" 127.0.0.1 "${NCHAN_PORT[$1]}" "$REDIS_PORT" 1 nostore off >"$WORK/nginx-$1/nginx.conf"
}
start_nchan() {  # N
    local i="$1"
    write_nginx_conf "$i"
    nginx -c "$WORK/nginx-$i/nginx.conf" -e "$WORK/nginx-$i/error.log" </dev/null >>"$WORK/nginx-$i.out" 2>&1 &
    NGINX_PID[$i]=$!
    wait_for "http://127.0.0.1:${NCHAN_PORT[$i]}/health" 20 "${NGINX_PID[$i]}" "nchan-$i" "$WORK/nginx-$i/error.log" || die "nchan-$i did not start"
}

need_chorus=0; need_nchan=0
{ wants crosscheck || wants curve || wants crossnode; } && { need_chorus=1; need_nchan=1; }
wants loops && need_chorus=1
[ "$need_chorus" = 1 ] && { start_chorus 1; start_chorus 2; }
[ "$need_nchan" = 1 ] && { start_nchan 1; start_nchan 2; }
log "redis :$REDIS_PORT  chorus :${CHORUS_PORT[1]} :${CHORUS_PORT[2]}  nchan :${NCHAN_PORT[1]} :${NCHAN_PORT[2]}"

# ---- one trial ---------------------------------------------------------------------------
# server: chorus | nchan (publishing over a WebSocket) | nchan-http (POST /pub/<topic>, 8
# connections, one request in flight each, as bench.sh's NCHAN_PUBLISH=http)
# With CROSS_NODE=1 the subscribers are all on the second instance and the publisher on the first.
server_args() {  # SERVER -> --target, --url x2, publish options, --watch
    local s="$1" i w n
    case "$s" in
        chorus)
            if [ "${CROSS_NODE:-0}" = 1 ]; then
                echo "--target chorus --url 127.0.0.1:${CHORUS_PORT[2]} --publish-url 127.0.0.1:${CHORUS_PORT[1]}"
            else
                echo "--target chorus --url 127.0.0.1:${CHORUS_PORT[1]} --url 127.0.0.1:${CHORUS_PORT[2]}"
            fi
            echo "--watch redis=$REDIS_PID"
            for i in 1 2; do echo "--watch chorus-$i=${NODE_PID[$i]}"; done ;;
        chorus1)  # node 1 alone (the loops comparison)
            echo "--target chorus --url 127.0.0.1:${CHORUS_PORT[1]}"
            echo "--watch redis=$REDIS_PID --watch chorus-1=${NODE_PID[1]}" ;;
        nchan|nchan-http)
            if [ "${CROSS_NODE:-0}" = 1 ]; then
                echo "--target nchan --url 127.0.0.1:${NCHAN_PORT[2]} --publish-url 127.0.0.1:${NCHAN_PORT[1]}"
            else
                echo "--target nchan --url 127.0.0.1:${NCHAN_PORT[1]} --url 127.0.0.1:${NCHAN_PORT[2]}"
            fi
            [ "$s" = nchan-http ] && echo "--publish-via http --publishers 8"
            echo "--watch redis=$REDIS_PID"
            for i in 1 2; do
                n=0
                for w in $(pgrep -P "${NGINX_PID[$i]}"); do n=$((n + 1)); echo "--watch nchan-$i.w$n=$w"; done
            done ;;
    esac
}

# trial KIND GENERATOR SERVER RUN RATE DURATION [EXTRA GENERATOR ARGS...]
trial() {
    local kind="$1" gen="$2" server="$3" run="$4" rate="$5" duration="$6"
    shift 6
    local out="$RESULTS/$STAMP-$kind-$server-$gen-r$rate-$run.json"
    # A topic of its own per trial: Nchan gives a new subscriber the channel's buffered
    # messages (nchan_subscriber_first_message defaults to oldest), so on a shared topic every
    # trial's 1,000 subscribers would first receive the previous trial's messages.
    local topic="xc.$STAMP.$kind-$server-$gen-r$rate-$run"
    local args
    read -r -a args <<<"$(server_args "$server" | tr '\n' ' ')"
    args+=("$@" --topic "$topic")
    log "---- $kind / $server / $gen / $rate msg/s / run $run"
    if [ "$gen" = chorus-bench ]; then
        [ "$server" = nchan-http ] && args+=(--http-pipeline 1)
        run_gen "$BENCH" broadcast "${args[@]}" --subscribers "${TRIAL_SUBSCRIBERS:-1000}" --rate "$rate" --duration "$duration" \
            --warmup 1 --drain 30 --label "$kind-$server" --json "$out" --quiet \
            || log "FAILED (exit $?)"
    else
        run_gen "$GOGEN" "${args[@]}" --subscribers "${TRIAL_SUBSCRIBERS:-1000}" --rate "$rate" --duration "$duration" \
            --warmup 1 --drain 30 --label "$kind-$server" --json "$out" \
            || log "FAILED (exit $?)"
    fi
    sleep 2
}

uptime >&2
if wants crosscheck; then
    for run in $(seq 1 "$RUNS"); do
        for server in chorus nchan nchan-http; do
            for gen in chorus-bench gogen; do
                trial xcheck "$gen" "$server" "$run" 100 "$DURATION"
            done
        done
    done
fi

if wants crossnode; then
    for run in $(seq 1 "$RUNS"); do
        for gen in chorus-bench gogen; do
            for server in chorus nchan; do
                CROSS_NODE=1 TRIAL_SUBSCRIBERS=100 trial crossnode "$gen" "$server" "$run" 100 "$DURATION"
            done
        done
    done
fi

if wants curve; then
    for run in $(seq 1 "$CURVE_RUNS"); do
        for rate in ${CURVE_RATES:-100 200 500 1000 2000}; do
            for server in ${CURVE_SERVERS:-chorus nchan nchan-http}; do
                for gen in ${CURVE_GENERATOR:-gogen}; do
                    trial curve "$gen" "$server" "$run" "$rate" "$CURVE_DURATION"
                done
            done
        done
    done
fi

if wants loops; then
    # Node 1 alone (all 1,000 subscribers and the publisher on it), restarted with one event
    # loop, then two; at 4,000 msg/s offered (4 M deliveries/s: past what this machine
    # carries, so deliveries/s is the sustained rate) and at 100 msg/s. chorus-bench with two
    # subscriber event loops, so that the generator is not held to one core.
    for run in $(seq 1 "$LOOPS_RUNS"); do
        for loops in 1 2; do
            LOOPS="$loops"
            stop_pid "${NODE_PID[1]}"
            start_chorus 1
            sleep 1
            for rate in 4000 100; do
                trial "loops$loops" chorus-bench chorus1 "$run" "$rate" 5 --threads 2
            done
        done
    done
fi

if wants redis; then
    # One Redis, PUBLISH of a 200-byte message (about a Chorus envelope) from 4 connections,
    # one request in flight each and 16 pipelined, with 0, 2 and 10 subscribing connections
    # (a topic held on 2 nodes, on 10): each subscriber a socket that discards what it reads
    # (Python, 1 MiB reads), so that Redis is not held back by a slow reader.
    msg="$(python3 -c 'print("x" * 200)')"
    for subs in 0 2 10; do
        pids=()
        for _ in $(seq 1 "$subs"); do
            python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"SUBSCRIBE bench.redis\r\n")
while s.recv(1 << 20):
    pass
' "$REDIS_PORT" &
            pids+=($!)
        done
        SUB_PID="${pids[*]:-}"
        for _ in $(seq 1 100); do
            [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" pubsub numsub bench.redis | tail -1)" = "$subs" ] && break
            sleep 0.1
        done
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" pubsub numsub bench.redis | tail -1)" = "$subs" ] \
            || log "expected $subs subscribers on bench.redis"
        for pipeline in 1 16; do
            log "---- redis-benchmark PUBLISH, $subs subscribers, pipeline $pipeline"
            before="$(cpu_seconds "$REDIS_PID")"
            run_gen redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n 500000 -c 4 -P "$pipeline" -q --csv \
                publish bench.redis "$msg" >"$RESULTS/$STAMP-redis-publish-subs$subs-P$pipeline.csv"
            after="$(cpu_seconds "$REDIS_PID")"
            # Redis's own CPU per PUBLISH, in µs (its utime+stime over the 500,000 requests)
            python3 -c "import sys; print('redis_cpu_us_per_publish,%.3f' % ((float(sys.argv[2]) - float(sys.argv[1])) / 500000 * 1e6))" \
                "$before" "$after" >>"$RESULTS/$STAMP-redis-publish-subs$subs-P$pipeline.csv"
            cat "$RESULTS/$STAMP-redis-publish-subs$subs-P$pipeline.csv" >&2
        done
        for pid in "${pids[@]}"; do stop_pid "$pid"; done
        SUB_PID=""
    done
fi
uptime >&2

python3 "$REPO/bench/crosscheck.py" "$RESULTS" "$STAMP" | tee "$RESULTS/$STAMP-crosscheck.md"
log "results: $RESULTS/$STAMP-*, tables: $RESULTS/$STAMP-crosscheck.md"
