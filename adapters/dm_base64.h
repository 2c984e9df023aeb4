/* dm_base64.h - strict base64 decoding (RFC 4648) for the adapters: GAR's message.data, SNS
 * signatures and JWT parts. Pure; OpenSSL's EVP_DecodeBlock does the arithmetic. */
#ifndef DM_ADAPTERS_DM_BASE64_H
#define DM_ADAPTERS_DM_BASE64_H

#include "dm_common.h"

/** How dm_base64_decode reads its input. */
enum {
    /** the URL alphabet ('-', '_') without padding, as JWTs use it; else the standard
     *  alphabet ('+', '/') padded with '=' to whole 4-character quanta */
    DM_BASE64_URL = 1u << 0,
    /** refuse non-canonical spellings (unused trailing bits set), so that each value has
     *  exactly one spelling and a signature cannot be re-spelled past a cache */
    DM_BASE64_CANONICAL = 1u << 1,
};

/**
 * Decode @p len bytes of @p in into a new buffer (*out, never NULL on success, even for 0
 * bytes; the caller frees it) of exactly *outlen bytes. Refuses characters outside the
 * alphabet (whitespace included), misplaced or missing padding and impossible lengths.
 * Bounding @p len is the caller's job. Returns false, with *out NULL, on any refusal.
 */
bool dm_base64_decode(const char *in, size_t len, unsigned flags, unsigned char **out,
                      size_t *outlen);

#endif
