# jwt.sh - mint OIDC tokens in tests with the openssl command line (sourced after lib.sh).
# Keys, JWKS files and tokens are made at test time; nothing secret is committed.

# b64url: stdin → unpadded base64url.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# hex_to_bin: stdin hex → bytes (no xxd on minimal Debian).
hex_to_bin() { sed 's/../\\x&/g' | xargs -0 printf '%b'; }

# rsa_key FILE: a new 2048-bit RSA private key.
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# ec_key FILE: a new P-256 private key.
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# rsa_jwk KEYFILE KID: the public JWK of an RSA key.
rsa_jwk() {
    local n
    n=$(openssl rsa -in "$1" -noout -modulus 2>/dev/null | sed 's/^Modulus=//' | tr -d '\n' | hex_to_bin | b64url)
    printf '{"kty":"RSA","kid":"%s","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}' "$2" "$n"
}

# ec_jwk KEYFILE KID: the public JWK of a P-256 key (uncompressed point 04||x||y).
ec_jwk() {
    local pt x y
    pt=$(openssl ec -in "$1" -pubout -outform DER 2>/dev/null | tail -c 65 | od -An -tx1 | tr -d ' \n')
    x=$(printf '%s' "${pt:2:64}" | hex_to_bin | b64url)
    y=$(printf '%s' "${pt:66:64}" | hex_to_bin | b64url)
    printf '{"kty":"EC","crv":"P-256","kid":"%s","use":"sig","alg":"ES256","x":"%s","y":"%s"}' "$2" "$x" "$y"
}

# jwks JWK...: a JWKS document.
jwks() { local IFS=,; printf '{"keys":[%s]}' "$*"; }

# mint_rs256 KEYFILE KID PAYLOAD_JSON [ALG]: a signed token (ALG only changes the header).
mint_rs256() {
    local h p s
    h=$(printf '{"alg":"%s","typ":"JWT","kid":"%s"}' "${4:-RS256}" "$2" | b64url)
    p=$(printf '%s' "$3" | b64url)
    s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -sign "$1" -binary | b64url)
    printf '%s.%s.%s' "$h" "$p" "$s"
}

# mint_es256 KEYFILE KID PAYLOAD_JSON: ES256 (DER signature converted to raw r||s).
mint_es256() {
    local h p der r s
    h=$(printf '{"alg":"ES256","typ":"JWT","kid":"%s"}' "$2" | b64url)
    p=$(printf '%s' "$3" | b64url)
    der=$(printf '%s' "$h.$p" | openssl dgst -sha256 -sign "$1" -binary | od -An -tx1 | tr -d ' \n')
    # SEQUENCE { INTEGER r, INTEGER s }: strip leading 00 pads, left-pad each to 32 bytes.
    local i=4 len
    [ "${der:2:2}" == "81" ] && i=6
    len=$((16#${der:$((i + 2)):2})); r=${der:$((i + 4)):$((len * 2))}; i=$((i + 4 + len * 2))
    len=$((16#${der:$((i + 2)):2})); s=${der:$((i + 4)):$((len * 2))}
    r=$(printf '%064s' "${r: -64}" | tr ' ' 0); s=$(printf '%064s' "${s: -64}" | tr ' ' 0)
    printf '%s.%s.%s' "$h" "$p" "$(printf '%s%s' "$r" "$s" | hex_to_bin | b64url)"
}

# mint_hs256 SECRETFILE KID PAYLOAD_JSON: HMAC-SHA256 keyed with a file's bytes (e.g. a public
# key: the algorithm-confusion attack).
mint_hs256() {
    local h p s
    h=$(printf '{"alg":"HS256","typ":"JWT","kid":"%s"}' "$2" | b64url)
    p=$(printf '%s' "$3" | b64url)
    s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -mac HMAC \
        -macopt "hexkey:$(od -An -tx1 "$1" | tr -d ' \n')" -binary | b64url)
    printf '%s.%s.%s' "$h" "$p" "$s"
}

# mint_none KID PAYLOAD_JSON: an unsigned token.
mint_none() {
    printf '%s.%s.' "$(printf '{"alg":"none","kid":"%s"}' "$1" | b64url)" "$(printf '%s' "$2" | b64url)"
}
