/* fuzz_jwt.c - libFuzzer target for dm_jwt_verify and dm_jwks_parse.
 *
 * Every input is tried as a token against a fixed JWKS, and as a JWKS document. The keys are
 * public keys whose private halves were thrown away when they were generated, so no input can
 * carry a valid signature over claims the policy accepts: DM_JWT_OK is itself a finding. The
 * embedded token below is validly signed by the RSA key but expired, which lets a JWKS built
 * by the fuzzer reach the signature and claims checks.
 */
#include "dm_common.h"
#include "dm_jwt.h"

#include <jansson.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_jwks[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"fuzz-rsa\",\"use\":\"sig\",\"alg\":\"RS256\","
    "\"e\":\"AQAB\",\"n\":\""
    "pXrA9fLvYoAMUga2EXdxdjk5ZwQt4bxmlpUCWTIcYV5iM7Q-oiQsxGSxEYGbjLFu7UIwp3EyKzx1"
    "p_4VXwcOaKRZHC-v5TtPoRB3uL9LOo8_pkkSbtT2I-g2xmzzgtsNKePs7jweYYDEKNcgifXUjZ-f"
    "Yz6N9j0kCJN1uKqdL2cKYOknBQxRMPWr43XvrENe-Q_kwiwXmZNiVUgA4gIb55LFVAToaenMZJ76"
    "xjKxgg3ceiSWrq82fn9ZxcsDrwhPXWXTfSlLM80MyObwzEmKhpG265yRR-TM_nICWo15wklpMX3k"
    "oPtw52t0aEdHFUZvxp8D2LD0oL96xodO83WBgw"
    "\"},"
    "{\"kty\":\"EC\",\"kid\":\"fuzz-ec\",\"use\":\"sig\",\"alg\":\"ES256\",\"crv\":\"P-256\","
    "\"x\":\"_RDr6yQmWDp4LiqezqtrXGZi85fecgLuGTerB4QsG60\","
    "\"y\":\"drKmFfNW59JjQUZnyFtgRf-YfWoZFCoY9Sw1uil0vH0\"}"
    "]}";

static const char expired_token[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImZ1enotcnNhIn0.eyJpc3MiOiJodHRwczovL2lzc3Vl"
    "ci5leGFtcGxlIiwiYXVkIjoiZGlnZXN0bWFwIiwic3ViIjoicmVwbzphY21lL2FwaSIsImlhdCI6MTc2NDMzODM5"
    "MCwibmJmIjoxNzY0MzM4MzkwLCJleHAiOjE3NjQzMzQ4MDB9.Bc7MQ0JjfCv-y1S0pkrewWPVjNvfX1u0an5usAh"
    "NivLLO7n0BJiQlnaiMPfkK_0d4JHSDS_EBBe1GGiuJMxXDvNqlIV6PLJbKcoOuKVEo0QOy_xpS3DFbpXFVNP1ZCT"
    "JPrA8g7pSsuSUD-bopKbk3eRjLQqofJ-pBFh8HERxqJiUDJHZAj95S4h-0AtTBQeSATc1c37fFaWcMxiIEP5hZvm"
    "TneCNSoTZGz_8wQfHXENt0qeEmKkD9jiUmL5H6MxpuFUupmUHK-wzaM0WBYpExCfhlQUl7jQml6Rrb1wSAo38DaN"
    "_eOFOo-v6DGxlqcQoRXdvJLZby9qFd1d019ZNQQ";

static const char *const issuers[] = {"https://issuer.example", "https://accounts.google.com"};

static const dm_jwt_policy policy = {
    .issuers = issuers,
    .nissuers = 2,
    .audience = "digestmap",
    .now_s = 1764338400, /* the seed tokens' claims are relative to this */
    .leeway_s = 60,
};

static const dm_jwks *fixed_keys(void)
{
    static dm_jwks *keys; /* built once, reachable until exit */
    if (!keys) {
        dm_error err;
        if (dm_jwks_parse(fuzz_jwks, sizeof fuzz_jwks - 1, &keys, &err) != DM_OK ||
            dm_jwks_count(keys) != 2)
            __builtin_trap();
    }
    return keys;
}

static void check_printable(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        __builtin_trap();
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            __builtin_trap();
    }
}

/* Verify and check the invariants every refusal must keep. */
static dm_jwt_status verify(const char *token, size_t len, const dm_jwks *keys)
{
    json_t *claims = (json_t *)(uintptr_t)1; /* must be overwritten */
    char kid[DM_JWT_KID_BUFLEN];
    memset(kid, 0xa5, sizeof kid); /* must be terminated whatever happens */
    ERR_clear_error();
    dm_jwt_status st = dm_jwt_verify(token, len, keys, &policy, &claims, kid);
    if (st == DM_JWT_OK || claims != NULL)
        __builtin_trap();
    if (st < DM_JWT_MALFORMED || st > DM_JWT_NOT_YET_VALID)
        __builtin_trap();
    if (strcmp(dm_jwt_status_str(st), "unknown status") == 0)
        __builtin_trap();
    if (memchr(kid, '\0', sizeof kid) == NULL)
        __builtin_trap();
    /* The kid reported is the one looked up. */
    if (st == DM_JWT_UNKNOWN_KID && (!kid[0] || dm_jwks_has_kid(keys, kid)))
        __builtin_trap();
    if (st >= DM_JWT_BAD_SIGNATURE && !dm_jwks_has_kid(keys, kid))
        __builtin_trap(); /* got past the key lookup, so the key exists */
    if (ERR_peek_error() != 0)
        __builtin_trap(); /* refusals leave OpenSSL's error queue as they found it */
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const dm_jwks *keys = fixed_keys();
    verify((const char *)data, size, keys);

    dm_jwks *set = (dm_jwks *)(uintptr_t)1; /* must be overwritten */
    dm_error err;
    memset(&err, 0, sizeof err);
    ERR_clear_error();
    int rc = dm_jwks_parse((const char *)data, size, &set, &err);
    if (ERR_peek_error() != 0)
        __builtin_trap();
    if (rc == DM_OK) {
        if (!set || dm_jwks_count(set) > size / 8)
            __builtin_trap(); /* a usable key takes more than 8 bytes of JSON */
        dm_jwt_status st = verify(expired_token, sizeof expired_token - 1, set);
        /* Validly signed and expired: only the key set decides how far it gets. */
        if (st != DM_JWT_UNKNOWN_KID && st != DM_JWT_BAD_ALG && st != DM_JWT_BAD_SIGNATURE &&
            st != DM_JWT_EXPIRED)
            __builtin_trap();
        if (st == DM_JWT_EXPIRED && !dm_jwks_has_kid(set, "fuzz-rsa"))
            __builtin_trap();
        dm_jwks_free(set);
    } else if (rc == DM_EINVAL) {
        if (set != NULL || err.status != 400 || err.text[0] == '\0')
            __builtin_trap();
        check_printable(err.field, sizeof err.field);
        check_printable(err.text, sizeof err.text);
    } else {
        __builtin_trap();
    }
    return 0;
}
