#!/usr/bin/env bash
# The command-line client `digestmap` (build/bin/digestmap) against a real redis-server and the
# real daemon: send-build (HMAC) + an ACR push make a mapping; tail prints it (plain, from the
# start, and through a consumer group that acknowledges, resumes a killed consumer's pending
# records, lets another consumer take over a dead one's records with XAUTOCLAIM, and exits 0
# on SIGTERM); query prints known / unknown / malformed digests; usage
# errors exit 2; with 4 shards tail reads every shard's stream.
. "$(dirname "$0")/lib.sh"

CLI="$(dirname "$DIGESTMAPD")/digestmap"
[ -x "$CLI" ] || die "no client binary at $CLI"

# Every client run is bounded (a test that hangs fails instead); --foreground keeps `timeout`
# in the test's process group, so the watchdog of lib.sh reaches it.
TIMEOUT=(timeout --foreground 120)

# cli ARGS...: run the client; sets RC, OUT (stdout) and ERR (stderr).
cli() {
    RC=0
    OUT=$("${TIMEOUT[@]}" "$CLI" "$@" 2>"$T/cli.err") || RC=$?
    ERR=$(cat "$T/cli.err")
    cat "$T/cli.err" >> "$T/cli-all.err"
}

# wait_blocked CMD: wait until a Redis client is blocked in CMD (xread or xreadgroup).
wait_blocked() {
    _blocked_in() { rcli client list | grep -qE "flags=[A-Za-z]*b[A-Za-z]* .*cmd=$1 "; }
    poll_until "$DM_WAIT" _blocked_in "$1" || fail "no client blocked in $1"
}

# bg_client OUT ARGS...: start the client in the background under TIMEOUT (a test that misses
# its event fails instead of hanging), stdout to OUT. Sets BG (the timeout process: wait on it
# for the exit status) and BGPID (the client itself: signal that one).
bg_client() {
    local out=$1
    shift
    "${TIMEOUT[@]}" "$CLI" "$@" >"$out" 2>>"$T/cli-all.err" &
    BG=$!
    BGPID=""
    _client_started() { BGPID=$(pgrep -P "$BG" || true); [ -n "$BGPID" ]; }
    poll_until "$DM_WAIT" _client_started || fail "client of timeout $BG did not start"
}

# wait_bg: wait for the BG client; sets BGRC.
wait_bg() {
    BGRC=0
    wait "$BG" || BGRC=$?
}

# lines FILE: its number of lines.
lines() {
    wc -l <"$1"
}

# pending GROUP [STREAM]: entries of GROUP not yet acknowledged on STREAM (default dm:{0}:out).
pending() {
    rcli xpending "${2:-dm:{0\}:out}" "$1" | head -n 1
}

# mapping DIGEST RUN_ID TAG: send-build through the client, then the ACR push: one edge.
mapping() {
    cli --config "$CONF" --url "$URL" send-build --image contoso.azurecr.io/team/api \
        --digest "$1" --tag "$3" --provider github --repository acme/api --run-id "$2" \
        --commit 3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d --ref refs/heads/main \
        --built-at "$(iso_at -10)"
    [ "$RC" == 0 ] || fail "send-build $1: exit $RC: $ERR"
    acr_push "$T/push.json" "$1" "$3" "$(iso_at -5)"
    post_acr "$T/push.json"
    [ "$BODY" == '{"status":"accepted","events":1,"edges":1}' ] || fail "push $1: $STATUS $BODY"
}

