#!/usr/bin/env bash
# redis.shards 1, 4 and 16 (one daemon and a flushed Redis per phase), the same traffic each
# time: 40 digests pushed and built (40 edges: the two sides of a pair are posted back to back,
# with 10 s of retention as slack) and 10 pushed only (10 unmatched after a 2 s window + 8 s
# grace). Every record lands in dm:{shard(digest)}:out, no key lies outside the
# tags {0}..{N-1}, and (watched with MONITOR) every script call's keys share one hash tag, the
# one of the digest it is about.
. "$(dirname "$0")/lib.sh"
start_redis

CT=dev.digestmap.mapping.confirmed.v1
UT=dev.digestmap.mapping.unmatched.v1
CORR='"window_seconds": 2, "grace_seconds": 8, "mapping_ttl_seconds": 60, "sweep_interval_ms": 100'

# 50 digests whose first 4 hex digits are i*4099 mod 65536: every residue mod 16 (and mod 4)
# occurs, so every shard gets traffic; the rest is random.
rest=$(head -c 1500 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
DIGESTS=()
for i in $(seq 0 49); do
    DIGESTS+=("sha256:$(printf '%04x' $(((i * 4099) % 65536)))${rest:$((i * 30 * 2)):60}")
done
for d in "${DIGESTS[@]}"; do
    [[ "$d" =~ ^sha256:[0-9a-f]{64}$ ]] || die "bad digest $d"
done

# monitor_check FILE N: every EVAL/EVALSHA line's keys carry one tag {s} with s < N, and per-digest
# keys carry the digest's shard. Prints "<evalsha lines> <bad lines> <distinct tags>".
monitor_check() {
    local file=$1 n=$2 lines=0 bad=0 line nk k tag t hex
    declare -A tags=()
    # one output line per script call: numkeys key1 … keyN
    while read -r -a line; do
        lines=$((lines + 1))
        nk=${line[0]}
        tag=""
        if [ "${#line[@]}" -ne $((nk + 1)) ] || [ "$nk" -lt 1 ]; then
            bad=$((bad + 1)); echo "# bad call: ${line[*]}" >&2; continue
        fi
        for k in "${line[@]:1}"; do
            if [[ "$k" =~ ^dm:\{([0-9]+)\}:([a-z]+)(:sha256:([0-9a-f]{64}))?$ ]]; then
                t=${BASH_REMATCH[1]}
                hex=${BASH_REMATCH[4]}
                if [ -n "$hex" ] && [ $((16#${hex:0:4} % n)) -ne "$t" ]; then tag=BAD; fi
                if [ -z "$tag" ]; then tag=$t; elif [ "$tag" != "$t" ]; then tag=BAD; fi
                [ "$t" -lt "$n" ] || tag=BAD
            else
                tag=BAD
            fi
        done
        if [ "$tag" == BAD ]; then
            bad=$((bad + 1)); echo "# bad call: ${line[*]}" >&2
        else
            tags[$tag]=1
        fi
    done < <(awk '
        {
            # quoted tokens after the "[db client]" part
            s = $0; sub(/^[^]]*\] /, "", s)
            n = 0
            while (n < 40 && match(s, /"([^"\\]|\\.)*"/)) {
                tok[++n] = substr(s, RSTART + 1, RLENGTH - 2); s = substr(s, RSTART + RLENGTH)
            }
            cmd = toupper(tok[1])
            if (cmd != "EVALSHA" && cmd != "EVAL") next
            nk = tok[3] + 0
            out = nk
            for (i = 4; i < 4 + nk && i <= n; i++) out = out " " tok[i]
            print out
        }' "$file")
    echo "$lines $bad ${#tags[@]}"
}

for N in 1 4 16; do
    echo "# ---- shards $N"
    rcli flushall >/dev/null
    start_daemon "$(default_config "$CORR" | jq --argjson n "$N" '.redis.shards = $n')"
    redis-cli -s "$T/redis.sock" monitor > "$T/monitor.$N" & # not rcli: $! must be redis-cli
    MON=$!
    # MONITOR answers OK once it is attached; a PING after that shows it receives commands
    poll_until "$DM_WAIT" grep -q '^OK$' "$T/monitor.$N" || die "MONITOR did not start"
    rcli ping >/dev/null
    poll_until "$DM_WAIT" grep -qi '"ping"' "$T/monitor.$N" || die "MONITOR sees nothing"

    edges=0
    t=$(iso_at 0) # one event time for the phase: pushes and builds are 0 s apart
    for i in $(seq 0 49); do
        d=${DIGESTS[$i]}
        acr_push "$T/p.json" "$d" "1.0.$i" "$t" "evt-$N-$i"
        post_acr "$T/p.json"
        [ "$STATUS" == 202 ] || fail "shards $N: push $i answered $STATUS"
        if [ "$i" -lt 40 ]; then
            build_event "$T/b.json" "$d" "$t" "$((500 + i))"
            post_build "$T/b.json"
            [ "$BODY" == '{"status":"accepted","events":1,"edges":1}' ] && edges=$((edges + 1))
        fi
    done
    check "shards $N: 40 builds answered with an edge" 40 "$edges"

    # all records, from every shard's stream: "<stream shard> <type> <digest>"
    all_records() {
        for s in $(seq 0 $((N - 1))); do
            rcli --raw xrange "dm:{$s}:out" - + |
                awk -v s="$s" 'prev=="type"{t=$0} prev=="digest"{print s, t, $0} {prev=$0}'
        done
    }
    count_type() { all_records | grep -c " $1 " || true; }
    check "shards $N: 10 unmatched records" 10 "$(wait_count 10 60 count_type "$UT")"
    # every item swept (the schedules empty): every sweep since the reports could report twice
    due_total() { local s n=0; for s in $(seq 0 $((N - 1))); do n=$((n + $(rcli zcard "dm:{$s}:due"))); done; echo $n; }
    check "shards $N: every schedule swept empty" 0 "$(wait_count 0 60 due_total)"
    kill "$MON" 2>/dev/null || true
    wait "$MON" 2>/dev/null || true
    check "shards $N: 40 confirmed records" 40 "$(count_type "$CT")"
    check "shards $N: still 10 unmatched records" 10 "$(count_type "$UT")"
    check "shards $N: 50 records in all" 50 "$(all_records | wc -l)"
    misplaced=0
    while read -r s t d; do
        [ "$(shard_of "$d" "$N")" == "$s" ] || { misplaced=$((misplaced + 1)); echo "# $d in stream $s" >&2; }
    done < <(all_records)
    check "shards $N: every record in its digest's shard stream" 0 "$misplaced"
    check "shards $N: the unmatched digests are the 10 unbuilt ones" \
        "$(printf '%s\n' "${DIGESTS[@]:40}" | sort)" "$(all_records | awk -v t="$UT" '$2 == t {print $3}' | sort)"
    check "shards $N: one output stream per shard" "$N" "$(rcli --scan --pattern 'dm:*:out' | wc -l)"
    check "shards $N: unmatched metric" 10 "$(metric digestmap_unmatched_registry_total)"
    check "shards $N: edges metric" 40 "$(metric digestmap_edges_emitted_total)"
    check "shards $N: parked pushes gauge back to 0" 0 "$(wait_count 0 60 metric digestmap_parked_registry_items)"
    check "shards $N: no parked keys left" "" "$(rcli keys 'dm:*:[rb]:*')"

    outside=0
    nkeys=0
    while read -r k; do
        nkeys=$((nkeys + 1))
        if [[ "$k" =~ ^dm:\{([0-9]+)\}: ]] && [ "${BASH_REMATCH[1]}" -lt "$N" ]; then :; else
            outside=$((outside + 1)); echo "# key outside the shard tags: $k" >&2
        fi
    done < <(rcli --scan)
    check_match "shards $N: keys exist (got $nkeys)" '^[1-9][0-9]+$' "$nkeys"
    check "shards $N: no key outside {0}..{$((N - 1))}" 0 "$outside"

    read -r lines bad ntags < <(monitor_check "$T/monitor.$N" "$N")
    echo "# shards $N: $lines script calls seen, $ntags distinct tags"
    check_match "shards $N: MONITOR saw script calls" '^[1-9][0-9]*$' "$lines"
    check_match "shards $N: MONITOR saw >= 100 EVALSHA (one per event)" '^([1-9][0-9]{2,})$' \
        "$(grep -c '"EVALSHA"' "$T/monitor.$N" || true)"
    check "shards $N: every script call's keys share the digest's tag" 0 "$bad"
    check "shards $N: script calls on every shard" "$N" "$ntags"
    stop_daemon
done
finish
