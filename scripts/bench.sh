#!/usr/bin/env bash
# Chorus vs Nchan on this machine, loopback only, with the project's own generator.
#
#   scripts/bench.sh [--quick] [--runs N] [--only LIST] [--targets LIST]
#
#   --quick        one run of each scenario, shorter trials (a smoke test, ~2 minutes)
#   --runs N       runs per scenario and target (default 3); tables show medians
#   --only LIST    comma list of scenarios: broadcast,saturation,load100,latency,connections
#                  (the default), and on request rooms, patterns and growth (Chorus only: cost
#                  per delivery as subscribers, topics and patterns grow), slow (10 of 1,000
#                  subscribers never read, against the same load without them)
#   --targets LIST chorus,nchan (default: both); floor adds bench/floor/floor.c, a minimal C
#                  server with Nchan's interface (one epoll thread, Redis, one write per
#                  subscriber): what the machine itself costs, measured beside both; floor-nio
#                  the same job on SwiftNIO with Chorus's write path (bench/floor-nio)
#   --netns        the generator in its own network namespace behind a veth pair, the servers
#                  (Redis included) in a second one, receive processing steered by RPS to the
#                  receiving side's CPU and processes pinned: servers on CPU 0, the
#                  generator on CPU 1 (SERVER_CPU, GEN_CPU). A server's CPU figures then leave out its receivers'
#                  kernel work, which loopback charges to the sender (root; docs/benchmarks.md,
#                  "The veth mode"). Namespaces and links are removed on exit, even when killed.
#   --pin          pin processes as --netns does but stay on loopback (separates the two effects)
#
# Starts Redis, two Chorus nodes (release build, PUBSUB_ADAPTER=redis) and two nginx+Nchan
# instances on the same Redis, runs the same scenarios against both with chorus-bench, prints
# a side-by-side table and writes bench/results/<stamp>-*.json and <stamp>-summary.md.
# Everything it starts is stopped on exit. Environment:
#   SCRATCH=.build-bench   SwiftPM scratch folder for the release builds
#   BUILD_NICE=19          niceness of the builds (the benchmark itself runs at normal priority)
#   BENCH_NICE=            set (e.g. 19) to run servers and generator niced too (development)
#   NCHAN_WORKERS=1        nginx worker_processes per Nchan instance
#   CHORUS_LOOPS=          event loops per Chorus node (NIO_SINGLETON_GROUP_LOOP_COUNT, for the
#                          nodes only; default: one per core), e.g. 1 to match NCHAN_WORKERS=1
#   NCHAN_REDIS_MODE=nostore  nchan_redis_storage_mode (nostore: pure pub/sub, like Chorus with
#                          HISTORY_SIZE=0; distributed: messages kept in Redis, like its history)
#   NCHAN_PUBLISH=ws       ws: frames on a /pub/<topic> WebSocket; http: POST /pub/<topic>
#   CONNECTIONS=10000      connections held by the connections scenario
#   SLOW_DURATION=100      seconds of publishing in the slow scenario
#   DURATION=5             seconds measured per trial in the other scenarios (3 with --quick);
#                          a latency trial's p99 rests on its slowest 1 % of messages, so longer
#                          trials (30) settle it where 5-s trials scatter
#   SKIP_BUILD=1           use the binaries already in $SCRATCH/release
#   KEEP_TMP=1             keep the temp dir (logs, configs)
#   COMPRESSION=on         permessage-deflate: Chorus with WEBSOCKET_COMPRESSION=on, Nchan with
#                          nchan_deflate_message_for_websocket on, subscribers offering it (--deflate)
#   PAYLOAD_BYTES=N        pad each message with N bytes of chat-like prose (--chat-padding), e.g.
#                          450 for a chat message of about 600 bytes of JSON
#   FLOOR_NODELAY=1        0: the floor server leaves Nagle's algorithm on, as nginx does
#   FLOOR_HANDOFF=         inbox: the NIO floor reads Redis on a second loop and hands messages
#                          over through one inbox, as Chorus does (naive: a task per read)
#   SERVER_CPU=0 GEN_CPU=1 CPUs for --netns and --pin (servers and Redis; generator)
#   NETNS_NET=10.213.77    the /30 of the veth pair in --netns: servers .1, generator .2

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
cd "$REPO"

