#!/usr/bin/env bash
# jwks.sh KEY KID: print a JWKS holding the public half of the RSA key KEY (PEM).
set -euo pipefail
. "$(dirname "$0")/../jwt.sh"
jwks "$(rsa_jwk "$1" "$2")"
echo
