#!/usr/bin/env bash
# Joins on Redis Cluster (3 masters + 3 replicas, cluster.sh; redis.cluster true, 16 shards):
# 48 digests, 3 per shard, each pushed and built: 48 edges, each exactly once, in its digest's
# shard stream, and the shards' keys spread over all three masters (counted per master). Every
# push and build posted again (a sender's redelivery) is absorbed: no second edge. Every key
# carries a shard tag {0}..{15}.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"
N=16
CT=dev.digestmap.mapping.confirmed.v1
cluster_start 22000
start_daemon "$(cluster_config)"

# 48 digests whose first 4 hex digits are i*4099 mod 65536: every shard mod 16 gets 3.
rest=$(head -c 1500 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
DIGESTS=()
for i in $(seq 0 47); do
    DIGESTS+=("sha256:$(printf '%04x' $(((i * 4099) % 65536)))${rest:$((i * 30 * 2)):60}")
done

t=$(iso_at 0)
pushes=0 edges=0
for i in "${!DIGESTS[@]}"; do
    acr_push "$T/p$i.json" "${DIGESTS[$i]}" "1.0.$i" "$t" "evt-join-$i"
    post_acr "$T/p$i.json"
    [ "$STATUS" == 202 ] && [[ "$BODY" != *spooled* ]] && pushes=$((pushes + 1)) ||
        echo "# push $i: $STATUS $BODY" >&2
    build_event "$T/b$i.json" "${DIGESTS[$i]}" "$t" "$((700 + i))"
    post_build "$T/b$i.json"
    [ "$BODY" == '{"status":"accepted","events":1,"edges":1}' ] && edges=$((edges + 1)) ||
        echo "# build $i: $STATUS $BODY" >&2
done
check "48 pushes accepted (202, not spooled)" 48 "$pushes"
check "48 builds answered with one edge each" 48 "$edges"

# redelivery of every event: absorbed, no edge
again=0
for i in "${!DIGESTS[@]}"; do
    post_acr "$T/p$i.json"
    [ "$STATUS" == 202 ] || echo "# push $i again: $STATUS $BODY" >&2
    post_build "$T/b$i.json"
    [ "$BODY" == '{"status":"accepted","events":1,"edges":0}' ] && again=$((again + 1)) ||
        echo "# build $i again: $STATUS $BODY" >&2
done
check "48 redelivered builds: no edge" 48 "$again"

# every record of every shard's stream: "<stream shard> <type> <digest>"
all_records() {
    local s
    for s in $(seq 0 $((N - 1))); do
        cluster_cli --raw xrange "dm:{$s}:out" - + |
            awk -v s="$s" 'prev=="type"{t=$0} prev=="digest"{print s, t, $0} {prev=$0}'
    done
}
all_records > "$T/records"
check "48 confirmed records in all" 48 "$(grep -c " $CT " "$T/records" || true)"
check "each digest confirmed exactly once" "$(printf '%s\n' "${DIGESTS[@]}" | sort)" \
    "$(awk '{print $3}' "$T/records" | sort)"
misplaced=0
while read -r s _ d; do
    [ "$(shard_of "$d" "$N")" == "$s" ] || { misplaced=$((misplaced + 1)); echo "# $d in stream $s" >&2; }
done < "$T/records"
check "every record in its digest's shard stream" 0 "$misplaced"
check "edges metric" 48 "$(metric digestmap_edges_emitted_total)"
check "duplicates metric: 96 redelivered events absorbed" 96 "$(metric digestmap_duplicates_absorbed_total)"

# where the data is: per master, the mapping hashes and output streams of the shards it serves
masters=$(cluster_masters)
check "three masters serve the slots" 3 "$(wc -w <<<"$masters")"
with_data=0
total=0
for m in $masters; do
    shards=$(cluster_shards_of "$m" "$N" | paste -sd' ')
    want=0
    for s in $shards; do want=$((want + 3)); done
    got=$(ccli "$m" --scan --pattern 'dm:*:m:*' | grep -c . || true)
    streams=$(ccli "$m" --scan --pattern 'dm:*:out' | grep -c . || true)
    echo "# master $m: shards [$shards], $got mapping hashes, $streams output streams"
    check "master $m holds the mappings of its shards" "$want" "$got"
    check "master $m holds the output streams of its shards" "$(wc -w <<<"$shards")" "$streams"
    [ "$got" -gt 0 ] && with_data=$((with_data + 1))
    total=$((total + got))
done
check "joins landed on all three masters" 3 "$with_data"
check "48 mapping hashes in all" 48 "$total"

outside=0
for m in $masters; do
    while read -r k; do
        [[ "$k" =~ ^dm:\{([0-9]+)\}: ]] && [ "${BASH_REMATCH[1]}" -lt "$N" ] ||
            { outside=$((outside + 1)); echo "# key outside the shard tags: $k" >&2; }
    done < <(ccli "$m" --scan)
done
check "no key outside the tags {0}..{15}" 0 "$outside"
finish
