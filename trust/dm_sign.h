/* dm_sign.h - sign a body the way digestmap's receivers check it: HMAC-SHA256 with a shared
 * secret, written "sha256=<lowercase hex>". The webhook sinks send it as X-Digestmap-Signature
 * (outputs/dm_sink.h); the command-line client signs build events with it (cli/dm_cli_api.h),
 * which digestmapd checks against an hmac-sha256 auth entry (dm_auth.h).
 *
 * Pure: no I/O, no state; the caller owns every buffer.
 */
#ifndef DM_TRUST_DM_SIGN_H
#define DM_TRUST_DM_SIGN_H

#include <stddef.h>

/** Size of a dm_sign_body() result ("sha256=" + 64 hex digits + NUL). */
#define DM_SIGN_LEN 72

/**
 * Write "sha256=<lowercase hex HMAC-SHA256(@p key, @p body)>" into @p out. @p body may be NULL
 * when @p len is 0 (an empty body is signed too).
 */
void dm_sign_body(const unsigned char *key, size_t key_len, const void *body, size_t len,
                  char out[DM_SIGN_LEN]);

#endif
