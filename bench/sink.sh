#!/usr/bin/env bash
# bench/sink.sh [RECORDS] - webhook-sink delivery throughput, as ratios against nginx answering
# 204 on loopback measured in the same run (see bench/README.md, "Webhook sink"). Installs what
# is missing (as root or with sudo), builds build-bench/ (Release) like run.sh, then for each
# scheme (http, and https with a self-signed certificate made here) and each max_inflight: the
# nginx ceiling at that many wrk connections (keep-alive: the ceiling the sink is measured
# against; and a new connection per request), and digestmapd with one sink pointing at that
# nginx delivering RECORDS records appended at once to dm:{0}:out. Checks from nginx's access
# log that every record arrived exactly once with a valid signature, and counts the connections
# they came on. Stops by itself and cleans up.
#   env: SINK_RECORDS (20000), SINK_INFLIGHT ("16 64"), SINK_SCHEMES ("http https"),
#        BENCH_SECONDS (3: each ceiling figure), BENCH_PORT / NGINX_PORT / NGINX_TLS_PORT (first
#        free from 18090 / 18190 / 18290), BENCH_REV=<git rev> (as run.sh),
#        SINK_PERF=<file prefix>: perf record digestmapd during each delivery (SINK_PERF_CG:
#        perf's call-graph option, default -g),
#        SINK_SYSCALLS=1: digestmapd's system calls per record (perf stat, during the delivery),
#        SINK_NO_ID=1: records without their "id" field (an older writer's),
#        SINK_CALLGRIND=<file prefix>: digestmapd under valgrind's callgrind, collecting only
#        from the append to the last delivery (instructions per record; no ceilings)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
records=${1:-${SINK_RECORDS:-20000}}
inflight_list=${SINK_INFLIGHT:-"16 64"}
schemes=${SINK_SCHEMES:-"http https"}
secs=${BENCH_SECONDS:-3}
secret="bench-sink-secret"
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
case "$records$secs${inflight_list// /}" in
    *[!0-9]*|"") echo "usage: bench/sink.sh [RECORDS]" >&2; exit 2 ;;
esac
for sch in $schemes; do
    case "$sch" in http|https) ;; *) echo "SINK_SCHEMES: http and/or https" >&2; exit 2 ;; esac
done

# --- packages, processes and cleanup, build (bench/lib.sh) --------------------------------------
BENCH_NAME="sink bench"
. bench/lib.sh
bench_deps
tmp=$(mktemp -d /tmp/dm-sinkbench.XXXXXX)
redis_pid=""; dm_pid=""; nginx_pid=""
cleanup() {
    [ -n "$dm_pid" ] && stop_pid "$dm_pid"
    [ -n "$nginx_pid" ] && stop_pid "$nginx_pid"
    [ -n "$redis_pid" ] && stop_pid "$redis_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=${BENCH_PORT:-$(free_port 18090)}
nginx_port=${NGINX_PORT:-$(free_port 18190)}
nginx_tls_port=${NGINX_TLS_PORT:-$(free_port 18290)}
per_rec_us() { per_item_us "$1" "$2" "$3" 1; } # ticks-before ticks-after records
now() { date +%s.%N; }
rcli() { redis-cli -s "$tmp/redis.sock" "$@"; }
bench_build

echo "sink bench: $(date -u +%FT%TZ), $(nproc) cores, $records records per run, schemes" \
     "$schemes, max_inflight $inflight_list, ${secs}s per ceiling, wrk -t1, load average" \
     "$(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- nginx: one process answering 204, logging what identifies and authenticates a delivery ----
# Same server and log format for the ceiling (/ceiling) and the sink (/hook/), over http and
# https (a P-256 certificate for 127.0.0.1, its own CA for the sink's ca_file); one process
# (master_process off) so that its CPU time is that of /proc/<pid>/stat. The logs are buffered
# and written at exit, when they are checked; they give each delivery's time ($msec: the last
# one ends the run's clock) and connection ($connection).
chmod 755 "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.pem" 2>/dev/null \
    || fail "openssl could not make a certificate"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
  log_format sink '\$request_method \$uri \$http_idempotency_key \$http_x_digestmap_signature \$content_length \$msec \$connection';
  client_body_temp_path $tmp;
  server {
    listen 127.0.0.1:$nginx_port reuseport;
    listen 127.0.0.1:$nginx_tls_port ssl reuseport;
    ssl_certificate $tmp/tls.pem;
    ssl_certificate_key $tmp/tls.key;
    client_max_body_size 1m;
    location /ceiling { access_log $tmp/ceiling.log sink buffer=64k; return 204; }
    location /hook/ { access_log $tmp/hook.log sink buffer=64k; return 204; }
  }
}
CONF
nginx -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" -p "$tmp" & nginx_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null || fail "nginx did not start"
base_url() { # scheme: nginx's URL for it
    if [ "$1" = https ]; then echo "https://127.0.0.1:$nginx_tls_port"; else echo "http://127.0.0.1:$nginx_port"; fi
}