# --- usage ---
cli --version
check "--version" "0 digestmap 0.1.0" "$RC $OUT"
cli --help
check "--help exits 0" 0 "$RC"
check_match "--help lists the commands" 'usage: digestmap .*tail.*query.*send-build' "$(tr '\n' ' ' <<<"$OUT")"
cli tail --help
check_match "tail --help describes --group" '--group G' "$OUT"
cli send-build --help
check_match "send-build --help describes the signature" 'HMAC-SHA256' "$OUT"
cli
check "no command: exit 2" 2 "$RC"
check_match "no command: message" 'a command is required' "$ERR"
cli frobnicate
check "unknown command: exit 2" 2 "$RC"
check_match "unknown command: message" 'unknown command "frobnicate"' "$ERR"
cli tail --no-such-flag
check "unknown option: exit 2" 2 "$RC"
check_match "unknown option: message" 'tail: unknown option --no-such-flag' "$ERR"
cli tail --count 0
check "--count 0: exit 2" 2 "$RC"
cli tail --count
check_match "--count without value" 'option --count needs a value' "$ERR"
cli query
check "query without digest: exit 2" 2 "$RC"
cli query a b
check "query with two digests: exit 2" 2 "$RC"
cli send-build --digest "$(random_digest)"
check "send-build without --image: exit 2" "2 digestmap: send-build: --image NAME is required" \
    "$RC $(head -n 1 <<<"$ERR")"
cli --shards 2000 tail
check "--shards out of range: exit 2" 2 "$RC"
cli --redis 'http://x' tail
check "--redis with another scheme: exit 2" 2 "$RC"
# --redis takes exactly digestmapd's redis.url forms (the same parser, the same reasons)
cli --redis 'redis://:@127.0.0.1' tail
check "--redis with an empty password: exit 2" "2 digestmap: tail: --redis: the password in the url is empty" \
    "$RC $(head -n 1 <<<"$ERR")"
cli --redis 'unix://host/x.sock' tail
check "--redis unix://host/path: exit 2" 2 "$RC"
check_match "unix://host/path: the daemon's reason" 'expected unix:///absolute/path\.sock' "$ERR"
cli --redis "unix:///$(printf 'a%.0s' $(seq 1 120)).sock" tail
check "--redis with a socket path too long: exit 2" 2 "$RC"
check_match "socket path too long: named" 'the socket path is longer than 107 bytes' "$ERR"
cli --redis 'redis://bad_name:6379' tail
check "--redis with a malformed host name: exit 2" 2 "$RC"
check_match "malformed host name: the daemon's reason" 'is neither an IPv4 address nor a DNS name' "$ERR"
# A host name is taken (hiredis resolves it); nothing listens on port 1, so it is unreachable.
cli --redis 'redis://localhost:1' tail --count 1
check "--redis with a host name: taken, then unreachable (exit 1)" 1 "$RC"
cli --redis 'redis://:pw@127.0.0.1' --prefix 'a{b}' tail
check "--prefix with a brace: exit 2" 2 "$RC"
cli tail --claim-idle-ms 500
check "--claim-idle-ms without --group: exit 2" 2 "$RC"
cli --token 'Bearer x' send-build --image a --digest "$(random_digest)" --secret s
check "send-build with --secret and --token: exit 2" 2 "$RC"
check_match "--secret and --token: message" 'not both' "$ERR"

# --- operational failures name the cause ---
cli --redis "unix:$T/nope.sock" tail --count 1
check "unreachable redis: exit 1" 1 "$RC"
check "unreachable redis: message" \
    "digestmap: cannot connect to redis at $T/nope.sock: No such file or directory" "$ERR"
cli --url http://127.0.0.1:1 query "$(random_digest)"
check "unreachable API: exit 1" 1 "$RC"
check_match "unreachable API: message" 'http://127.0.0.1:1: connection failed: Connection refused' "$ERR"
cli --config "$T/missing.json" tail
check "missing config: exit 1" 1 "$RC"
check_match "missing config: names the file" 'missing\.json' "$ERR"

start_redis
start_daemon
CONF=$T/config.json
URL=http://127.0.0.1:$PORT

# --- send-build: signed with the config's hmac-sha256 entry ---
d1=$(random_digest)
mapping "$d1" 2001 1.4.0
check "send-build answer" accepted "$(jq -r .status <<<"$OUT")"
d0=$(random_digest)
cli --url "$URL" send-build --image contoso.azurecr.io/team/api --digest "$d0" --run-id 1 \
    --secret wrong-secret