RUNS=3
QUICK=0
ONLY="broadcast,saturation,load100,latency,connections"
TARGETS="chorus,nchan"
NETNS=0
PIN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; RUNS=1; shift ;;
        --runs) RUNS="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --targets) TARGETS="$2"; shift 2 ;;
        --netns) NETNS=1; PIN=1; shift ;;
        --pin) PIN=1; shift ;;
        -h|--help) sed -n '2,45p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
wants() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
target_on() { case ",$TARGETS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# ---- descriptors, packages, builds ---------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open files limit: $(ulimit -n)"

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; } \
        || die "apt-get install ${missing[*]} failed"
fi

SCRATCH="${SCRATCH:-.build-bench}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries in $SCRATCH (nice ${BUILD_NICE:-19})"
    # The generator and the NIO floor are built as the node is, so that all three pay the same
    # for SwiftNIO.
    # shellcheck source=lib/release-build.sh
    source "$REPO/scripts/lib/release-build.sh"
    (
        renice -n "${BUILD_NICE:-19}" -p "$BASHPID" >/dev/null  # the builds only, not the servers
        release_build --scratch-path "$SCRATCH" --product chorus >&2
        release_build --scratch-path "$SCRATCH" --product chorus-bench >&2
        if target_on floor-nio; then
            release_build --scratch-path "$SCRATCH" --product chorus-floor-nio >&2
        fi
    )
fi
CHORUS="$REPO/$SCRATCH/release/chorus"
BENCH="$REPO/$SCRATCH/release/chorus-bench"
[ -x "$CHORUS" ] && [ -x "$BENCH" ] || die "missing $CHORUS or $BENCH"
# With SKIP_BUILD=1 the binaries may predate the sources: say so, since every figure is theirs.
newer="$(find "$REPO/Sources" "$REPO/bench/floor-nio" -name '*.swift' -newer "$CHORUS" -print -quit 2>/dev/null || true)"
[ -z "$newer" ] || log "WARNING: $CHORUS is older than the sources (e.g. ${newer#"$REPO"/}); results are of that older build"

RUN=()
[ -n "${BENCH_NICE:-}" ] && RUN=(nice -n "$BENCH_NICE")

# Where things run. SRV launches a server (Chorus, nginx, Redis), GEN the generator, IN_SRV a
# client command that must reach the servers (curl, redis-cli). Loopback: all on 127.0.0.1.
# --netns: two namespaces made here (cbench-srv-PID, cbench-gen-PID), joined by a veth pair
# created inside them (nothing is added to this machine's own namespace). Chorus and nginx
# listen on the servers' veth address; Redis, which only the servers reach, on the servers'
# namespace's own 127.0.0.1 (a server's traffic to its own veth address would take that
# namespace's loopback anyway, and Redis keeps its protected mode).
SERVER_CPU="${SERVER_CPU:-0}"
GEN_CPU="${GEN_CPU:-1}"
NETNS_NET="${NETNS_NET:-10.213.77}"
NS_SRV="cbench-srv-$$"
NS_GEN="cbench-gen-$$"
HOST=127.0.0.1
SRV=("${RUN[@]}")
GEN=("${RUN[@]}")
IN_SRV=()
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null 2>&1 || die "--pin/--netns need taskset (util-linux)"
    SRV=("${RUN[@]}" taskset -c "$SERVER_CPU")
    GEN=("${RUN[@]}" taskset -c "$GEN_CPU")
