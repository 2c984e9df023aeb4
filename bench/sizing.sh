#!/usr/bin/env bash
# bench/sizing.sh [N] - Redis memory per parked event, per edge, per index entry and per output
# stream entry, measured on a real redis-server (docs/redis-production.md, "Sizing"). For each
# Redis setting (configs/redis.conf's listpack sizes, then Redis's defaults), against a fresh
# private redis-server (unix socket) and digestmapd (one shard):
#   A. N pushes, each of a new digest (tests/fixtures/acr/push.json with its own digest, event
#      id, request id and tag): parked pushes;
#   B. N builds of new digests (a GitHub build event, its own run id and commit): parked builds;
#   C. N pairs: the push and the build of one digest (one edge each).
# Per item = the growth of INFO used_memory over the phase / N (everything: keys, expiry
# entries, the main dictionary, the schedule); an edge = C - A - B. MEMORY USAGE (SAMPLES 0) of
# each key kind gives the breakdown; edge_kept is an edge without its output stream entry (what
# stays for mapping_ttl_seconds: the stream is cut to outputs.stream_maxlen). Env: DIGESTMAPD (default build/bin/digestmapd).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
n=${1:-2000}
daemon=${DIGESTMAPD:-$top/build/bin/digestmapd}
[ -x "$daemon" ] || { echo "sizing: $daemon missing: build first (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/dm-sizing.XXXXXX)
redis_pid=""; dm_pid=""
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
trap 'stop "$dm_pid"; stop "$redis_pid"; rm -rf "$tmp"' EXIT
rcli() { redis-cli -s "$tmp/redis.sock" "$@"; }
used() { rcli info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }
mem() { rcli memory usage "$1" samples 0; }
# avg PATTERN: average MEMORY USAGE of the keys matching PATTERN
avg() {
    rcli --raw eval "local s, ks = 0, redis.call('KEYS', ARGV[1])
        for _, k in ipairs(ks) do s = s + redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0') end
        if #ks == 0 then return 0 end
        return math.floor(s / #ks + 0.5)" 0 "$1"
}

# post MODE: N events (push | build | pair) to the daemon, 4 connections kept alive
post() {
    python3 - "$1" "$n" "$port" "$top/tests/fixtures/acr/push.json" <<'PY'
import http.client, json, os, sys, threading, time, uuid
mode, n, port, fixture = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
push = json.load(open(fixture))
when = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime())
def push_body(i, d):
    p = json.loads(json.dumps(push))
    p["id"], p["request"]["id"], p["timestamp"] = str(uuid.uuid4()), str(uuid.uuid4()), when
    p["target"]["digest"], p["target"]["tag"] = d, "1.4.%d" % i
    return json.dumps(p)
def build_body(i, d):
    return json.dumps({"images": [{"name": "contoso.azurecr.io/team/api", "digest": d,
                                   "tags": ["1.4.%d" % i]}],
        "built_at": when[:23] + "Z",
        "run": {"provider": "github", "repository": "acme/api", "run_id": str(12094877312 + i),
                "run_attempt": "1", "commit": os.urandom(20).hex(), "ref": "refs/heads/main",
                "workflow": "release", "actor": "mona"}})
errors = []
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(k, n, 4):
        d = "sha256:" + os.urandom(32).hex()
        reqs = []
        if mode in ("push", "pair"):
            reqs.append(("/v1/registry/acr", "Bearer acr-token", push_body(i, d)))
        if mode in ("build", "pair"):
            reqs.append(("/v1/builds", "Bearer ci-token", build_body(i, d)))
        for path, auth, body in reqs:
            c.request("POST", path, body, {"Authorization": auth, "Content-Type": "application/json"})
            r = c.getresponse(); text = r.read()
            if r.status != 202 or b"spooled" in text:
                errors.append((r.status, text))
ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
if errors:
    sys.exit("sizing: %d requests not accepted, e.g. %r" % (len(errors), errors[0]))
PY
}

measure() { # NAME [redis-server args]: prints "NAME key value" lines
    local name=$1; shift
    rm -f "$tmp/redis.sock"
    redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
        --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" "$@" & redis_pid=$!
    for _ in $(seq 100); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
    cat > "$tmp/config.json" <<JSON
{ "listen": "127.0.0.1:0", "workers": 2, "log_level": "info", "data_dir": "$tmp/var",
  "redis": {"url": "unix://$tmp/redis.sock"},
  "sources": [
    {"type": "acr", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer acr-token"}]},
    {"type": "build", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer ci-token"}]}] }
JSON
    : > "$tmp/daemon.log"
    "$daemon" --config "$tmp/config.json" 2>>"$tmp/daemon.log" & dm_pid=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/.*msg="listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/daemon.log" | tail -n 1)
        [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$tmp/daemon.log" >&2; echo "sizing: digestmapd did not start" >&2; exit 1; }
    local u0 u1 a b c
    for mode in push build pair; do
        rcli flushall >/dev/null
        u0=$(used)
        post "$mode"
        u1=$(used)
        case $mode in
            push) a=$(((u1 - u0) / n))
                  echo "$name parked_push $a"
                  echo "$name parked_push_hash $(avg 'dm:{0}:r:*')"
                  echo "$name parked_push_due $(($(mem 'dm:{0}:due') / n))" ;;
            build) b=$(((u1 - u0) / n))
                   echo "$name parked_build $b"
                   echo "$name parked_build_hash $(avg 'dm:{0}:b:*')"
                   echo "$name parked_build_due $(($(mem 'dm:{0}:due') / n))" ;;
            pair) c=$(((u1 - u0) / n))
                  echo "$name pair $c"
                  echo "$name edge $((c - a - b))"
                  echo "$name edge_kept $((c - a - b - $(mem 'dm:{0}:out') / n))"
                  echo "$name edge_mapping_hash $(avg 'dm:{0}:m:*')"
                  echo "$name edge_mi $(avg 'dm:{0}:mi:*')"
                  echo "$name index_run_key $(avg 'dm:{0}:ix:run:*')"
                  echo "$name index_repo_entry $(($(mem 'dm:{0}:ix:repo:acme/api') / n))"
                  echo "$name index_img_entry $(($(mem 'dm:{0}:ix:img:contoso.azurecr.io/team/api') / n))"
                  echo "$name stream_entry $(($(mem 'dm:{0}:out') / $(rcli xlen 'dm:{0}:out')))"
                  echo "$name stream_len $(rcli xlen 'dm:{0}:out')" ;;
        esac
    done
    stop "$dm_pid"; dm_pid=""
    stop "$redis_pid"; redis_pid=""
}

echo "sizing: $n events per phase, $(redis-server --version | cut -d' ' -f3), $(date -u +%FT%TZ)" >&2
{
    measure tuned --hash-max-listpack-value 256 --zset-max-listpack-value 128
    measure defaults
} | tee "$tmp/out" >&2
printf '\n%-22s %10s %10s\n' "bytes per" "tuned" "defaults"
for k in parked_push parked_push_hash parked_push_due parked_build parked_build_hash parked_build_due \
         pair edge edge_kept edge_mapping_hash edge_mi index_run_key index_repo_entry index_img_entry stream_entry; do
    printf '%-22s %10s %10s\n' "$k" "$(awk -v k="$k" '$1 == "tuned" && $2 == k {print $3}' "$tmp/out")" \
        "$(awk -v k="$k" '$1 == "defaults" && $2 == k {print $3}' "$tmp/out")"
done