check "send-build with a wrong secret: exit 1" 1 "$RC"
check_match "wrong secret: status on stderr" 'HTTP 401' "$ERR"
CI_SECRET=ci-secret cli --url "$URL" send-build --image contoso.azurecr.io/team/api \
    --digest "$d0" --run-id 1 --secret-env CI_SECRET
check "send-build with --secret-env (no config): exit 0" 0 "$RC"
cli --url "$URL" send-build --image contoso.azurecr.io/team/api --digest "$d0" --run-id 1
check "send-build without any credential: exit 1" 1 "$RC"
cli --config "$CONF" --url "$URL" send-build --image x --digest sha256:nothex --run-id 1
check "send-build of a bad digest: exit 1" 1 "$RC"
check_match "bad digest: the 400 error on stderr" 'HTTP 400: images\[0\]\.digest' "$ERR"
cli --config "$CONF" --url "$URL" send-build --image x --digest "$d0" --run-id 1 --path /nope
check "send-build --config --path matching no source: exit 1" 1 "$RC"
check "--path matching no source: message" \
    "digestmap: send-build: no credentials: $CONF has no build source at /nope; give --secret, --secret-env or --token" \
    "$ERR"
# stdout write errors are failures
if [ -w /dev/full ]; then
    RC=0
    "$CLI" --config "$CONF" --url "$URL" query "$d1" >/dev/full 2>"$T/full.err" || RC=$?
    check "query >/dev/full: exit 1" 1 "$RC"
    check_match "query >/dev/full: message" 'cannot write to stdout: No space left on device' "$(cat "$T/full.err")"
    RC=0
    "$CLI" --config "$CONF" --url "$URL" send-build --image contoso.azurecr.io/team/api \
        --digest "$d0" --run-id 1 >/dev/full 2>"$T/full.err" || RC=$?
    check "send-build >/dev/full: exit 1" 1 "$RC"
fi

# --- tail from the start: the mapping's record ---
cli --config "$CONF" tail --from-start --count 1
check "tail --from-start --count 1: exit 0" 0 "$RC"
check "tail prints one line" 1 "$(wc -l <<<"$OUT")"
check "record type" dev.digestmap.mapping.confirmed.v1 "$(jq -r .type <<<"$OUT")"
check "record subject" "$d1" "$(jq -r .subject <<<"$OUT")"
check "record run id" 2001 "$(jq -r .data.build.run_id <<<"$OUT")"
check "record commit" 3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d "$(jq -r .data.build.commit <<<"$OUT")"
check "record tags" '["1.4.0"]' "$(jq -c .data.image.tags <<<"$OUT")"
check "record is the stream's event field" "$(stream_events | head -n 1)" "$OUT"

# --- query ---
cli --config "$CONF" --url "$URL" query "$d1"
check "query known digest: exit 0" 0 "$RC"
check "query digest" "$d1" "$(jq -r .digest <<<"$OUT")"
check "query mapping run id" 2001 "$(jq -r '.mappings[0].build.run_id' <<<"$OUT")"
check_match "query answer is pretty-printed" $'^\\{\n  "' "$OUT"
cli --config "$CONF" --url "$URL" query "$(random_digest)"
check "query unknown digest: exit 1" 1 "$RC"
check "unknown digest: the answer is printed (JSON)" 0 "$(jq -e . <<<"$OUT" >/dev/null; echo $?)"
check_match "unknown digest: stderr" 'not found \(HTTP 404\)' "$ERR"
cli --config "$CONF" --url "$URL" query sha256:ABC
check "query malformed digest: exit 1" 1 "$RC"
check "malformed digest: the 400 error on stderr" \
    "digestmap: query sha256:ABC: HTTP 400: digest: must be sha256: followed by 64 lowercase hex digits" "$ERR"