fi
if [ "$NETNS" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "--netns needs root (ip netns, veth, rps_cpus)"
    ip netns list >/dev/null 2>&1 || die "--netns: 'ip netns' does not work here"
    HOST="$NETNS_NET.1"
    SRV+=(ip netns exec "$NS_SRV")
    GEN+=(ip netns exec "$NS_GEN")
    IN_SRV=(ip netns exec "$NS_SRV")
fi

# cpu_mask N: the rps_cpus mask (hex) of CPU N.
cpu_mask() { printf '%x' $(( 1 << $1 )); }

# kill_netns_pids NS: stops what still runs inside namespace NS (only processes this script
# started can be there), then removes NS; the veth pair goes with it.
kill_netns_pids() {
    local ns="$1" pids p
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    if [ -n "${pids// /}" ]; then
        log "stopping what still runs in $ns: $pids"
        for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
        for _ in $(seq 1 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    ip netns del "$ns" 2>/dev/null || true
}

# Namespaces left by a run that was killed with SIGKILL (no trap ran): any cbench-*-PID whose
# PID is not a live bench.sh; what still runs in them (servers of that run) is stopped. A live
# one is another --netns run: refuse (same addresses).
remove_stale_netns() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cbench-(srv|gen)-[0-9]+$' || true); do
        pid="${ns##*-}"
        if [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'bench\.sh'; then
            die "--netns: namespace $ns belongs to a running bench.sh (pid $pid)"
        fi
        log "removing stale namespace $ns"
        kill_netns_pids "$ns"
    done
}

setup_netns() {
    remove_stale_netns
    ip netns add "$NS_SRV"
    ip netns add "$NS_GEN"
    # Both ends are created inside the namespaces: deleting either namespace removes the pair.
    ip -n "$NS_SRV" link add veth-srv type veth peer name veth-gen netns "$NS_GEN"
    ip -n "$NS_SRV" addr add "$NETNS_NET.1/30" dev veth-srv
    ip -n "$NS_GEN" addr add "$NETNS_NET.2/30" dev veth-gen
    ip -n "$NS_SRV" link set lo up
    ip -n "$NS_GEN" link set lo up
    ip -n "$NS_SRV" link set veth-srv up
    ip -n "$NS_GEN" link set veth-gen up
    # RPS: a packet sent over veth is received through the receiving CPU's backlog, on the
    # CPU named here, instead of in the sender's system call (as on loopback). Each side
    # receives on its own CPU: the generator pays for its sockets, the servers for theirs.
    ip netns exec "$NS_GEN" sh -c "echo $(cpu_mask "$GEN_CPU") >/sys/class/net/veth-gen/queues/rx-0/rps_cpus"
    ip netns exec "$NS_SRV" sh -c "echo $(cpu_mask "$SERVER_CPU") >/sys/class/net/veth-srv/queues/rx-0/rps_cpus"
    log "netns: servers in $NS_SRV ($HOST, veth-srv, rps_cpus $(ip netns exec "$NS_SRV" cat /sys/class/net/veth-srv/queues/rx-0/rps_cpus), CPU $SERVER_CPU)"
    log "netns: generator in $NS_GEN ($NETNS_NET.2, veth-gen, rps_cpus $(ip netns exec "$NS_GEN" cat /sys/class/net/veth-gen/queues/rx-0/rps_cpus), CPU $GEN_CPU)"
    # Reachability without ping (not installed everywhere): a closed port answers with a reset.
    ip netns exec "$NS_GEN" python3 - "$HOST" <<'PY' || die "--netns: $HOST does not answer from $NS_GEN"
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=3).close()
except ConnectionRefusedError:
    pass
PY
}

teardown_netns() {
    kill_netns_pids "$NS_GEN"
    kill_netns_pids "$NS_SRV"
}

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$REPO/bench/results"
mkdir -p "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chorus-bench.XXXXXX")"
REDIS_PID=""
declare -A NODE_PID=()
declare -A NGINX_PID=()
declare -A FLOOR_PID=()  # by instance: floor-1, floor-2, floor-nio-1, floor-nio-2

