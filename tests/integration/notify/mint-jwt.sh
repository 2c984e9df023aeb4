#!/usr/bin/env bash
# mint-jwt.sh KEY KID < PAYLOAD_JSON: print an RS256 JWT of the payload read from stdin, signed
# with the RSA private key KEY (PEM). A process of its own for fake_token_server.py; the
# signing itself is tests/integration/jwt.sh's.
set -euo pipefail
. "$(dirname "$0")/../jwt.sh"
printf '%s\n' "$(mint_rs256 "$1" "$2" "$(cat)")"
