#!/usr/bin/env bash
# The TLS listener (configs/README.md "tls"): a client trusting the CA gets the same answers as
# over plain HTTP; a client trusting another CA, a plain-HTTP client, TLS 1.1 and an h2-only ALPN
# offer are refused at the handshake, logged at info and counted, and the daemon keeps serving;
# SIGHUP swaps the certificate for new connections while an open one keeps working, and a
# failed reload keeps the current one; a bad file refuses to start, with --check-config too.
source "$(dirname "$0")/lib.sh"

FX=$DM_FIXTURES/tls
A_SERIAL=$(openssl x509 -in "$FX/server.pem" -noout -serial | cut -d= -f2)
B_SERIAL=$(openssl x509 -in "$FX/other-server.pem" -noout -serial | cut -d= -f2)
[ "$A_SERIAL" != "$B_SERIAL" ] || die "the two fixture certificates have the same serial"

# tls_config CERT KEY [TLS_MEMBERS]: the default configuration with a tls object.
tls_config() {
    local c tls
    c=$(default_config)
    tls="\"workers\": 2, \"tls\": {\"cert_file\": \"$1\", \"key_file\": \"$2\"${3:-}},"
    echo "${c/\"workers\": 2,/$tls}"
}

# hcurl CA [curl args...] URL: curl over https trusting only CA.
hcurl() {
    local ca=$1
    shift
    curl -s --cacert "$ca" "$@"
}