# shellcheck source=lib/loopback.sh
source "$REPO/scripts/lib/loopback.sh"
# shellcheck source=lib/nchan.sh
source "$REPO/scripts/lib/nchan.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    for k in "${!NODE_PID[@]}"; do stop_pid "${NODE_PID[$k]}"; done
    for k in "${!NGINX_PID[@]}"; do stop_pid "${NGINX_PID[$k]}"; done
    for k in "${!FLOOR_PID[@]}"; do stop_pid "${FLOOR_PID[$k]}"; done
    stop_pid "$REDIS_PID"
    [ "$NETNS" = 1 ] && teardown_netns
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports, http_status, wait_for
if [ "$NETNS" = 1 ]; then
    setup_netns
    # The readiness checks reach the servers from inside their namespace.
    http_status() {
        ip netns exec "$NS_SRV" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
    }
fi
{
    echo "mode: $([ "$NETNS" = 1 ] && echo "netns (veth, RPS)" || echo loopback), pinned: $([ "$PIN" = 1 ] && echo "servers CPU $SERVER_CPU, generator CPU $GEN_CPU" || echo no)"
    echo "host: $HOST  chorus: $CHORUS  HISTORY_SIZE=${HISTORY_SIZE:-default}  DURATION=${DURATION:-default}  CHORUS_LOOPS=${CHORUS_LOOPS:-default}"
    case ",$TARGETS," in *,floor,*|*,floor-nio,*) echo "floor: FLOOR_NODELAY=${FLOOR_NODELAY:-1} FLOOR_HANDOFF=${FLOOR_HANDOFF:-}" ;; esac
} >"$RESULTS/$STAMP-mode.txt"

read -r -a PORTS <<<"$(free_ports 9)"
REDIS_PORT="${PORTS[0]}"
CHORUS_PORT=([1]="${PORTS[1]}" [2]="${PORTS[2]}")
NCHAN_PORT=([1]="${PORTS[3]}" [2]="${PORTS[4]}")
declare -A FLOOR_PORT=([floor-1]="${PORTS[5]}" [floor-2]="${PORTS[6]}" [floor-nio-1]="${PORTS[7]}" [floor-nio-2]="${PORTS[8]}")
JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
API_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export JWT_SECRET API_KEY

