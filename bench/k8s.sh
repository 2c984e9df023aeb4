#!/usr/bin/env bash
# bench/k8s.sh [PODS] [SHARDS] - the cost of one Kubernetes cluster snapshot (docs/workloads.md):
# a generated snapshot of PODS pods (default 5000) in the reporter's trimmed form, posted to a
# k8s source of digestmapd (from build/, DIGESTMAPD overrides it) on a private redis-server
# (unix socket, no persistence) with SHARDS shards (default 1). Reports the body size, the
# answer time of the first snapshot (everything new), of the same snapshot again, of one with
# 10 % of the workloads replaced, and the growth of Redis's used_memory and key count; then
# one GET /v1/exposure page. Every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${1:-5000}
SHARDS=${2:-1}
BENCH_NAME=bench/k8s
tmp=$(mktemp -d)
. bench/lib.sh
DIGESTMAPD=${DIGESTMAPD:-build/bin/digestmapd}
[ -x "$DIGESTMAPD" ] || fail "no $DIGESTMAPD: build first (cmake -S . -B build && cmake --build build)"
pids=()
trap 'for p in "${pids[@]}"; do stop_pid "$p"; done; rm -rf "$tmp"' EXIT

# gen TAKEN_AT CHANGED_PERCENT: the snapshot. 5 pods per Deployment, each Deployment its own
# image and one of 10 shared sidecars; a Service per Deployment, every 5th a LoadBalancer, every
# 7th behind an Ingress. CHANGED_PERCENT of the Deployments get another name and image.
gen() {
    python3 - "$PODS" "$1" "$2" <<'PY'
import hashlib, json, sys
pods, taken_at, changed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def dig(s): return hashlib.sha256(s.encode()).hexdigest()
items = []
deployments = pods // 5
for i in range(deployments):
    gen = 'b' if i % 100 < changed else 'a'
    app, ns = f'app{i}{gen}', f'team{i % 50}'
    h = dig(app)[:10]
    img = f'registry.example.com/{ns}/{app}@sha256:{dig("img" + app)}'
    side = f'registry.example.com/mesh/proxy@sha256:{dig("side" + str(i % 10))}'
    for p in range(5):
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "labels": {"app": app, "pod-template-hash": h}, "name": f'{app}-{h}-{p:05d}',
            "namespace": ns, "ownerReferences": [{"apiVersion": "apps/v1", "controller": True,
            "kind": "ReplicaSet", "name": f'{app}-{h}', "uid": "u"}]},
            "status": {"containerStatuses": [{"name": "app", "imageID": img},
                                             {"name": "proxy", "imageID": side}]}})
    items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns},
                  "spec": {"ports": [{"port": 80}], "selector": {"app": app},
                           "type": "LoadBalancer" if i % 5 == 0 else "ClusterIP"},
                  "status": {"loadBalancer": {}}})
    if i % 7 == 0:
        items.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                      "metadata": {"name": app, "namespace": ns},
                      "spec": {"rules": [{"http": {"paths": [{"backend": {"service": {
                          "name": app, "port": {"number": 80}}}, "path": "/"}]}}]}})
print(json.dumps({"cluster": "bench", "taken_at": taken_at, "items": items}))
PY
}
gen 2026-12-06T10:00:00Z 0 >"$tmp/s1.json"
gen 2026-12-06T10:05:00Z 10 >"$tmp/s2.json"
bytes=$(stat -c %s "$tmp/s1.json")

redis-server --port 0 --unixsocket "$tmp/redis.sock" --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$tmp/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
rc() { redis-cli -s "$tmp/redis.sock" "$@"; }
cat >"$tmp/config.json" <<EOF
{ "listen": "127.0.0.1:0", "workers": 2, "data_dir": "$tmp/var", "log_level": "info",
  "redis": { "url": "unix://$tmp/redis.sock", "shards": $SHARDS, "command_timeout_ms": 30000 },
  "limits": { "max_body_bytes": 67108864, "max_body_memory_bytes": 134217728 },
  "sources": [ { "type": "k8s", "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer t"} ] } ],
  "api": { "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer t"} ] } }
EOF
"$DIGESTMAPD" --config "$tmp/config.json" 2>"$tmp/daemon.log" &
pids+=($!)
port=""
for _ in $(seq 200); do
    port=$(sed -n 's/.*msg="listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/daemon.log" | head -n 1)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done
[ -n "$port" ] || fail "digestmapd did not start: $(tail -n 5 "$tmp/daemon.log")"

post() { # FILE: prints "status seconds"
    curl -s -o "$tmp/answer" -w '%{http_code} %{time_total}\n' -X POST -H 'Authorization: Bearer t' \
        -H 'Content-Type: application/json' --data-binary "@$1" "http://127.0.0.1:$port/v1/workloads"
}
mem() { rc info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
keys() { rc dbsize; }

m0=$(mem)
k0=$(keys)
read -r st1 t1 < <(post "$tmp/s1.json")
[ "$st1" == 202 ] || fail "first snapshot: $st1 $(cat "$tmp/answer")"
workloads=$(jq .workloads "$tmp/answer")
m1=$(mem)
k1=$(keys)
read -r st2 t2 < <(post "$tmp/s1.json")
[ "$st2" == 202 ] || fail "same snapshot: $st2"
read -r st3 t3 < <(post "$tmp/s2.json")
[ "$st3" == 202 ] || fail "10 % changed: $st3"
m3=$(mem)
read -r st4 t4 < <(curl -s -o "$tmp/exp" -w '%{http_code} %{time_total}\n' -H 'Authorization: Bearer t' \
    "http://127.0.0.1:$port/v1/exposure?min_severity=unknown&limit=100")
[ "$st4" == 200 ] || fail "exposure: $st4"
echo "pods=$PODS shards=$SHARDS body_bytes=$bytes workloads=$workloads load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "first snapshot:      ${t1}s  redis +$(( (m1 - m0) / 1024 )) KiB, +$((k1 - k0)) keys ($(( (m1 - m0) / workloads )) B per workload)"
echo "same snapshot again: ${t2}s"
echo "10 % replaced:       ${t3}s  redis now +$(( (m3 - m0) / 1024 )) KiB"
echo "GET /v1/exposure (no findings stored, so an empty page after reading the index): ${t4}s"