# launch_tls SUFFIX WHAT CONFIG PIDVAR: like lib.sh's launch, but waits for /readyz over https
# (trusting ca.pem). The pid goes into PIDVAR (DAEMON_PID or DAEMON2_PID, which lib.sh's
# cleanup kills) at once, so a failed start leaves no process; sets LAUNCHED_PORT.
launch_tls() {
    local sfx=$1 what=$2
    printf '%s\n' "$3" > "$T/config$sfx.json"
    # A daemon beside the first one needs a spool directory of its own (docs/spool.md).
    [ -z "$sfx" ] || jq --arg d "$T/spool$sfx" '.spool.dir = $d' <<<"$3" > "$T/config$sfx.json"
    : > "$T/daemon$sfx.log"
    "$DIGESTMAPD" --config "$T/config$sfx.json" 2>>"$T/daemon$sfx.log" &
    LAUNCHED_PID=$!
    printf -v "$4" '%s' "$LAUNCHED_PID"
    LAUNCHED_PORT=""
    for _ in $(seq 1 200); do
        LAUNCHED_PORT=$(sed -n 's/.*msg="listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' \
            "$T/daemon$sfx.log" | tail -n 1)
        [ -n "$LAUNCHED_PORT" ] && break
        kill -0 "$LAUNCHED_PID" 2>/dev/null || die "$what exited during startup"
        sleep 0.05
    done
    [ -n "$LAUNCHED_PORT" ] || die "$what did not report its port"
    for _ in $(seq 1 200); do
        [ "$(hcurl "$FX/ca.pem" -o /dev/null -w '%{http_code}' \
            "https://127.0.0.1:$LAUNCHED_PORT/readyz")" == 200 ] && return 0
        sleep 0.05
    done
    die "$what: /readyz over https never answered 200"
}

# wait_log FILE REGEX: poll (10 s at most) until a line of FILE matches; prints the first match.
wait_log() {
    for _ in $(seq 1 100); do
        grep -m1 -E "$2" "$1" && return 0
        sleep 0.1
    done
    echo "(no line matching /$2/)"
}

# served_serial [PORT]: the serial of the certificate a new connection gets.
served_serial() {
    openssl s_client -connect "127.0.0.1:${1:-$PORT}" </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}

# tmetric NAME: like lib.sh's metric, over https.
tmetric() {
    local v
    v=$(hcurl "$FX/ca.pem" "https://127.0.0.1:$PORT/metrics" |
        awk -v n="$1" '$1 == n { print $2 }' | tail -n 1)
    echo "${v:-0}"
}

healthz() { hcurl "$FX/ca.pem" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/healthz"; }

cp "$FX/server.pem" "$T/cert.pem"
cp "$FX/server.key" "$T/key.pem"
start_redis
launch_tls "" digestmapd "$(tls_config "$T/cert.pem" "$T/key.pem")" DAEMON_PID
PORT=$LAUNCHED_PORT
LOG=$T/daemon.log
start_daemon2 # plain HTTP, same Redis: the reference answers
FAILS=0       # handshakes this test has made fail, for the counter

check_match "the listening line says tls=on" 'msg="listening" addr=127.0.0.1:[0-9]+ workers=2 tls=on' \
    "$(grep 'msg="listening"' "$LOG")"
check_match "the plain listener says tls=off" 'msg="listening" .* tls=off' \
    "$(grep 'msg="listening"' "$T/daemon2.log")"
check_match "the certificate is logged at startup" \
    "level=info msg=\"tls certificate loaded\" serial=$A_SERIAL not_after=2126-[0-9T:-]+Z subject=\"/CN=localhost\"" \
    "$(grep 'msg="tls certificate loaded"' "$LOG")"

# --- A client trusting the CA: the same answers as plain HTTP.
# Answers end with a newline: "BODY STATUS" on one line.
tls_body=$(hcurl "$FX/ca.pem" -w ' %{http_code}' "https://127.0.0.1:$PORT/healthz" | tr -d '\n')
plain_body=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT2/healthz" | tr -d '\n')
check "/healthz over https, by IP" '{"status":"ok"} 200' "$tls_body"
check "/healthz: the same answer as plain HTTP" "$plain_body" "$tls_body"
check "/healthz over https, by name" 200 \
    "$(hcurl "$FX/ca.pem" -o /dev/null -w '%{http_code}' "https://localhost:$PORT/healthz")"
d1=$(random_digest)
d2=$(random_digest)
acr_push "$T/push1.json" "$d1" 1.4.0 "$(iso_at 0)"
acr_push "$T/push2.json" "$d2" 1.4.0 "$(iso_at 0)"
tls_push=$(hcurl "$FX/ca.pem" -w ' %{http_code}' -X POST -H 'Authorization: Bearer acr-token' \
    -H 'Content-Type: application/json' --data-binary "@$T/push1.json" \
    "https://127.0.0.1:$PORT/v1/registry/acr" | tr -d '\n')
plain_push=$(curl -s -w ' %{http_code}' -X POST -H 'Authorization: Bearer acr-token' \
    -H 'Content-Type: application/json' --data-binary "@$T/push2.json" \
    "http://127.0.0.1:$PORT2/v1/registry/acr" | tr -d '\n')
check "an ACR push over https is accepted" '{"status":"accepted","events":1,"edges":0} 202' \
    "$tls_push"
check "an ACR push: the same answer as plain HTTP" "$plain_push" "$tls_push"
check "the push over https is parked in Redis" 1 \
    "$(hcurl "$FX/ca.pem" -H 'Authorization: Bearer api-token' \
        "https://127.0.0.1:$PORT/v1/images/$d1" | python3 -c '
import json, sys
print(len(json.load(sys.stdin)["pending"]["registry"]))')"
check "a bad token over https: 401 as over plain HTTP" 401 \
    "$(hcurl "$FX/ca.pem" -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer nope' \
        --data-binary "@$T/push1.json" "https://127.0.0.1:$PORT/v1/registry/acr")"

# --- A client trusting another CA: its verification fails; we log it at info and stay up.
rc=0
hcurl "$FX/other-ca.pem" -o /dev/null "https://127.0.0.1:$PORT/healthz" || rc=$?
check "a client trusting another CA fails verification (curl exit 60)" 60 "$rc"
FAILS=$((FAILS + 1))
check_match "the failed handshake is logged at info with the client's alert" \
    'level=info msg="tls handshake failed" peer=127\.0\.0\.1:[0-9]+ reason="tlsv1 alert unknown ca"' \
    "$(wait_log "$LOG" 'msg="tls handshake failed".*unknown ca')"
check "still healthy after the wrong-CA client" 200 "$(healthz)"

# --- Plain HTTP to the TLS port: no HTTP answer, and TLS goes on.
rc=0
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz") || rc=$?
check "plain HTTP to the TLS port gets no HTTP answer" "000 52" "$code $rc"
FAILS=$((FAILS + 1))
check_match "the plain-HTTP attempt is logged at info" \
    'level=info msg="tls handshake failed" peer=127\.0\.0\.1:[0-9]+ reason="http request"' \
    "$(wait_log "$LOG" 'msg="tls handshake failed".*reason="http request"')"
check "still serving TLS after plain HTTP" 200 "$(healthz)"

# --- Protocol versions: 1.2 and 1.3 accepted, 1.1 refused.
for v in 1_2 1_3; do
    check_match "TLS ${v/_/.} is accepted" "New, TLSv${v/_/.}, Cipher is [A-Z]" \
        "$(openssl s_client -connect "127.0.0.1:$PORT" "-tls$v" </dev/null 2>/dev/null)"
done
out=$(openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
    </dev/null 2>&1 || true)
if grep -q 'no protocols available' <<<"$out"; then
    echo "skip - this OpenSSL will not even offer TLS 1.1"
else
    FAILS=$((FAILS + 1))
    check_match "TLS 1.1 gets no session" 'New, \(NONE\), Cipher is \(NONE\)' "$out"
    check_match "TLS 1.1 is refused and logged" 'level=info msg="tls handshake failed" .*reason="unsupported protocol"' \
        "$(wait_log "$LOG" 'msg="tls handshake failed".*unsupported protocol')"
fi

# --- ALPN: http/1.1 is selected; an offer of only h2 gets no_application_protocol.
check_match "ALPN http/1.1 is selected" "ALPN protocol: http/1.1" \
    "$(openssl s_client -connect "127.0.0.1:$PORT" -alpn http/1.1 </dev/null 2>/dev/null)"
check_match "ALPN h2,http/1.1: http/1.1 is selected" "ALPN protocol: http/1.1" \
    "$(openssl s_client -connect "127.0.0.1:$PORT" -alpn h2,http/1.1 </dev/null 2>/dev/null)"
out=$(openssl s_client -connect "127.0.0.1:$PORT" -alpn h2 </dev/null 2>&1 || true)
FAILS=$((FAILS + 1))
check_match "an h2-only offer gets the no_application_protocol alert" \
    "alert no application protocol" "$out"
check_match "the h2-only offer is logged" 'level=info msg="tls handshake failed" .*reason="no application protocol"' \
    "$(wait_log "$LOG" 'msg="tls handshake failed".*no application protocol')"
check "curl --http2 (offering h2 and http/1.1) speaks HTTP/1.1" "200 1.1" \
    "$(hcurl "$FX/ca.pem" --http2 -o /dev/null -w '%{http_code} %{http_version}' \
        "https://127.0.0.1:$PORT/healthz")"

check "every failed handshake is counted" "$FAILS" \
    "$(wait_count "$FAILS" 10 tmetric digestmap_tls_handshake_failures_total)"
check "no failed handshake is logged above info" "" \
    "$(grep -E 'level=(warn|error)' "$LOG" | grep -i -E 'tls|ssl|handshake' || true)"

# --- SIGHUP: new connections get the new certificate (other-server.*: another CA, with its
# intermediate in the file); a connection opened before keeps working.
check "before the reload: the first certificate" "$A_SERIAL" "$(served_serial)"
cp "$FX/other-server.pem" "$T/cert.pem"
cp "$FX/other-server.key" "$T/key.pem"
check "a connection open across the reload keeps working" "200 200" "$(python3 - "$PORT" \
    "$FX/ca.pem" "$DAEMON_PID" "$LOG" <<'EOF'
import http.client, os, signal, ssl, sys, time
port, ca, pid, log = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=ca))
conn.request("GET", "/healthz"); r1 = conn.getresponse(); r1.read()
os.kill(pid, signal.SIGHUP)
for _ in range(200):  # until the daemon says it reloaded (20 s at most)
    if 'msg="tls certificate reloaded"' in open(log).read(): break
    time.sleep(0.1)
