#!/usr/bin/env bash
# Every shipped configuration stays loadable: configs/*.json and configs/examples/*.json pass
# --check-config (with the secrets and key files they name provided here).
. "$(dirname "$0")/lib.sh"
# Every variable a shipped config names through "…_env", set to a placeholder.
for v in $(grep -ho '"[a-z_]*_env": *"[A-Za-z0-9_]*"' "$DM_SRC"/configs/*.json \
        "$DM_SRC"/configs/examples/*.json | sed 's/.*: *"//; s/"$//' | sort -u); do
    export "$v=placeholder-$v"
done
cp "$DM_FIXTURES/jwks/rsa-public.json" "$T/google-jwks.json"
cp "$DM_FIXTURES/jwks/rsa-public.json" "$T/github-jwks.json"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/k.pem" -out "$T/sns-eu-west-1.pem" -days 1 \
    -subj /CN=sns 2>/dev/null
for f in "$DM_SRC"/configs/*.json "$DM_SRC"/configs/examples/*.json; do
    cp "$f" "$T/cfg.json"
    out=$("$DIGESTMAPD" --check-config --config "$T/cfg.json" 2>&1) && rc=0 || rc=$?
    check "$(basename "$f") is valid" "0 digestmapd: $T/cfg.json: configuration is valid" "$rc $out"
done
rc=0
"$DIGESTMAPD" --check-config --config "$DM_SRC/configs/README.md" >/dev/null 2>&1 || rc=$?
check "a file that is not JSON is refused" 1 "$rc"
echo "$((CHECKS - FAILURES)) passed, $FAILURES failed"
[ "$FAILURES" -eq 0 ]
