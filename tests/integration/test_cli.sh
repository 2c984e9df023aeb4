#!/usr/bin/env bash
# digestmapd's command line (README.md, "Running it"): --version, --help, --check-config,
# exit codes, config errors, SIGINT/SIGTERM, and the embedded redis-server started and stopped
# by digestmapd.
. "$(dirname "$0")/lib.sh"

out=$("$DIGESTMAPD" --version 2>/dev/null) && rc=0 || rc=$?
check "--version exit status" 0 "$rc"
check "--version output" "digestmapd 0.1.0" "$out"
out=$("$DIGESTMAPD" --help 2>/dev/null) && rc=0 || rc=$?
check "--help exit status" 0 "$rc"
check_match "--help prints usage on stdout" 'usage: digestmapd --config FILE' "$out"
"$DIGESTMAPD" >/dev/null 2>"$T/err" && rc=0 || rc=$?
check "no --config: exit 2" 2 "$rc"
check_match "no --config: message" '--config FILE is required' "$(cat "$T/err")"
"$DIGESTMAPD" --check-config >/dev/null 2>&1 && rc=0 || rc=$?
check "--check-config without --config: exit 2" 2 "$rc"
"$DIGESTMAPD" --no-such-flag >/dev/null 2>&1 && rc=0 || rc=$?
check "unknown argument: exit 2" 2 "$rc"

# a valid configuration (the tests' default) checks without any Redis running
default_config > "$T/good.json"
out=$("$DIGESTMAPD" --check-config --config "$T/good.json" 2>"$T/err") && rc=0 || rc=$?
check "--check-config valid: exit 0" 0 "$rc"
check_match "--check-config valid: stdout" 'configuration is valid' "$out"
"$DIGESTMAPD" --check-config --config "$T/missing.json" >/dev/null 2>"$T/err" && rc=0 || rc=$?
check "--check-config of a missing file: exit 1" 1 "$rc"
check_match "missing file: message names the file" 'missing\.json' "$(cat "$T/err")"

# unknown keys are errors, at any level
jq '.correlation.window_secondz = 5' "$T/good.json" > "$T/typo.json"
out=$("$DIGESTMAPD" --check-config --config "$T/typo.json" 2>"$T/err") && rc=0 || rc=$?
check "unknown key: exit 1" 1 "$rc"
check_match "unknown key: stderr names it" 'window_secondz' "$(cat "$T/err")"
check "unknown key: nothing on stdout" "" "$out"
jq '.listn = "127.0.0.1:1"' "$T/good.json" > "$T/typo2.json"
"$DIGESTMAPD" --check-config --config "$T/typo2.json" >/dev/null 2>"$T/err" && rc=0 || rc=$?
check "unknown top-level key: exit 1" 1 "$rc"
check_match "unknown top-level key: stderr names it" 'listn' "$(cat "$T/err")"
jq '.sources[0].auth[0].valeu = "x"' "$T/good.json" > "$T/typo3.json"
"$DIGESTMAPD" --check-config --config "$T/typo3.json" >/dev/null 2>"$T/err" && rc=0 || rc=$?
check "unknown key in an auth entry: exit 1" 1 "$rc"
check_match "unknown key in an auth entry: stderr names it" 'valeu' "$(cat "$T/err")"

# a source without "auth" refuses to start (and fails --check-config)
jq 'del(.sources[0].auth)' "$T/good.json" > "$T/noauth.json"
"$DIGESTMAPD" --check-config --config "$T/noauth.json" >/dev/null 2>"$T/err" && rc=0 || rc=$?
check "source without auth, --check-config: exit 1" 1 "$rc"
check_match "source without auth: message" '"auth" is required' "$(cat "$T/err")"
timeout --foreground 120 "$DIGESTMAPD" --config "$T/noauth.json" >/dev/null 2>"$T/err" && rc=0 || rc=$?
check "source without auth refuses to start: exit 1" 1 "$rc"
check_match "refusal message" '"auth" is required' "$(cat "$T/err")"

# SIGINT ends a running daemon with 0 (start_daemon's stop uses SIGTERM, covered by finish)
start_redis
start_daemon
kill -INT "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
check "SIGINT: exit 0" 0 "$rc"
stop_redis

# embedded Redis: no redis.url, data_dir $T/embedded
E=$T/embedded
start_daemon "$(cat <<JSON
{
  "listen": "127.0.0.1:0",
  "workers": 2,
  "data_dir": "$E",
  "sources": [
    { "type": "acr", "path": "/v1/registry/acr",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer acr-token"} ] },
    { "type": "build", "path": "/v1/builds",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer ci-token"} ] }
  ],
  "api": { "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer api-token"} ] }
}
JSON
)"
request GET /readyz
check "embedded: /readyz" 200 "$STATUS"
check "embedded: redis.sock exists in data_dir" yes "$([ -S "$E/redis.sock" ] && echo yes || echo no)"
check "embedded: redis answers on the socket" PONG "$(redis-cli -s "$E/redis.sock" ping 2>&1)"
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0.0 "$(iso_at -10)"
post_acr "$T/p.json"
check "embedded: push accepted" '{"status":"accepted","events":1,"edges":0}' "$BODY"
build_event "$T/b.json" "$d" "$(iso_at -5)" 9
post_build "$T/b.json"
check "embedded: build joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "embedded: the edge is in the embedded Redis" 1 \
    "$(redis-cli -s "$E/redis.sock" xlen 'dm:{0}:out' 2>&1)"
check "embedded: AOF in data_dir" yes \
    "$([ -e "$E/appendonly.aof" ] || [ -d "$E/appendonlydir" ] && echo yes || echo no)"
check "embedded: appendonly is on" "appendonly yes" \
    "$(redis-cli -s "$E/redis.sock" config get appendonly 2>&1 | paste -sd' ' -)"
rpid=$(pgrep -f "$E" || true)
check_match "embedded: a redis-server child runs" '^[0-9]+$' "$rpid"
check "embedded: it is digestmapd's child" "$DAEMON_PID" "$(ps -o ppid= -p "${rpid:-1}" 2>/dev/null | tr -d ' ')"
stop_daemon # SIGTERM, exit 0 checked
gone=no
poll_until "$DM_WAIT" eval '! pgrep -f "$E" >/dev/null' && gone=yes
check "embedded: redis-server stopped with digestmapd" yes "$gone"
[ "$gone" == yes ] || for p in $(pgrep -f "$E"); do kill "$p" 2>/dev/null || true; done
check "embedded: socket no longer answers" no \
    "$(redis-cli -s "$E/redis.sock" ping >/dev/null 2>&1 && [ "$(redis-cli -s "$E/redis.sock" ping 2>&1)" == PONG ] && echo yes || echo no)"

# restarted on the same data_dir, the AOF brings the data back
start_daemon "$(cat "$T/config.json")"
check "embedded restart: edge kept by the AOF" 1 "$(redis-cli -s "$E/redis.sock" xlen 'dm:{0}:out' 2>&1)"
query_image "$d"
check "embedded restart: query finds the mapping" "200 1" "$STATUS $(jq '.mappings | length' <<<"$BODY")"
finish