cli --url "$URL" --token 'Bearer api-token' query "$d1"
check "query with --token and no config: exit 0" 0 "$RC"
cli --url "$URL" --token 'Bearer nope' query "$d1"
check "query with a wrong token: exit 1" 1 "$RC"
check_match "wrong token: 401 on stderr" 'HTTP 401' "$ERR"

# --- a config whose secrets are not all set here: each command needs only its own ---
# The daemon's config with the build source's, the API's and a webhook sink's secrets in
# environment variables that are unset (the sink's stays unset throughout).
unset DM_TEST_CI_TOKEN DM_TEST_CI_SECRET DM_TEST_API_TOKEN DM_TEST_SINK_SECRET
jq '.sources[1].auth[0] |= (del(.value) | .value_env = "DM_TEST_CI_TOKEN")
    | .sources[1].auth[1] |= (del(.secret) | .secret_env = "DM_TEST_CI_SECRET")
    | .api.auth[0] |= (del(.value) | .value_env = "DM_TEST_API_TOKEN")
    | .outputs.webhooks = [{"url": "http://127.0.0.1:9/hook", "secret_env": "DM_TEST_SINK_SECRET"}]' \
    "$CONF" > "$T/secrets.json"
SC=$T/secrets.json
cli --config "$SC" tail --from-start --count 1
check "unset sink/API/build secrets: tail still runs" "0 $d1" "$RC $(jq -r .subject <<<"$OUT")"
cli --config "$SC" --url "$URL" query "$d1"
check "unset API secret: query without --token fails naming the key and the variable" \
    "1 digestmap: $SC: api.auth[0].value_env: environment variable \"DM_TEST_API_TOKEN\" is not set or empty" \
    "$RC $(head -n 1 <<<"$ERR")"
check_match "unset API secret: the way out is named" 'give --token' "$ERR"
cli --config "$SC" --url "$URL" --token 'Bearer api-token' query "$d1"
check "unset API secret: query with --token works" "0 $d1" "$RC $(jq -r .digest <<<"$OUT")"
DM_TEST_API_TOKEN='Bearer api-token' cli --config "$SC" --url "$URL" query "$d1"
check "API secret set: query uses it (the sink's is still unset)" "0 $d1" \
    "$RC $(jq -r .digest <<<"$OUT")"
d4=$(random_digest)
cli --config "$SC" --url "$URL" send-build --image contoso.azurecr.io/team/api --digest "$d4" \
    --run-id 4
check "unset build secrets: send-build without a credential fails naming the hmac entry" \
    "1 digestmap: $SC: sources[1].auth[1].secret_env: environment variable \"DM_TEST_CI_SECRET\" is not set or empty" \
    "$RC $(head -n 1 <<<"$ERR")"
cli --config "$SC" --url "$URL" send-build --image contoso.azurecr.io/team/api --digest "$d4" \
    --run-id 4 --secret ci-secret
check "unset build secrets: send-build with --secret works" "0 accepted" \
    "$RC $(jq -r .status <<<"$OUT")"
DM_TEST_CI_TOKEN='Bearer ci-token' cli --config "$SC" --url "$URL" send-build \
    --image contoso.azurecr.io/team/api --digest "$d4" --run-id 4
check "hmac secret unset, header value set: send-build sends the header" "0 accepted" \
    "$RC $(jq -r .status <<<"$OUT")"
# the daemon still refuses the very same file, at the first unset variable
RC=0
"${TIMEOUT[@]}" "$DIGESTMAPD" --config "$SC" >/dev/null 2>"$T/refused.err" || RC=$?
check "digestmapd refuses the config with unset secrets" \
    "1 digestmapd: $SC: sources[1].auth[0].value_env: environment variable \"DM_TEST_CI_TOKEN\" is not set or empty" \
    "$RC $(cat "$T/refused.err")"