conn.request("GET", "/healthz"); r2 = conn.getresponse(); r2.read()
print(r1.status, r2.status)
EOF
)"
check "after SIGHUP a new connection gets the new certificate" "$B_SERIAL" \
    "$(wait_count "$B_SERIAL" 10 served_serial)"
check_match "the reload is logged with the new serial" \
    "level=info msg=\"tls certificate reloaded\" serial=$B_SERIAL " \
    "$(grep 'msg="tls certificate reloaded"' "$LOG")"
check "the new chain verifies against its CA (the intermediate is sent)" 200 \
    "$(hcurl "$FX/other-ca.pem" -o /dev/null -w '%{http_code}' "https://localhost:$PORT/healthz")"
rc=0
hcurl "$FX/ca.pem" -o /dev/null "https://127.0.0.1:$PORT/healthz" || rc=$?
check "the old CA no longer verifies new connections" 60 "$rc"

# A reload that fails keeps the current certificate.
echo "not a certificate" > "$T/cert.pem"
kill -HUP "$DAEMON_PID"
check_match "a reload of a bad file fails with the reason, at error" \
    "level=error msg=\"tls reload failed; keeping the current certificate\" reason=\"tls.cert_file: .*$T/cert.pem.* holds no PEM certificate \(no start line\)\"" \
    "$(wait_log "$LOG" 'msg="tls reload failed')"
cp "$FX/server.pem" "$T/cert.pem" # other-server.key stays: a mismatch
kill -HUP "$DAEMON_PID"
check_match "a reload of a key that does not match fails with the reason" \
    'msg="tls reload failed; keeping the current certificate" reason="tls.key_file: .*key.pem.* does not match the certificate in tls.cert_file"' \
    "$(wait_log "$LOG" 'msg="tls reload failed.*does not match')"
check "after failed reloads: still the certificate loaded last" "$B_SERIAL" "$(served_serial)"
check "after failed reloads: still serving" 200 \
    "$(hcurl "$FX/other-ca.pem" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/healthz")"

# Without tls, SIGHUP is logged and ignored (its default action would end the process).
kill -HUP "$DAEMON2_PID"
check_match "a plain daemon ignores SIGHUP" 'msg="SIGHUP ignored: no tls configured"' \
    "$(wait_log "$T/daemon2.log" 'SIGHUP ignored')"
