/* dm_common.h - feature-test macros, result codes and the allocation wrappers.
 *
 * Included first by every digestmap source file (before any system header), so the
 * POSIX declarations that -std=c11 hides are visible everywhere in the same way.
 */
#ifndef DM_COMMON_DM_COMMON_H
#define DM_COMMON_DM_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/** Result codes: 0 is success, failures are negative. */
enum {
    DM_OK = 0,
    DM_EINVAL = -1, /**< input rejected (the caller's error struct says why) */
    DM_ENOMEM = -2,
    DM_EIO = -3,      /**< file or socket error */
    DM_EUNAVAIL = -4, /**< Redis not connected / not ready */
    DM_EBUSY = -5,    /**< an in-flight cap was reached */
    DM_ETIMEOUT = -6,
    DM_EREDIS = -7, /**< Redis answered with an error */
};

/** A short constant description of a DM_E* code. */
const char *dm_strerror(int code);

/* Out-of-memory is fatal: these never return NULL (they log and abort). */
void *dm_xmalloc(size_t n);
void *dm_xcalloc(size_t n, size_t size);
void *dm_xrealloc(void *p, size_t n);
char *dm_xstrdup(const char *s);
/** Copy @p len bytes of @p s into a new NUL-terminated string. */
char *dm_xstrndup(const char *s, size_t len);

/** @p v in decimal at @p p (at most 20 bytes, not terminated); returns the end. For the hot
 *  path's numbers (answers, Redis keys and arguments), where snprintf's format interpretation
 *  cost more than the digits. */
char *dm_put_uint(char *p, unsigned long long v);

#define DM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