DM_TEST_CI_TOKEN=x DM_TEST_CI_SECRET=x DM_TEST_API_TOKEN=x "${TIMEOUT[@]}" "$DIGESTMAPD" \
    --config "$SC" --check-config >/dev/null 2>"$T/refused.err" && RC=0 || RC=$?
check "digestmapd refuses it while the sink's variable is unset" \
    "1 digestmapd: $SC: outputs.webhooks[0].secret_env: environment variable \"DM_TEST_SINK_SECRET\" is not set or empty" \
    "$RC $(cat "$T/refused.err")"

# --- consumer group: each run acknowledges what it printed ---
d2=$(random_digest)
mapping "$d2" 2002 2.0.0
cli --config "$CONF" tail --group g1 --consumer c1 --from-start --count 1
check "group run 1: exit 0" 0 "$RC"
check "group run 1 prints the first record" "$d1" "$(jq -r .subject <<<"$OUT")"
check "group run 1 acknowledged it" 0 "$(pending g1)"
cli --config "$CONF" tail --group g1 --consumer c1 --count 1
check "group run 2 prints the next record" "$d2" "$(jq -r .subject <<<"$OUT")"
check "group run 2 acknowledged it" 0 "$(pending g1)"
check "one group on the stream" 1 "$(rcli xinfo groups 'dm:{0}:out' | grep -c '^g1$')"

# --- a consumer killed before acknowledging: its records stay pending and come back ---
# Stream kp:{0}:out, fed here with XADD. The consumer is stopped (SIGSTOP) while blocked in
# XREADGROUP; Redis then delivers the records to it (they become pending on it), but it can
# neither print nor acknowledge them before kill -9.
K='kp:{0}:out'
RURL="unix://$T/redis.sock"
# stuck_consumer NAME ID...: records delivered to consumer NAME of group g2, which then dies.
stuck_consumer() {
    local name=$1 n=0 cmds=""
    shift
    bg_client "$T/$name.out" --redis "$RURL" --prefix kp tail --group g2 --consumer "$name" \
        --block-ms 60000
    wait_blocked xreadgroup
    kill -STOP "$BGPID"
    for v in "$@"; do cmds="${cmds}XADD $K * event '{\"k\":$v}'"$'\n'; n=$((n + 1)); done
    # Taken before the delivery, so a lower bound of it: "now - TDELIV < X" proves the
    # records were idle less than X, and "t - TDELIV >= X" is implied by an idle time >= X.
    TDELIV=$(date +%s%N)
    # one transaction: the blocked read is served once, with all of them
    printf 'MULTI\n%sEXEC\n' "$cmds" | rcli >/dev/null
    got=$(wait_count "$n" 60 pending g2 "$K")
    check "consumer $name: all $n records delivered, none acknowledged" "$n" "$got"
    check "consumer $name: the pending records are its own" "$name $n" \
        "$(rcli xpending "$K" g2 | tail -n 2 | tr '\n' ' ' | sed 's/ $//')"
    kill -9 "$BGPID"
    wait_bg
    check "consumer $name: killed, printed nothing" "137 0" "$BGRC $(wc -c <"$T/$name.out")"
}
stuck_consumer c2 1 2
check "after kill -9: still pending" 2 "$(pending g2 "$K")"
cli --redis "$RURL" --prefix kp tail --group g2 --consumer c2 --count 2
check "restarted consumer: exit 0" 0 "$RC"
check "restarted consumer re-reads its pending records" '{"k":1} {"k":2}' "$(tr '\n' ' ' <<<"$OUT" | sed 's/ $//')"
check "restarted consumer acknowledged them" 0 "$(pending g2 "$K")"
check "restarted consumer, nothing pending: removed from the group on exit" "" \
    "$(rcli xinfo consumers "$K" g2 | grep -x c2 || true)"

