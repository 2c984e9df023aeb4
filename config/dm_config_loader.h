/* dm_config_loader.h - the configuration loader's internals, shared by the config/dm_config*.c
 * files only: this header is not part of dm_config's interface (dm_config.h is), and nothing
 * outside config/ includes it. Internal names carry the dm_cfg_ prefix.
 *
 * The loader is split by section: dm_config_root.c (the root, listen, sources, correlation, limits,
 * api, and the load and free entry points), dm_config_auth.c (auth lists), dm_config_outputs.c
 * (outputs and webhook sinks), dm_config_redis.c (redis, and the redis URL shared with the
 * command-line client) and dm_config_secret.c (secrets and the files the loader reads).
 * dm_config_loader.c holds what they all use: error messages with key paths and typed field
 * access.
 *
 * Every parser walks its part of the document once, top-down, and stops at the first problem
 * with a message that names the offending key by its path ("sources[1].auth[0].value_env: …").
 * Unknown keys are checked before values, so a typo is reported as a typo and not as the
 * "missing" key it was meant to be.
 */
#ifndef DM_CONFIG_DM_CONFIG_LOADER_H
#define DM_CONFIG_DM_CONFIG_LOADER_H

#include "dm_config.h"

#include <jansson.h>

#define PATH_BUF 192 /* longest key path we print */
#define SHOW_BUF 96  /* longest user value we echo in a message */

/* One load: where its error goes and how it resolves files and secrets. */
typedef struct dm_cfg_loader {
    char *err;
    size_t errlen;
    const char *base_dir; /* for relative *_file paths; NULL: the working directory */
    unsigned flags;       /* DM_CONFIG_* */
} dm_cfg_loader;

/*---- Errors and key paths (dm_config_loader.c) -------------------------------------------*/

/* Writes "<path>: <message>" (just the message at the top level) and returns @p code. */
int dm_cfg_fail(dm_cfg_loader *ld, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Make @p len bytes of a user-supplied string safe to embed in a one-line, double-quoted
 * message: control bytes (NUL included), quotes and backslashes become '?', and long values
 * are cut with "...". Returns @p buf. */
const char *dm_cfg_show_n(const char *s, size_t len, char buf[SHOW_BUF]);

/* dm_cfg_show_n of the NUL-terminated @p s. */
const char *dm_cfg_show(const char *s, char buf[SHOW_BUF]);

/* Key paths are only for messages: a (very deep, very long) path is cut, never overflowed. */
const char *dm_cfg_pathf(char buf[PATH_BUF], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "<parent>.<key>", or "<key>" at the top level. */
const char *dm_cfg_key_path(char buf[PATH_BUF], const char *parent, const char *key);

/* "<parent>[<i>]". */
const char *dm_cfg_index_path(char buf[PATH_BUF], const char *parent, size_t i);

/*---- Typed field access (dm_config_loader.c) ----------------------------------------------*/

/* Every key of @p obj is one of @p allowed (NULL-terminated), else "unknown key". */
int dm_cfg_check_keys(dm_cfg_loader *ld, const json_t *obj, const char *path,
                      const char *const *allowed);

/* Integer in [min, max]; absent (or @p obj NULL) → @p def. */
int dm_cfg_get_int(dm_cfg_loader *ld, const json_t *obj, const char *parent, const char *key,
                   long long min, long long max, long long def, long long *out);

/* String value; absent → *out = NULL. The result is borrowed from the document. */
int dm_cfg_get_str(dm_cfg_loader *ld, const json_t *obj, const char *parent, const char *key,
                   bool nonempty, const char **out);

/* Object value; absent → *out = NULL. */
int dm_cfg_get_obj(dm_cfg_loader *ld, const json_t *obj, const char *parent, const char *key,
                   const json_t **out);

/* "0".."65535" (or @p min..65535), digits only. */
bool dm_cfg_parse_port(const char *s, size_t len, int min, int *out);

bool dm_cfg_is_ipv4(const char *s);
bool dm_cfg_is_ipv6(const char *s);

/* jwks_url and webhook urls: https://, or plain http:// to the loopback interface only. */
int dm_cfg_check_http_url(dm_cfg_loader *ld, const char *kpath, const char *url);

/*---- Files and secrets (dm_config_secret.c) ----------------------------------------------*/

/* Wipe and free @p len bytes at @p p (NULL is fine). */
void dm_cfg_free_secret(void *p, size_t len);

/* Read a whole file of at most @p limit bytes. Returns DM_OK, or -errno, or DM_EINVAL when
 * the file is larger than @p limit. *out is NUL-terminated (not counted in *outlen). */
int dm_cfg_read_file(const char *path, size_t limit, unsigned char **out, size_t *outlen);

/* @p p resolved against the configuration file's directory, malloc'd. */
char *dm_cfg_resolve_path(const dm_cfg_loader *ld, const char *p);

/*
 * A secret given as "<base>", "<base>_env" or "<base>_file" in the object at @p path:
 * exactly one of them, non-empty. Absent and !required → *out = NULL. The result is
 * NUL-terminated; free with dm_cfg_free_secret(). With DM_CONFIG_SECRETS_OPTIONAL, an unset
 * variable or unreadable file also gives *out = NULL, and *missing (free()) says why.
 */
int dm_cfg_get_secret(dm_cfg_loader *ld, const json_t *obj, const char *path, const char *base,
                      bool required, unsigned char **out, size_t *outlen, char **missing);

/*---- Sections (one file each) -----------------------------------------------------------*/

/* "redis" into c->redis (dm_config_redis.c); reads c->data_dir, so runs after it is set. */
int dm_cfg_parse_redis(dm_cfg_loader *ld, const json_t *root, dm_config *c);
void dm_cfg_free_redis(dm_config *c);

/* @p obj["auth"], a required non-empty array, into @p list (dm_config_auth.c). */
int dm_cfg_parse_auth_list(dm_cfg_loader *ld, const json_t *obj, const char *parent,
                           dm_auth_list *list);
void dm_cfg_free_auth_list(dm_auth_list *l);

/* "spool" into c->spool (dm_config_spool.c); reads c->data_dir, so runs after it is set. */
int dm_cfg_parse_spool(dm_cfg_loader *ld, const json_t *root, dm_config *c);
void dm_cfg_free_spool(dm_config *c);

/* "outputs" into c->outputs (dm_config_outputs.c). */
int dm_cfg_parse_outputs(dm_cfg_loader *ld, const json_t *root, dm_config *c);
void dm_cfg_free_outputs(dm_config *c);

#endif