check "the plain daemon still answers" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/healthz")"
stop_daemon2

# --- min_version "1.3": TLS 1.2 refused.
# In the second daemon's place (stopped above), so lib.sh's cleanup covers it.
launch_tls 3 "digestmapd (TLS 1.3 only)" \
    "$(tls_config "$FX/server.pem" "$FX/server.key" ', "min_version": "1.3"')" DAEMON2_PID
check_match "min_version 1.3: TLS 1.3 is accepted" "New, TLSv1.3, Cipher is [A-Z]" \
    "$(openssl s_client -connect "127.0.0.1:$LAUNCHED_PORT" -tls1_3 </dev/null 2>/dev/null)"
check_match "min_version 1.3: TLS 1.2 gets no session" 'New, \(NONE\), Cipher is \(NONE\)' \
    "$(openssl s_client -connect "127.0.0.1:$LAUNCHED_PORT" -tls1_2 </dev/null 2>/dev/null)"
check_match "min_version 1.3: TLS 1.2 is refused and logged" 'reason="unsupported protocol"' \
    "$(wait_log "$T/daemon3.log" 'msg="tls handshake failed"')"
DAEMON2_PID=""
halt "$LAUNCHED_PID" "$T/daemon3.log" "digestmapd (TLS 1.3 only)"

# --- A bad file refuses to start, with the reason; --check-config says the same.
echo "garbage" > "$T/junk.pem"
: > "$T/empty.pem"
openssl pkey -in "$FX/server.key" -aes256 -passout pass:secret -out "$T/encrypted.key" 2>/dev/null
refuses() { # DESCRIPTION CERT KEY EXPECTED_MESSAGE
    local cfg=$T/bad.json out rc=0
    tls_config "$2" "$3" > "$cfg"
    out=$("$DIGESTMAPD" --config "$cfg" --check-config 2>&1) || rc=$?
    check "--check-config: $1" "1 digestmapd: $cfg: $4" "$rc $out"
    rc=0
    out=$("$DIGESTMAPD" --config "$cfg" 2>&1) || rc=$?
    check "refuses to start: $1" "1 digestmapd: $cfg: $4" "$rc $out"
}
refuses "missing certificate" "$T/missing.pem" "$FX/server.key" \
    "tls.cert_file: cannot open \"$T/missing.pem\": No such file or directory"
refuses "missing key" "$FX/server.pem" "$T/missing.key" \
    "tls.key_file: cannot open \"$T/missing.key\": No such file or directory"
refuses "a directory as the key" "$FX/server.pem" "$T" \
    "tls.key_file: cannot read \"$T\": Is a directory"
if [ "$(id -u)" != 0 ]; then
    cp "$FX/server.key" "$T/noread.key"
    chmod 000 "$T/noread.key"
    refuses "unreadable key" "$FX/server.pem" "$T/noread.key" \
        "tls.key_file: cannot open \"$T/noread.key\": Permission denied"
else
    echo "skip - unreadable file: root reads it anyway"
fi
refuses "certificate not PEM" "$T/junk.pem" "$FX/server.key" \
    "tls.cert_file: \"$T/junk.pem\" holds no PEM certificate (no start line)"
refuses "empty certificate" "$T/empty.pem" "$FX/server.key" \
    "tls.cert_file: \"$T/empty.pem\" holds no PEM certificate (empty file)"
refuses "a key as the certificate" "$FX/server.key" "$FX/server.key" \
    "tls.cert_file: \"$FX/server.key\" holds no PEM certificate (no start line)"
refuses "key not PEM" "$FX/server.pem" "$T/junk.pem" \
    "tls.key_file: \"$T/junk.pem\" holds no PEM private key (no PRIVATE KEY block)"
refuses "a certificate as the key" "$FX/server.pem" "$FX/server.pem" \
    "tls.key_file: \"$FX/server.pem\" holds no PEM private key (no PRIVATE KEY block)"
refuses "key of another certificate" "$FX/server.pem" "$FX/wrong-host.key" \
    "tls.key_file: \"$FX/wrong-host.key\" does not match the certificate in tls.cert_file"
refuses "encrypted key" "$FX/server.pem" "$T/encrypted.key" \
    "tls.key_file: \"$T/encrypted.key\" is encrypted: give an unencrypted key"
cp "$FX/server.key" "$T/key.pem" # the pair the first daemon's configuration names, matching again
rc=0
out=$("$DIGESTMAPD" --config "$T/config.json" --check-config 2>&1) || rc=$?
check "--check-config accepts the good files" "0 digestmapd: $T/config.json: configuration is valid" \
    "$rc $out"

check "still serving at the end" 200 \
    "$(hcurl "$FX/other-ca.pem" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/healthz")"
finish
