/* dm_config_secret.c - secrets given as "x", "x_env" or "x_file", and the files the loader
 * reads (secret files, jwks_file, SNS certificates, the configuration itself).
 *
 * Secrets are copied out of the document and wiped when freed; a tool that needs only some of
 * them loads with DM_CONFIG_SECRETS_OPTIONAL and gets the would-be error instead of a failure.
 */
#include "dm_config_loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SECRET_FILE_MAX 65536 /* a secret file larger than this is a mistake */

/*---- Files ------------------------------------------------------------------------------*/

void dm_cfg_free_secret(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* Read a whole file of at most @p limit bytes. Returns DM_OK, or -errno, or DM_EINVAL when
 * the file is larger than @p limit. *out is NUL-terminated (not counted in *outlen). */
int dm_cfg_read_file(const char *path, size_t limit, unsigned char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = limit + 1, len = 0; /* one spare byte detects "too large" */
    unsigned char *buf = dm_xmalloc(cap + 1);
    int rc = DM_OK;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc == DM_OK && len > limit)
        rc = DM_EINVAL;
    if (rc != DM_OK) {
        dm_cfg_free_secret(buf, cap + 1);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return DM_OK;
}

/* Relative paths are resolved against the configuration file's directory, so a config and
 * its secret files can move together. */
char *dm_cfg_resolve_path(const dm_cfg_loader *ld, const char *p)
{
    if (p[0] == '/' || !ld->base_dir || !*ld->base_dir)
        return dm_xstrdup(p);
    size_t n = strlen(ld->base_dir) + 1 + strlen(p) + 1;
    char *r = dm_xmalloc(n);
    snprintf(r, n, "%s/%s", ld->base_dir, p);
    return r;
}

/*---- Secrets ----------------------------------------------------------------------------*/

static int unresolved(dm_cfg_loader *ld, char **missing, int code, const char *path,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A secret that cannot be resolved: the load fails as dm_cfg_fail() would, or, with
 * DM_CONFIG_SECRETS_OPTIONAL, the same "<path>: <message>" goes to *@p missing and the load
 * goes on (the secret stays NULL). */
static int unresolved(dm_cfg_loader *ld, char **missing, int code, const char *path,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!(ld->flags & DM_CONFIG_SECRETS_OPTIONAL))
        return dm_cfg_fail(ld, code, path, "%s", msg);
    size_t n = strlen(path) + 2 + strlen(msg) + 1;
    *missing = dm_xmalloc(n);
    snprintf(*missing, n, "%s: %s", path, msg);
    return DM_OK;
}

static int secret_from_file(dm_cfg_loader *ld, const char *kpath, const char *file,
                            unsigned char **out, size_t *outlen, char **missing)
{
    char *full = dm_cfg_resolve_path(ld, file);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    char sb[SHOW_BUF];
    int rc = dm_cfg_read_file(full, SECRET_FILE_MAX, &buf, &len);
    if (rc == DM_EINVAL) {
        rc = dm_cfg_fail(ld, DM_EINVAL, kpath, "\"%s\" is larger than %d bytes",
                         dm_cfg_show(full, sb), SECRET_FILE_MAX);
        goto fail;
    }
    if (rc < 0) {
        /* Absent or unreadable here: a tool may not need it (DM_CONFIG_SECRETS_OPTIONAL). An
         * empty or oversized file is read fine and wrong, and stays an error below. */
        rc = unresolved(ld, missing, DM_EIO, kpath, "cannot read \"%s\": %s", dm_cfg_show(full, sb),
                        strerror(-rc));
        goto fail;
    }
    cap = len + 1;
    /* `echo token > file` leaves a newline that is not part of the secret; strip exactly one
     * line ending so that a key which really ends in other whitespace survives. */
    if (len >= 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n')
        len -= 2;
    else if (len >= 1 && buf[len - 1] == '\n')
        len -= 1;
    if (len == 0) {
        rc = dm_cfg_fail(ld, DM_EINVAL, kpath, "\"%s\" is empty", dm_cfg_show(full, sb));
        goto fail;
    }
    *out = dm_xmalloc(len + 1);
    memcpy(*out, buf, len);
    (*out)[len] = '\0';
    *outlen = len;
    dm_cfg_free_secret(buf, cap);
    free(full);
    return DM_OK;

fail:
    dm_cfg_free_secret(buf, cap);
    free(full);
    return rc;
}

/*
 * A secret given as "<base>", "<base>_env" or "<base>_file" in the object at @p path:
 * exactly one of them, non-empty. Absent and !required → *out = NULL. The result is
 * NUL-terminated; free with dm_cfg_free_secret(). With DM_CONFIG_SECRETS_OPTIONAL, an unset variable
 * or unreadable file also gives *out = NULL, and *missing (free()) says why.
 */
int dm_cfg_get_secret(dm_cfg_loader *ld, const json_t *obj, const char *path, const char *base,
                      bool required, unsigned char **out, size_t *outlen, char **missing)
{
    char k_env[64], k_file[64], pb[PATH_BUF], sb[SHOW_BUF];
    const char *val, *env, *file;
    int rc;

    *out = NULL;
    *outlen = 0;
    snprintf(k_env, sizeof(k_env), "%s_env", base);
    snprintf(k_file, sizeof(k_file), "%s_file", base);
    if ((rc = dm_cfg_get_str(ld, obj, path, base, true, &val)) < 0 ||
        (rc = dm_cfg_get_str(ld, obj, path, k_env, true, &env)) < 0 ||
        (rc = dm_cfg_get_str(ld, obj, path, k_file, true, &file)) < 0)
        return rc;

    int given = (val != NULL) + (env != NULL) + (file != NULL);
    if (given > 1)
        return dm_cfg_fail(ld, DM_EINVAL, path, "give only one of \"%s\", \"%s\" or \"%s\"", base,
                           k_env, k_file);
    if (given == 0) {
        if (!required)
            return DM_OK;
        return dm_cfg_fail(ld, DM_EINVAL, path, "one of \"%s\", \"%s\" or \"%s\" is required", base,
                           k_env, k_file);
    }
    if (val) {
        *outlen = strlen(val);
        *out = (unsigned char *)dm_xstrndup(val, *outlen);
        return DM_OK;
    }
    if (env) {
        /* getenv is not thread-safe, but configuration is loaded before any thread starts. */
        const char *ev = getenv(env);
        if (!ev || !*ev)
            return unresolved(ld, missing, DM_EINVAL, dm_cfg_key_path(pb, path, k_env),
                              "environment variable \"%s\" is not set or empty",
                              dm_cfg_show(env, sb));
        *outlen = strlen(ev);
        *out = (unsigned char *)dm_xstrndup(ev, *outlen);
        return DM_OK;
    }
    return secret_from_file(ld, dm_cfg_key_path(pb, path, k_file), file, out, outlen, missing);
}