# --- another consumer takes over a dead consumer's records (XAUTOCLAIM) ---
stuck_consumer c5 3 4
# with the default --claim-idle-ms (60 s) a new consumer leaves them alone
bg_client "$T/c3.out" --redis "$RURL" --prefix kp tail --group g2 --consumer c3 --count 1
wait_blocked xreadgroup
kill -TERM "$BGPID"
wait_bg
check "default claim idle time: another consumer takes nothing (and exits 0 on SIGTERM)" "0 0" \
    "$BGRC $(wc -c <"$T/c3.out")"
check "default claim idle time: still c5's" "c5 2" \
    "$(rcli xpending "$K" g2 | tail -n 2 | tr '\n' ' ' | sed 's/ $//')"
# with --claim-idle-ms 1500 it takes them once they were pending that long (and not before;
# 1.5 s rather than less so that the steps above surely take less)
bg_client "$T/c4.out" --redis "$RURL" --prefix kp tail --group g2 --consumer c4 \
    --claim-idle-ms 1500 --block-ms 100 --count 2
wait_blocked xreadgroup
if [ $((($(date +%s%N) - TDELIV) / 1000000)) -lt 1400 ]; then
    check "XAUTOCLAIM: nothing taken before the idle time" "0 c5 2" \
        "$(wc -c <"$T/c4.out") $(rcli xpending "$K" g2 | tail -n 2 | tr '\n' ' ' | sed 's/ $//')"
else
    echo "# skipped the before-idle check: too slow"
fi
wait_bg
t1=$(date +%s%N)
check "XAUTOCLAIM: exit 0 after --count records" 0 "$BGRC"
check "XAUTOCLAIM: the dead consumer's records printed" '{"k":3} {"k":4}' \
    "$(tr '\n' ' ' <"$T/c4.out" | sed 's/ $//')"
check "XAUTOCLAIM: and acknowledged" 0 "$(pending g2 "$K")"
check "XAUTOCLAIM: only after they were pending 1500 ms" yes \
    "$([ $(((t1 - TDELIV) / 1000000)) -ge 1500 ] && echo yes || echo no)"
# a pending record trimmed away is acknowledged without being printed; --count is respected
stuck_consumer c6 5 6
first=$(rcli --raw xrange "$K" - + | tail -n 6 | head -n 1)
rcli xdel "$K" "$first" >/dev/null
cli --redis "$RURL" --prefix kp tail --group g2 --consumer c7 --claim-idle-ms 1 --count 1
check "XAUTOCLAIM with a trimmed record: exit 0" 0 "$RC"
check "XAUTOCLAIM with a trimmed record: prints the other one" '{"k":6}' "$OUT"
check_match "XAUTOCLAIM: the trimmed record is named" "entry $first no longer exists" "$ERR"
check "XAUTOCLAIM: nothing left pending" 0 "$(pending g2 "$K")"

# --- SIGTERM: a following consumer exits 0 at once, everything printed is acknowledged ---
bg_client "$T/g3.out" --config "$CONF" tail --group g3 --from-start --block-ms 60000
got=$(wait_count 2 60 lines "$T/g3.out")
check "follower printed both records" 2 "$got"
wait_blocked xreadgroup
check "follower acknowledged both records" 0 "$(pending g3)"
follower=$(rcli --raw xinfo consumers 'dm:{0}:out' g3 | head -n 2 | tail -n 1)
check_match "follower: default consumer name <hostname>:<pid>" ":$BGPID\$" "$follower"
t0=$(date +%s%N)
kill -TERM "$BGPID"
wait_bg
t1=$(date +%s%N)
check "SIGTERM: exit 0" 0 "$BGRC"
check "SIGTERM: the consumer (nothing pending) left the group" 0 \
    "$(rcli xinfo consumers 'dm:{0}:out' g3 | grep -c .)"
# "at once": long before the 60 s block would end (a loaded machine takes seconds to schedule
# the exit, which also removes the consumer from the group)
check "SIGTERM ends a 60 s blocking read at once ($(((t1 - t0) / 1000000)) ms < 30000)" yes \
    "$([ $(((t1 - t0) / 1000000)) -lt 30000 ] && echo yes || echo no)"

