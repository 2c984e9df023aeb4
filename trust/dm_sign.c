/* dm_sign.c - HMAC-SHA256 body signatures (see dm_sign.h). */
#include "dm_sign.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

void dm_sign_body(const unsigned char *key, size_t key_len, const void *body, size_t len,
                  char out[DM_SIGN_LEN])
{
    static const char hex[] = "0123456789abcdef";
    static const unsigned char empty[1] = {0};
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, body ? body : empty, len, mac, &mac_len))
        mac_len = 0; /* cannot happen with SHA-256; the receiver then refuses the signature */
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < mac_len && i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[7 + 2 * i + 1] = hex[mac[i] & 15];
    }
    out[7 + 2 * (mac_len < 32 ? mac_len : 32)] = '\0';
}