# ---- Redis ------------------------------------------------------------------------------
mkdir -p "$WORK/redis"
"${SRV[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$WORK/redis" --logfile "$WORK/redis.log" --daemonize no </dev/null &
REDIS_PID=$!
for _ in $(seq 1 100); do
    [ "$("${IN_SRV[@]}" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
[ "$("${IN_SRV[@]}" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] || die "redis-server did not start"

# ---- Chorus nodes --------------------------------------------------------------------------
start_chorus() {  # N
    local i="$1"
    env HTTP_HOST="$HOST" HTTP_PORT="${CHORUS_PORT[$i]}" NODE_ID="bench-$i" \
        PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
        WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 WEBSOCKET_MAX_BYTES_PER_SECOND=1073741824 \
        LOG_LEVEL=warning WEBSOCKET_COMPRESSION="${COMPRESSION:-off}" \
        ${CHORUS_LOOPS:+NIO_SINGLETON_GROUP_LOOP_COUNT="$CHORUS_LOOPS"} \
        "${SRV[@]}" "$CHORUS" serve </dev/null >>"$WORK/chorus-$i.log" 2>&1 &
    NODE_PID[$i]=$!
    wait_for "http://$HOST:${CHORUS_PORT[$i]}/ready" 30 "${NODE_PID[$i]}" "chorus-$i" "$WORK/chorus-$i.log" || die "chorus-$i did not start"
}
restart_chorus() { stop_pid "${NODE_PID[$1]:-}"; start_chorus "$1"; }

# ---- Nchan instances -----------------------------------------------------------------------
NCHAN_WORKERS="${NCHAN_WORKERS:-1}"
[ "${COMPRESSION:-off}" = on ] && NCHAN_DEFLATE=on
write_nginx_conf() {  # N
    mkdir -p "$WORK/nginx-$1/tmp"
    nchan_conf "$WORK/nginx-$1" "$HOST" "${NCHAN_PORT[$1]}" "$REDIS_PORT" "$NCHAN_WORKERS" "${NCHAN_REDIS_MODE:-nostore}" \
        "${NCHAN_DEFLATE:-off}" >"$WORK/nginx-$1/nginx.conf"
}
start_nchan() {  # N
    local i="$1"
    write_nginx_conf "$i"
    "${IN_SRV[@]}" nginx -t -q -c "$WORK/nginx-$i/nginx.conf" -e "$WORK/nginx-$i/error.log" 2>&1 >&2 | grep -v "could not open error log" >&2 || true
    "${SRV[@]}" nginx -c "$WORK/nginx-$i/nginx.conf" -e "$WORK/nginx-$i/error.log" </dev/null >>"$WORK/nginx-$i.out" 2>&1 &
    NGINX_PID[$i]=$!
    wait_for "http://$HOST:${NCHAN_PORT[$i]}/health" 20 "${NGINX_PID[$i]}" "nchan-$i" "$WORK/nginx-$i/error.log" || die "nchan-$i did not start"
}
restart_nchan() { stop_pid "${NGINX_PID[$1]:-}"; start_nchan "$1"; }
nchan_workers() { pgrep -P "${NGINX_PID[$1]}" | tr '\n' ' '; }

# ---- the floors: minimal servers with Nchan's interface (bench/floor in C, bench/floor-nio) -------
start_floor() {  # KIND N (KIND: floor or floor-nio)
    local name="$1-$2" binary="$WORK/floor"
    [ "$1" = floor-nio ] && binary="$REPO/$SCRATCH/release/chorus-floor-nio"
    env FLOOR_NODELAY="${FLOOR_NODELAY:-1}" FLOOR_HANDOFF="${FLOOR_HANDOFF:-}" "${SRV[@]}" "$binary" "$HOST" "${FLOOR_PORT[$name]}" "$REDIS_PORT" \
        </dev/null >>"$WORK/$name.log" 2>&1 &
    FLOOR_PID[$name]=$!
    wait_for "http://$HOST:${FLOOR_PORT[$name]}/health" 20 "${FLOOR_PID[$name]}" "$name" "$WORK/$name.log" || die "$name did not start"
}
if target_on floor; then
    cc -O2 -Wall -o "$WORK/floor" "$REPO/bench/floor/floor.c" || die "cc bench/floor/floor.c failed"
fi

target_on chorus && { start_chorus 1; start_chorus 2; }
target_on nchan && { start_nchan 1; start_nchan 2; }
for kind in floor floor-nio; do
    if target_on "$kind"; then start_floor "$kind" 1; start_floor "$kind" 2; fi
done
log "host $HOST  redis :$REDIS_PORT  chorus :${CHORUS_PORT[1]} :${CHORUS_PORT[2]}  nchan :${NCHAN_PORT[1]} :${NCHAN_PORT[2]} (workers $NCHAN_WORKERS, redis mode ${NCHAN_REDIS_MODE:-nostore})  floor :${FLOOR_PORT[floor-1]} :${FLOOR_PORT[floor-2]}  floor-nio :${FLOOR_PORT[floor-nio-1]} :${FLOOR_PORT[floor-nio-2]}"

watch_args() {  # TARGET
    local args=(--watch "redis=$REDIS_PID") i w n
    if [ "$1" = chorus ]; then
        for i in 1 2; do args+=(--watch "chorus-$i=${NODE_PID[$i]}"); done
    elif [ "$1" = floor ] || [ "$1" = floor-nio ]; then
        for i in 1 2; do args+=(--watch "$1-$i=${FLOOR_PID[$1-$i]}"); done
    else
        for i in 1 2; do
            n=0
            for w in $(nchan_workers "$i"); do n=$((n + 1)); args+=(--watch "nchan-$i.w$n=$w"); done
        done
    fi
    echo "${args[@]}"
}
urls() {  # TARGET
    if [ "$1" = chorus ]; then echo "--url $HOST:${CHORUS_PORT[1]} --url $HOST:${CHORUS_PORT[2]}"
    elif [ "$1" = floor ] || [ "$1" = floor-nio ]; then echo "--url $HOST:${FLOOR_PORT[$1-1]} --url $HOST:${FLOOR_PORT[$1-2]}"
    else echo "--url $HOST:${NCHAN_PORT[1]} --url $HOST:${NCHAN_PORT[2]}"; fi
}

if [ "$QUICK" = 1 ]; then DURATION="${DURATION:-3}"; else DURATION="${DURATION:-5}"; fi
WARMUP=1

# A topic of its own per trial: Nchan gives a new subscriber the messages its channel still
# buffers (nchan_subscriber_first_message defaults to oldest), so on a topic shared by trials
# the next trial's subscribers would first receive the previous trial's messages.
trial_topic() {  # NAME RUN
    echo "bench.$STAMP.$1.$2"
}

bench() {  # NAME TARGET RUN ARGS...
    local name="$1" target="$2" run="$3"; shift 3
    local out="$RESULTS/$STAMP-$name-$target-$run.json"
    log "---- $name / $target / run $run"
    local publish=()
    [ "${COMPRESSION:-off}" = on ] && publish+=(--deflate)
    [ -n "${PAYLOAD_BYTES:-}" ] && publish+=(--payload-bytes "$PAYLOAD_BYTES" --chat-padding)
    if [ "$target" = nchan ] && [ "${NCHAN_PUBLISH:-ws}" = http ]; then
        publish+=(--publish-via http --publishers 8 --http-pipeline 1)
    fi
    # The floors speak Nchan's interface; their results are filed under their own names.
    local speaks="$target"
    case "$target" in floor|floor-nio) speaks=nchan ;; esac
    # shellcheck disable=SC2046
    "${GEN[@]}" "$BENCH" "$@" --target "$speaks" --label "$name" --json "$out" $(watch_args "$target") "${publish[@]}" \
        || log "$name / $target / run $run FAILED (exit $?)"
    if [ "$speaks" != "$target" ] && [ -f "$out" ]; then
        python3 -c 'import json,sys; p=sys.argv[1]; r=json.load(open(p)); r["target"]=sys.argv[2]; json.dump(r,open(p,"w"),indent=2)' "$out" "$target" \
            || log "$name / $target / run $run: could not file $out under $target"
    fi
    sleep 1
}

for run in $(seq 1 "$RUNS"); do
    for target in chorus nchan floor floor-nio; do
        target_on "$target" || continue
        # shellcheck disable=SC2046
        if wants broadcast; then
            bench broadcast-2000 "$target" "$run" broadcast $(urls "$target") --topic "$(trial_topic broadcast-2000 "$run")" \
                --subscribers 1000 --rate 2000 --duration "$DURATION" --warmup "$WARMUP" --drain 30
        fi
        if wants load100; then
            bench broadcast-100 "$target" "$run" broadcast $(urls "$target") --topic "$(trial_topic broadcast-100 "$run")" \
                --subscribers 1000 --rate 100 --duration "$DURATION" --warmup "$WARMUP"
        fi
        if wants latency; then
            bench latency "$target" "$run" latency $(urls "$target") --topic "$(trial_topic latency "$run")" \
                --subscribers 100 --rate 100 --duration "$DURATION" --warmup "$WARMUP"
        fi
        if wants rooms; then
            bench rooms "$target" "$run" rooms $(urls "$target") \
                --subscribers 1000 --topics 100 --rate 1000 --duration "$DURATION" --warmup "$WARMUP"
        fi
        if wants patterns && [ "$target" = chorus ]; then
            bench patterns "$target" "$run" patterns $(urls "$target") --subscribers 1000 --topics 100 \
                --pattern-subscribers 100 --extra-patterns 1000 --rate 1000 --duration "$DURATION" --warmup "$WARMUP"
        fi
    done
done

# Growth (Chorus only): server CPU per delivery at about 100,000 deliveries/s while one
# dimension grows. Subscribers on one topic (rate scaled to keep deliveries/s); idle exact
# topics beside the published one (1,000 subscribers, the fan-out unchanged); patterns that
# match nothing beside 100 wildcard subscribers.
if wants growth && target_on chorus; then
    for run in $(seq 1 "$RUNS"); do
        # shellcheck disable=SC2046
        {
            bench growth-subs-100 chorus "$run" broadcast $(urls chorus) --subscribers 100 --rate 1000 \
                --duration "$DURATION" --warmup "$WARMUP"
            bench growth-subs-1000 chorus "$run" broadcast $(urls chorus) --subscribers 1000 --rate 100 \
                --duration "$DURATION" --warmup "$WARMUP"
            bench growth-subs-10000 chorus "$run" broadcast $(urls chorus) --subscribers 10000 --rate 10 \
                --duration "$DURATION" --warmup "$WARMUP" --connect-timeout 60
            for extra in 0 99 9999; do
                bench "growth-topics-$((extra + 1))" chorus "$run" rooms $(urls chorus) --subscribers 1000 \
                    --topics 1 --extra-topics "$extra" --rate 100 --duration "$DURATION" --warmup "$WARMUP"
            done
            for extra in 0 100 1000; do
                bench "growth-patterns-$extra" chorus "$run" patterns $(urls chorus) --subscribers 1000 --topics 10 \
                    --pattern-subscribers 100 --extra-patterns "$extra" --rate 500 --duration "$DURATION" --warmup "$WARMUP"
            done
        }
    done
fi

# Slow consumers: 1,000 subscribers at 100 msg/s with 1 KiB of padding per message, with and
# without 10 of them that stop reading once subscribed (and have a 4 KiB receive buffer, so
# they back up within seconds). At 100 msg/s x ~1.1 KiB = 110 KB/s, Linux's send-buffer
# autotuning (tcp_wmem, up to 4 MiB here) takes a slow one's first megabytes before NIO's queue
# starts to fill, so it passes Chorus's 1 MiB pending-bytes limit after roughly 50-80 s; the
# trial runs 100 s.
if wants slow; then
    for run in $(seq 1 "$RUNS"); do
        for target in chorus nchan; do
            target_on "$target" || continue
            for slow in 0 10; do
                # shellcheck disable=SC2046
                bench "slow-$slow" "$target" "$run" broadcast $(urls "$target") --subscribers 1000 --rate 100 \
                    --payload-bytes 1024 --slow-consumers "$slow" --duration "${SLOW_DURATION:-100}" --warmup "$WARMUP" --drain 20
            done
        done
    done
fi

if wants saturation; then
    for target in chorus nchan floor floor-nio; do
        target_on "$target" || continue
        # shellcheck disable=SC2046
        bench saturation "$target" 1 broadcast $(urls "$target") --subscribers 1000 --find-max \
            --rate 250 --p99-bound-ms 50 --max-rate 16000 --search-steps 3 --duration 3 --warmup 1 --drain 8
    done
fi

if wants connections; then
    for run in $(seq 1 "$RUNS"); do
        for target in chorus nchan; do
            target_on "$target" || continue
            # A fresh process for each measurement: restart instance 1 and load only it.
            if [ "$target" = chorus ]; then
                restart_chorus 1
                watch=(--watch "chorus-1=${NODE_PID[1]}")
                url=(--url "$HOST:${CHORUS_PORT[1]}")
            else
                restart_nchan 1
                watch=()
                n=0
                for w in $(nchan_workers 1); do n=$((n + 1)); watch+=(--watch "nchan-1.w$n=$w"); done
                url=(--url "$HOST:${NCHAN_PORT[1]}")
            fi
            sleep 1
            log "---- connections / $target / run $run"
            "${GEN[@]}" "$BENCH" connections --target "$target" "${url[@]}" "${watch[@]}" \
                --connections "${CONNECTIONS:-10000}" --topics 100 --hold 3 --label connections \
                --json "$RESULTS/$STAMP-connections-$target-$run.json" \
                || log "connections / $target / run $run FAILED"
            sleep 1
        done
    done
fi

python3 "$REPO/bench/compare.py" "$RESULTS" "$STAMP" | tee "$RESULTS/$STAMP-summary.md"
log "results: $RESULTS/$STAMP-*.json, table: $RESULTS/$STAMP-summary.md"