# --- redis, digestmapd -------------------------------------------------------------------------
redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" & redis_pid=$!
for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(rcli ping)" = PONG ] || fail "redis-server did not start"

start_daemon() { # scheme max_inflight
    local ca=""
    [ "$1" = https ] && ca=", \"ca_file\": \"$tmp/tls.pem\""
    cat > "$tmp/config.json" <<JSON
{
  "listen": "127.0.0.1:$port",
  "workers": 1,
  "log_level": "info",
  "redis": {"url": "unix://$tmp/redis.sock"},
  "sources": [
    {"type": "acr", "path": "/v1/registry/acr",
     "auth": [{"type": "header", "name": "Authorization", "value": "$acr_auth"}]},
    {"type": "build", "path": "/v1/builds",
     "auth": [{"type": "header", "name": "Authorization", "value": "$ci_auth"}]}
  ],
  "outputs": {"webhooks": [
    {"name": "bench", "url": "$(base_url "$1")/hook/$1-m$2", "secret": "$secret",
     "max_inflight": $2$ca}
  ]}
}
JSON
    : > "$tmp/digestmapd.log"
    if [ -n "${SINK_CALLGRIND:-}" ]; then
        valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$SINK_CALLGRIND.$1-m$2" \
            "$daemon" --config "$tmp/config.json" 2>>"$tmp/digestmapd.log" & dm_pid=$!
    else
        "$daemon" --config "$tmp/config.json" 2>>"$tmp/digestmapd.log" & dm_pid=$!
    fi
    for _ in $(seq 600); do
        grep -q 'msg="sink started"' "$tmp/digestmapd.log" \
            && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$dm_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$tmp/digestmapd.log" >&2; fail "digestmapd ($1, max_inflight $2) did not start its sink"
}
metric() { # name: the daemon's counter (sum over labels)
    curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
wait_metric() { # name value seconds: poll (every 0.2 s) until the counter reaches value
    local deadline; deadline=$(( $(date +%s) + $3 ))
    while [ "$(metric "$1")" -lt "$2" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# --- a real record, from a join: an ACR push and the build event of the same digest ---------------
template_record() {
    local digest ts
    digest="sha256:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    ts=$(date -u +%Y-%m-%dT%H:%M:%S.123456789Z)
    cat > "$tmp/push.json" <<EOF
{ "id": "evt-bench-1", "timestamp": "$ts", "action": "push",
  "target": { "mediaType": "application/vnd.oci.image.index.v1+json", "size": 1609,
              "digest": "$digest", "length": 1609, "repository": "team/api", "tag": "1.4.0" },
  "request": { "id": "req-1", "host": "contoso.azurecr.io", "method": "PUT",
               "useragent": "buildkit/v0.16" } }
EOF
    cat > "$tmp/build.json" <<EOF
{ "images": [ { "name": "contoso.azurecr.io/team/api", "digest": "$digest", "tags": ["1.4.0"] } ],
  "built_at": "$ts",
  "run": { "provider": "github", "repository": "acme/api", "run_id": "4242",
           "run_attempt": "1", "commit": "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
           "ref": "refs/heads/main", "workflow": "release", "actor": "mona" } }
EOF
    local a b
    a=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $acr_auth" \
        -H 'Content-Type: application/json' --data-binary @"$tmp/push.json" \
        "http://127.0.0.1:$port/v1/registry/acr")
    b=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $ci_auth" \
        -H 'Content-Type: application/json' --data-binary @"$tmp/build.json" \
        "http://127.0.0.1:$port/v1/builds")
    [ "$a$b" = 202202 ] || fail "join for the template record: answers $a and $b"
    for _ in $(seq 50); do [ "$(rcli xlen 'dm:{0}:out')" -ge 1 ] && break; sleep 0.1; done
    rcli -2 --json XRANGE 'dm:{0}:out' - + COUNT 1 > "$tmp/template.json"
    [ -s "$tmp/template.json" ] && [ "$(rcli xlen 'dm:{0}:out')" -ge 1 ] || fail "the join wrote no record"
}

# records.py gen RUN N TEMPLATE OUT: N records like TEMPLATE (each its own CloudEvent id and
# digest) as XADD commands in RESP, for redis-cli --pipe.
# records.py check RUN N LOG SECRET TEMPLATE: from nginx's log, "posts unique bad last conns" of
# the ids of that run: bad counts wrong signatures (checked against the body the record was
# generated with), lengths or methods; last is the time of its last POST; conns the connections
# its POSTs came on.
cat > "$tmp/records.py" <<'PY'
import hashlib, hmac, json, os, sys

def template(path):
    [[_, fields]] = json.load(open(path))
    f = dict(zip(fields[::2], fields[1::2]))
    ev = json.loads(f["event"])
    return f["type"], f["digest"], ev["id"], f["event"]

def record(tpl, run, i):
    typ, digest, ce_id, event = tpl
    new_id = "bench-%s-%07d" % (run, i)
    new_digest = "sha256:" + hashlib.sha256(new_id.encode()).hexdigest()
    return typ, new_digest, new_id, event.replace(ce_id, new_id).replace(digest, new_digest)

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)

cmd, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if cmd == "gen":
    tpl = template(sys.argv[4])
    with open(sys.argv[5], "wb") as out:
        for i in range(n):
            typ, digest, ce_id, event = record(tpl, run, i)
            # The fields correlator/lua/lib.lua emit writes, the id included (SINK_NO_ID=1:
            # without it, as an older writer: the sink then decodes the event for its id).
            fields = ["type", typ, "digest", digest, "event", event]
            if os.environ.get("SINK_NO_ID") != "1":
                fields += ["id", ce_id]
            out.write(resp("XADD", "dm:{0}:out", "*", *fields))
    print(len(tpl[3].encode()))
else:
    log, secret, tpl = sys.argv[4], sys.argv[5].encode(), template(sys.argv[6])
    prefix = "bench-%s-" % run
    posts, seen, bad, last, conns = 0, set(), 0, 0.0, set()
    for line in open(log):
        method, uri, key, sig, clen, msec, conn = line.split()
        if not key.startswith(prefix):
            continue
        posts += 1
        seen.add(key)
        last = max(last, float(msec))
        conns.add(conn)
        i = int(key[len(prefix):])
        body = record(tpl, run, i)[3].encode()
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if method != "POST" or i >= n or sig != want or clen != str(len(body)):
            bad += 1
    print(posts, len(seen), bad, "%.3f" % last, len(conns))
PY

# --- ceiling: wrk POSTing one record's event with the sink's headers ---------------------------
# Without CLOSE, keep-alive: the ceiling the sink is measured against (its connections are kept
# alive too). CLOSE=1 adds "Connection: close": wrk then opens a new connection per request, as
# the sink did before it kept connections alive.
cat > "$tmp/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/cloudevents+json"
wrk.headers["X-Digestmap-Signature"] = "sha256=" .. string.rep("0", 64)
wrk.headers["Idempotency-Key"] = "ceiling"
wrk.headers["X-Digestmap-Attempt"] = "1"
wrk.headers["User-Agent"] = "digestmap"
if os.getenv("CLOSE") == "1" then wrk.headers["Connection"] = "close" end
LUA
ceiling() { # scheme connections close(0|1): "requests/s CPU-us-per-request" (wrk + nginx)
    local n0 n1 wrk_ticks
    n0=$(cpu_ticks "$nginx_pid")
    # The subshell's children's CPU (cutime + cstime, once wrk is waited for) is wrk's.
    wrk_ticks=$( (BODY_FILE=$tmp/body.json CLOSE=$3 wrk -t1 -c"$2" -d"${secs}s" -s "$tmp/post.lua" \
        "$(base_url "$1")/ceiling" > "$tmp/wrk.out"; awk '{print $16 + $17}' "/proc/$BASHPID/stat") )
    n1=$(cpu_ticks "$nginx_pid")
    local non2xx errs
    non2xx=$(awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$tmp/wrk.out")
    errs=$(awk '/Socket errors/ {gsub(",", ""); n = $4 + $6 + $8 + $10} END {print n + 0}' "$tmp/wrk.out")
    [ "$non2xx" = 0 ] || fail "ceiling: $non2xx non-2xx answers"
    [ "$errs" = 0 ] || echo "sink bench: ceiling $1 c$2 close=$3: $errs socket errors" >&2
    awk -v w="$wrk_ticks" -v n="$((n1 - n0))" -v hz="$(getconf CLK_TCK)" '
        /^ *[0-9]+ requests in/ {req = $1}
        /Requests\/sec/ {rps = $2}
        END {printf "%s %.1f\n", rps, (req > 0) ? (w + n) * 1e6 / hz / req : 0}' "$tmp/wrk.out"
}

# --- runs --------------------------------------------------------------------------------------
# Each run's clock starts with the append and stops at nginx's time for the run's last POST
# (its log, read once nginx has exited); the counter is polled (every 0.2 s) only to know when
# to stop, and the CPU figures span the start to that moment.
runs=()
for sch in $schemes; do
for m in $inflight_list; do
    run=$sch-m$m
    rcli flushall >/dev/null
    start_daemon "$sch" "$m"
    base=0
    if [ ! -s "$tmp/template.json" ]; then
        template_record
        wait_metric digestmap_sink_delivered_total 1 10 || fail "the join's record was not delivered"
        base=1
        rcli -2 --json XRANGE 'dm:{0}:out' - + COUNT 1 | python3 -c '
import json, sys
[[_, f]] = json.load(sys.stdin)
sys.stdout.write(dict(zip(f[::2], f[1::2]))["event"])' > "$tmp/body.json"
    fi
    body_bytes=$(python3 "$tmp/records.py" gen "$run" "$records" "$tmp/template.json" "$tmp/records.resp")

    if [ -n "${SINK_CALLGRIND:-}" ]; then # no ceilings: only instructions count here
        c_ka=0; c_ka_cpu=0; c_close=0
        callgrind_control -i on "$dm_pid" >/dev/null
    else
        read -r c_ka c_ka_cpu < <(ceiling "$sch" "$m" 0)
        read -r c_close _ < <(ceiling "$sch" "$m" 1)
    fi

    perf_pid=""
    if [ -n "${SINK_PERF:-}" ]; then # profile digestmapd during the delivery (see README)
        perf record -q -e cpu-clock ${SINK_PERF_CG:--g} -p "$dm_pid" -o "$SINK_PERF.$run" 2>/dev/null & perf_pid=$!
        sleep 0.5
    fi
    stat_pid=""
    if [ -n "${SINK_SYSCALLS:-}" ]; then # count digestmapd's system calls during the delivery
        perf stat -x, -o "$tmp/syscalls.$run" -p "$dm_pid" -e raw_syscalls:sys_enter \
            $(printf -- '-e syscalls:sys_enter_%s ' epoll_wait epoll_ctl writev readv read write \
                ioctl sendmsg recvmsg sendto recvfrom) 2>/dev/null & stat_pid=$!
        sleep 0.5
    fi
    rcli CONFIG RESETSTAT >/dev/null
    d0=$(cpu_ticks "$dm_pid"); r0=$(cpu_ticks "$redis_pid"); n0=$(cpu_ticks "$nginx_pid")
    t0=$(now)
    redis-cli -s "$tmp/redis.sock" --pipe < "$tmp/records.resp" > "$tmp/pipe.out" 2>&1 \
        || { cat "$tmp/pipe.out" >&2; fail "redis-cli --pipe"; }
    t_pipe=$(now)
    wait_metric digestmap_sink_delivered_total $(( base + records )) 120 \
        || fail "$run: $(( $(metric digestmap_sink_delivered_total) - base )) of $records delivered after 120 s"
    d1=$(cpu_ticks "$dm_pid"); r1=$(cpu_ticks "$redis_pid"); n1=$(cpu_ticks "$nginx_pid")
    if [ -n "${SINK_CALLGRIND:-}" ]; then
        callgrind_control -i off "$dm_pid" >/dev/null
        callgrind_control -d "$dm_pid" >/dev/null
        ir=$(cat "$SINK_CALLGRIND.$run".* 2>/dev/null | awk '$1 == "totals:" || $1 == "summary:" {s += $2} END {print s + 0}')
        echo "sink bench: $run: callgrind $(awk -v i="$ir" -v n="$records" 'BEGIN {printf "%.0f", i / n}')" \
             "instructions per record ($ir in all; $SINK_CALLGRIND.$run.*)" >&2
    fi
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    if [ -n "$stat_pid" ]; then
        kill -INT "$stat_pid"; wait "$stat_pid" || true
        echo "sink bench: $run: system calls per record:" "$(awk -F, -v n="$records" '
            $3 ~ /sys_enter/ && $1 + 0 > 0 {sub(/.*sys_enter_?/, "", $3); printf "%s %.2f  ", ($3 == "" ? "all" : $3), $1 / n}' \
            "$tmp/syscalls.$run")" >&2
    fi
    retried=$(metric digestmap_sink_retries_total); dead=$(metric digestmap_sink_dead_lettered_total)
    resent=$(metric digestmap_sink_resent_total); reused=$(metric digestmap_sink_connections_reused_total)
    delivered=$(( $(metric digestmap_sink_delivered_total) - base ))
    pending=$(rcli XPENDING 'dm:{0}:out' digestmap:bench | head -n 1)
    calls=$(rcli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
        $1 == "cmdstat_xreadgroup" {r = $3} $1 == "cmdstat_xack" {a = $3}
        END {printf "%d XREADGROUP and %d XACK calls", r, a}')
    echo "sink bench: $run: $records records ($body_bytes-byte event) appended in" \
         "$(awk -v a="$t0" -v b="$t_pipe" 'BEGIN {printf "%.2f", b - a}') s, delivered $delivered," \
         "retried $retried, dead-lettered $dead, pending $pending, on a reused connection" \
         "$reused, resent $resent; $calls; ceiling keep-alive $c_ka, new connection each" \
         "$c_close req/s" >&2
    [ "$retried" = 0 ] && [ "$dead" = 0 ] || fail "$run: $retried retried, $dead dead-lettered"
    [ "$delivered" = "$records" ] || fail "$run: $delivered delivered for $records records"
    runs+=("$run|$sch|$m|$t0|$c_ka|$c_ka_cpu|$c_close|$(per_rec_us "$d0" "$d1" "$records")|$(per_rec_us "$r0" "$r1" "$records")|$(per_rec_us "$n0" "$n1" "$records")")
    stop_pid "$dm_pid"; dm_pid=""
done
done

# nginx writes its buffered access logs when it exits
stop_pid "$nginx_pid"; nginx_pid=""
rows=()
for r in "${runs[@]}"; do
    IFS='|' read -r run sch m t0 ka kacpu cl dcpu rcpu ncpu <<< "$r"
    read -r posts unique bad last conns < <(python3 "$tmp/records.py" check "$run" "$records" \
        "$tmp/hook.log" "$secret" "$tmp/template.json")
    echo "sink bench: $run: nginx saw $posts POSTs of the run's records, $unique distinct, $bad" \
         "with a wrong signature, length or method, on $conns connections" >&2
    [ "$posts" = "$records" ] && [ "$unique" = "$records" ] && [ "$bad" = 0 ] \
        || fail "$run: nginx saw $posts POSTs ($unique distinct, $bad bad) for $records records"
    rate=$(awk -v n="$records" -v a="$t0" -v b="$last" 'BEGIN {printf "%.0f", n / (b - a)}')
    rows+=("$sch|$m|$rate|$ka|$kacpu|$cl|$conns|$dcpu|$rcpu|$ncpu")
done

# --- table -------------------------------------------------------------------------------------
# sink/ka: the sink's records/s over nginx's keep-alive ceiling at as many connections (the
# figure issue 13 asks to be >= 0.5); sink/new: over the new-connection-per-request one.
# CPU/req ka: wrk + nginx per request of the keep-alive ceiling; CPU/rec: digestmapd, redis and
# nginx per record of the sink (on a shared machine the ratio tends to the ratio of these).
printf '\n%-6s %4s %9s %9s %11s %8s %8s %6s %11s %8s %8s %8s\n' scheme m records/s \
    'ka req/s' 'new-conn/s' sink/ka sink/new conns 'CPU/req ka' 'CPU dmd' 'redis' 'nginx'
for r in "${rows[@]}"; do
    IFS='|' read -r sch m rate ka kacpu cl conns dcpu rcpu ncpu <<< "$r"
    awk -v s="$sch" -v m="$m" -v r="$rate" -v a="$ka" -v kc="$kacpu" -v c="$cl" -v k="$conns" \
        -v d="$dcpu" -v x="$rcpu" -v n="$ncpu" 'BEGIN {printf "%-6s %4s %9.0f %9.0f %11.0f %8.3f %8.3f %6s %9sus %6sus %6sus %6sus\n", s, m, r, a, c, a ? r / a : 0, c ? r / c : 0, k, kc, d, x, n}'
done
