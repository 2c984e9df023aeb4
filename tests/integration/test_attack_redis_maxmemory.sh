#!/usr/bin/env bash
# Attack: fill Redis. With a small maxmemory and noeviction, pushes and builds are posted until
# Redis is full: what Redis refuses goes to the spool (202 spooled) until the small spool is full
# too (docs/spool.md); every refusal is then a 503 with Retry-After (counted, logged), pushes and builds
# are refused alike (park.lua declares its writes, so Redis refuses it before it runs: a first
# write that frees memory no longer carries the rest past the limit), every 202's event is in
# Redis, and ingest recovers once there is room again. The embedded redis-server gets
# redis.maxmemory (default: a quarter of the physical memory) with noeviction.
. "$(dirname "$0")/lib.sh"
REDIS_EXTRA_ARGS="--maxmemory 3mb --maxmemory-policy noeviction"
start_redis
start_daemon "$(default_config | jq '.spool.max_bytes = 65536')"

# fill PORT [N]: alternate one push and one build, each of a new digest, over one keep-alive
# connection, until 60 requests after the first refusal (or N requests); one line per request:
# "<kind> <digest> <status> <retry-after or -> <body>".
fill() {
    python3 - "$@" <<'EOF'
import http.client, json, os, sys, datetime
port = int(sys.argv[1])
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
at = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
after = None
for i in range(40000):
    d = "sha256:" + os.urandom(32).hex()
    if i % 2 == 0:
        kind, path, tok = "push", "/v1/registry/acr", "acr-token"
        body = {"id": "evt-%d" % i, "timestamp": at, "action": "push",
                "target": {"mediaType": "application/vnd.oci.image.index.v1+json", "size": 1,
                           "digest": d, "length": 1, "repository": "team/api", "tag": "v%d" % i},
                "request": {"id": "r", "host": "contoso.azurecr.io", "method": "PUT"}}
    else:
        kind, path, tok = "build", "/v1/builds", "ci-token"
        body = {"images": [{"name": "contoso.azurecr.io/team/api", "digest": d, "tags": ["v%d" % i]}],
                "built_at": at,
                "run": {"provider": "github", "repository": "acme/api", "run_id": str(i), "run_attempt": "1"}}
    c.request("POST", path, json.dumps(body), {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode().strip()
    print(kind, d, r.status, r.getheader("Retry-After") or "-", text)
    if r.status != 202 and after is None:
        after = i
    if (limit is None and after is not None and i - after >= 60) or (limit is not None and i + 1 >= limit):
        break
EOF
}

fill "$PORT" > "$T/fill"
total=$(wc -l < "$T/fill")
first=$(awk '$3 != 202 { print NR; exit }' "$T/fill")
spooled=$(grep -c '"spooled":true' "$T/fill" || true)
refused=$(awk '$3 != 202' "$T/fill" | wc -l)
accepted=$(awk '$3 == 202' "$T/fill" | wc -l)
echo "# $total requests: $accepted accepted ($spooled spooled), $refused refused, the first refusal at request $first"
check_match "Redis filled up: some requests accepted, then refused" '^[1-9][0-9]* [1-9][0-9]*$' "$accepted $refused"
check "every refusal is a 503 with Retry-After and the storage reason" \
    "$refused" "$(awk '$3 != 202' "$T/fill" | grep -cE ' 503 [0-9]+ \{"error":"storage unavailable( and the spool is full)?; retry later"\}$' || true)"
check_match "Redis full: events spooled first, until the spool was full ($spooled)" '^[1-9]' "$spooled"
check "spooled events counted" "$spooled" "$(metric digestmap_spooled_total)"
check "spool-full refusals counted" "$refused" "$(metric digestmap_spool_full_total)"
echo "# $(rcli info memory | grep -E '^(used_memory|maxmemory):' | tr -d '\r' | paste -sd' ')"
check "refusals and spooled events counted as Redis out of memory (the replayer's tries too)" yes \
    "$([ "$(metric digestmap_redis_oom_total)" -ge $((refused + spooled)) ] && echo yes || echo no)"
check "each refusal logged" "$refused" "$(grep -c 'msg="request refused" status=503' "$T/daemon.log")"
check "the full Redis is reported, at most once a second" yes \
    "$(n=$(grep -c 'msg="redis over maxmemory: events refused"' "$T/daemon.log"); [ "$n" -ge 1 ] && [ "$n" -le $((SECONDS + 1)) ] && echo yes || echo "no ($n)")"

# Every 202's event is in Redis: its parked push or build.
# (a build's run id is its request's number, from 0)
awk '$3 == 202 && !/"spooled":true/ { if ($1 == "push") print "HEXISTS", "dm:{0}:r:" $2, "contoso.azurecr.io/team/api";
                 else print "HEXISTS", "dm:{0}:b:" $2, "github/" (NR - 1) "/1" }' "$T/fill" > "$T/exists"
missing=$(rcli < "$T/exists" | grep -vc '^1$' || true)
check "every accepted event not spooled is parked in Redis" "$((accepted - spooled)) 0" "$(wc -l < "$T/exists") $missing"
# Clearly over the limit (Redis hovers around it while filling: its own buffers come and go),
# pushes and builds are refused alike. Before park.lua declared its writes, every push was
# accepted here: its first write, an HDEL, is not checked against maxmemory.
used=$(rcli info memory | awk -F: '/^used_memory:/ { print $2 + 0 }')
rcli config set maxmemory $((used - 262144)) > /dev/null
fill "$PORT" 40 > "$T/over"
check "over the limit: 20 pushes and 20 builds, all refused with 503" "20 push 503
20 build 503" "$(awk '{ print $1, $3 }' "$T/over" | sort -r | uniq -c | awk '{$1=$1; print}')"

# Room again: ingest recovers.
rcli config set maxmemory 0 > /dev/null
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0 "$(iso_at -5)"
post_acr "$T/p.json"
check "room again: a push is accepted" 202 "$STATUS"
check "room again: the spool is replayed" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
awk '$3 == 202 { if ($1 == "push") print "HEXISTS", "dm:{0}:r:" $2, "contoso.azurecr.io/team/api";
                 else print "HEXISTS", "dm:{0}:b:" $2, "github/" (NR - 1) "/1" }' "$T/fill" > "$T/exists"
missing=$(rcli < "$T/exists" | grep -vc '^1$' || true)
check "every accepted event, spooled ones included, is parked in Redis" "$accepted 0" "$(wc -l < "$T/exists") $missing"
stop_daemon
stop_redis

# ---------------------------------------------------------------- the embedded redis-server
# Without redis.url digestmapd starts its own, with redis.maxmemory and noeviction.
embedded() {
    default_config | jq --argjson m "$1" 'del(.redis.url)
        | if $m > 0 then .redis.maxmemory = $m else . end'
}
start_daemon "$(embedded 5000000)"
ercli() { redis-cli -s "$T/var/redis.sock" "$@"; }
check "embedded: maxmemory from redis.maxmemory" "maxmemory 5000000" "$(ercli config get maxmemory | paste -sd' ')"
check "embedded: noeviction" "maxmemory-policy noeviction" "$(ercli config get maxmemory-policy | paste -sd' ')"
stop_daemon
start_daemon "$(embedded 0)"
quarter=$(( $(getconf _PHYS_PAGES) / 4 * $(getconf PAGE_SIZE) ))
check "embedded: default maxmemory, a quarter of the physical memory" "maxmemory $quarter" \
    "$(ercli config get maxmemory | paste -sd' ')"
stop_daemon
finish
