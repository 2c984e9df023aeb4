/* dm_slot.h - Redis Cluster's key-to-slot map and its redirect errors, as pure functions.
 *
 * A key's slot is CRC16 (XMODEM) of its hash tag, or of the whole key when it has none, modulo
 * 16384; the hash tag is what lies between the first '{' and the first '}' after it, when that
 * is not empty. Every key of one digestmap shard carries "{<shard>}", so a shard is one slot.
 * A node answers a command for a slot it does not serve with "MOVED <slot> <host>:<port>" (the
 * slot lives there now) or "ASK <slot> <host>:<port>" (this one command, during a migration,
 * after ASKING).
 */
#ifndef DM_CORRELATOR_DM_SLOT_H
#define DM_CORRELATOR_DM_SLOT_H

#include <stdbool.h>
#include <stddef.h>

#define DM_SLOTS         16384
/** Room for a host in a redirect: a DNS name (253) or an IPv6 literal, NUL included. */
#define DM_SLOT_HOST_MAX 256

/** CRC16-XMODEM of @p len bytes, as Redis Cluster computes it. */
unsigned dm_slot_crc16(const char *buf, size_t len);

/** The slot of key @p key (@p len bytes, binary-safe). */
unsigned dm_slot_of(const char *key, size_t len);

typedef struct dm_redirect {
    bool ask;      /**< ASK (one command, after ASKING) rather than MOVED (the slot moved) */
    unsigned slot; /**< < DM_SLOTS */
    char host[DM_SLOT_HOST_MAX]; /**< no brackets around an IPv6 literal */
    int port;                    /**< 1..65535 */
} dm_redirect;

/**
 * Parse an error reply's text (@p len bytes, not NUL-terminated) as a redirect. Returns false,
 * leaving @p out unspecified, for anything else, including a malformed MOVED/ASK (bad slot,
 * port, or an empty or oversized host).
 */
bool dm_redirect_parse(const char *err, size_t len, dm_redirect *out);

#endif
