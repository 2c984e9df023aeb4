#!/usr/bin/env bash
# Memory per parked push: 500 typical ACR pushes (tagged, UUID event ids, unique digests), no
# builds, default window (nothing expires). Bytes per parked push = average MEMORY USAGE of 50
# dm:{0}:r:* keys + MEMORY USAGE dm:{0}:due / 500. Checked < 512 with
# "--hash-max-listpack-value 256" (configs/redis.conf and the embedded Redis); printed for
# information with Redis's default settings.
. "$(dirname "$0")/lib.sh"

# uuid VAR: a random UUID into VAR (no fork: 1000 of them per phase)
uuid() { read -r "$1" < /proc/sys/kernel/random/uuid; }

# measure: park 500 pushes against a fresh redis + daemon, print the figure.
measure() {
    start_redis
    start_daemon
    mkdir -p "$T/mem"
    rm -f "$T/mem/"*
    local i d t id rid hex
    t=$(iso_at -5)
    hex=$(head -c $((32 * 500)) /dev/urandom | od -An -tx1 -v | tr -d ' \n')
    for i in $(seq 1 500); do
        d="sha256:${hex:$(((i - 1) * 64)):64}"
        uuid id
        uuid rid
        printf '%s\n' "{
  \"id\": \"$id\",
  \"timestamp\": \"$t\",
  \"action\": \"push\",
  \"target\": {
    \"mediaType\": \"application/vnd.oci.image.index.v1+json\",
    \"size\": 1609,
    \"digest\": \"$d\",
    \"length\": 1609,
    \"repository\": \"team/api\",
    \"tag\": \"1.4.$i\"
  },
  \"request\": {
    \"id\": \"$rid\",
    \"host\": \"contoso.azurecr.io\",
    \"method\": \"PUT\",
    \"useragent\": \"buildkit/v0.16\"
  }
}" > "$T/mem/p$i.json"
        echo "$T/mem/p$i.json"
    done > "$T/mem/list"
    xargs -P 8 -n 1 curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer acr-token' "http://127.0.0.1:$PORT/v1/registry/acr" --data-binary \
        < <(sed 's/^/@/' "$T/mem/list") > "$T/mem/codes"
    check "$1: 500 pushes answered 202" "500 202" "$(sort "$T/mem/codes" | uniq -c | awk '{$1=$1; print}')"
    check "$1: 500 parked push keys" 500 "$(rcli --scan --pattern 'dm:{0}:r:*' | wc -l)"
    check "$1: 500 schedule entries" 500 "$(rcli zcard 'dm:{0}:due')"
    check "$1: a body is a valid ACR push with a UUID id" yes \
        "$(jq -r 'if (.id | test("^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")) and (.target.digest | test("^sha256:[0-9a-f]{64}$")) then "yes" else "no" end' "$T/mem/p500.json")"
    local sample sum=0 n=0 due k
    rcli --scan --pattern 'dm:{0}:r:*' > "$T/mem/keys" # (not piped into head: SIGPIPE + pipefail)
    sample=$(head -n 50 "$T/mem/keys")
    for k in $sample; do
        sum=$((sum + $(rcli memory usage "$k")))
        n=$((n + 1))
    done
    due=$(rcli memory usage 'dm:{0}:due')
    ENCODING=$(rcli object encoding "$(head -n 1 <<<"$sample")")
    FIGURE=$(awk -v s="$sum" -v n="$n" -v d="$due" 'BEGIN { printf "%.1f", s / n + d / 500 }')
    echo "# $1: $n keys sampled, average $((sum / n)) bytes per key ($ENCODING)," \
        "due $due bytes ($((due / 500)) per push): $FIGURE bytes per parked push"
    stop_daemon
    stop_redis
}

REDIS_EXTRA_ARGS="--hash-max-listpack-value 256"
measure "listpack-value 256"
check "listpack-value 256: parked push hash is a listpack" listpack "$ENCODING"
check "listpack-value 256: bytes per parked push < 512 (got $FIGURE)" yes \
    "$(awk -v f="$FIGURE" 'BEGIN { print (f < 512) ? "yes" : "no" }')"
tuned=$FIGURE

unset REDIS_EXTRA_ARGS
measure "redis defaults"
echo "# bytes per parked push: $tuned with hash-max-listpack-value 256, $FIGURE with Redis defaults ($ENCODING)"
finish