# --- plain tail follows new records ---
bg_client "$T/follow.out" --config "$CONF" tail --count 1
wait_blocked xread
d3=$(random_digest)
mapping "$d3" 2003 3.0.0
wait_bg
check "plain tail: exit 0 after --count records" 0 "$BGRC"
check "plain tail prints only the new record" "$d3" "$(jq -r .subject <"$T/follow.out")"

# --- flags instead of the config ---
cli --redis "unix://$T/redis.sock" tail --from-start --count 3
check "tail with --redis: three records" "$d1 $d2 $d3" "$(jq -r .subject <<<"$OUT" | tr '\n' ' ' | sed 's/ $//')"
bg_client /dev/null --redis "unix://$T/redis.sock" --prefix other tail
wait_blocked xread
kill -INT "$BGPID"
wait_bg
check "plain tail: SIGINT exits 0" 0 "$BGRC"
check "plain tail creates no stream" 0 "$(rcli exists 'other:{0}:out')"

stop_daemon

# --- 4 shards: tail reads every shard's stream ---
rcli flushall >/dev/null
start_daemon "$(default_config | jq '.redis.shards = 4')"
URL=http://127.0.0.1:$PORT
rest=$(head -c 30 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
SD=()
for s in 0 1 2 3; do
    d="sha256:000${s}${rest}"
    SD+=("$d")
    mapping "$d" "300$s" "4.$s"
done
for s in 0 1 2 3; do
    check "shard $s stream has its record" 1 "$(rcli xlen "dm:{$s}:out")"
done
want=$(printf '%s\n' "${SD[@]}" | sort | tr '\n' ' ')
cli --config "$CONF" tail --from-start --count 4
check "4 shards: tail prints every shard's record" "$want" "$(jq -r .subject <<<"$OUT" | sort | tr '\n' ' ')"
# one record per run through a group, each run a new consumer: nothing may stay pending
seen=""
for i in 1 2 3 4; do
    cli --config "$CONF" tail --group gs --from-start --count 1
    seen="$seen$(jq -r .subject <<<"$OUT")"$'\n'
    total=0
    for s in 0 1 2 3; do total=$((total + $(pending gs "dm:{$s}:out"))); done
    check "4 shards, group run $i: one record, nothing left pending" "1 0" "$(wc -l <<<"$OUT") $total"
done
check "4 shards, group: the 4 runs printed the 4 records" "$want" "$(sort <<<"$seen" | sed '/^$/d' | tr '\n' ' ')"
cli --config "$CONF" tail --group gt --from-start --count 4
check "4 shards, group --count 4" "$want" "$(jq -r .subject <<<"$OUT" | sort | tr '\n' ' ')"

# --- Redis with a password and a database number (from the config, and from --redis) ---
spawn_redis "$T/auth.sock" "$T/auth.log" --requirepass s3cret
redis-cli -s "$T/auth.sock" -a s3cret --no-auth-warning -n 3 \
    xadd 'dm:{0}:out' '*' type t digest d event '{"db":3}' >/dev/null
jq --arg u "unix://$T/auth.sock?db=3" '.redis.url = $u | .redis.password_env = "DM_TEST_REDIS_PW"' \
    "$CONF" > "$T/auth.json"
DM_TEST_REDIS_PW=s3cret cli --config "$T/auth.json" tail --from-start --count 1
check "redis password and db from the config (password_env)" '0 {"db":3}' "$RC $OUT"
DM_TEST_REDIS_PW=wrong cli --config "$T/auth.json" tail --from-start --count 1
check "wrong redis password: exit 1" 1 "$RC"
check_match "wrong redis password: message" "redis at $T/auth.sock: AUTH refused: WRONGPASS" "$ERR"
cli --config "$T/auth.json" tail --from-start --count 1
check "tail, redis password_env unset: fails naming the key and the variable" \
    "1 digestmap: $T/auth.json: redis.password_env: environment variable \"DM_TEST_REDIS_PW\" is not set or empty" \
    "$RC $ERR"
# query does not need the Redis password
cli --config "$T/auth.json" --url "$URL" query "${SD[0]}"
check "redis password_env unset: query still works" "0 ${SD[0]}" "$RC $(jq -r .digest <<<"$OUT")"
# the same over TCP, the password in --redis (percent-encoded user info)
tcp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-cli -s "$T/auth.sock" -a s3cret --no-auth-warning config set port "$tcp" >/dev/null
cli --redis "redis://:s3%63ret@127.0.0.1:$tcp/3" tail --from-start --count 1
check "--redis redis://:password@host:port/db" '0 {"db":3}' "$RC $OUT"
cli --redis "redis://127.0.0.1:$tcp/3" tail --from-start --count 1
check_match "no password: the refusal is named" "redis at 127.0.0.1:$tcp: SELECT refused: NOAUTH" "$ERR"

# --- https: certificate verification and what the client sends ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$T/tls.key" -out "$T/tls.crt" \
    2>/dev/null
python3 "$DM_SRC/tests/integration/client/https_echo.py" "$T/tls.crt" "$T/tls.key" "$T/tls.port" &
echo_pid=$!
at_exit 'kill "$echo_pid" 2>/dev/null'
poll_until "$DM_WAIT" test -s "$T/tls.port" || die "https_echo.py did not start"
TLS_PORT=$(cat "$T/tls.port")
cli --url "https://127.0.0.1:$TLS_PORT" --token 'Bearer t' query "$d1"
check "https with an untrusted certificate: exit 1" 1 "$RC"
check_match "untrusted certificate: named" 'TLS: .*certificate verify failed \(self-signed certificate\)' "$ERR"
cli --url "https://127.0.0.1:$TLS_PORT" --cacert "$T/tls.crt" --token 'Bearer t' query "$d1"
check "https to an address the certificate does not name: exit 1" 1 "$RC"
check_match "name mismatch: named" 'TLS: .*\((IP address|hostname) mismatch\)' "$ERR"
cli --url "https://localhost:$TLS_PORT" --cacert "$T/tls.crt" --token 'Bearer t' query "$d1"
check "https with --cacert: exit 0" 0 "$RC"
check "https: the path" "/v1/images/$d1" "$(jq -r .path <<<"$OUT" | sed 's/%3A/:/')"
check "https: the token" "Bearer t" "$(jq -r .headers.authorization <<<"$OUT")"
cli --url "https://localhost:$TLS_PORT/base/" --cacert "$T/tls.crt" send-build --secret k2 \
    --image reg.example/x --digest "$d1" --tag a --tag b --manifest "$d2" --run-id 7 \
    --provider gitlab --run-attempt 2
check "https send-build: exit 0" 0 "$RC"
check "send-build: the URL's path prefix is kept" /base/v1/builds "$(jq -r .path <<<"$OUT")"
jq -j .body <<<"$OUT" > "$T/sent.json"
check "send-build: signature is HMAC-SHA256 of the body sent" "$(hmac_sig "$T/sent.json" k2)" \
    "$(jq -r '.headers["x-digestmap-signature"]' <<<"$OUT")"
check "send-build: the body" \
    '{"images":[{"name":"reg.example/x","digest":"'"$d1"'","tags":["a","b"],"manifests":["'"$d2"'"]}],"run":{"provider":"gitlab","run_id":"7","run_attempt":"2"}}' \
    "$(cat "$T/sent.json")"
check "send-build: content type" application/json "$(jq -r '.headers["content-type"]' <<<"$OUT")"
kill "$echo_pid" 2>/dev/null || true

if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/cli-all.err"; then
    fail "sanitizer report from the client"
    grep -E -A20 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/cli-all.err" >&2 | head -40
fi
finish
