/* dm_base64.c - strict base64 decoding (RFC 4648) for the adapters. */
#include "dm_base64.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static bool in_alphabet(char c, bool url)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return url ? c == '-' || c == '_' : c == '+' || c == '/';
}

/*
 * The standard, padded form of @p in, as EVP_DecodeBlock wants it, in a new buffer of
 * *padded bytes; *pad is how many of them are '='. NULL when the shape is wrong: that is
 * checked here because EVP_DecodeBlock is lenient (it skips surrounding whitespace and takes
 * '=' anywhere).
 */
static unsigned char *standard_form(const char *in, size_t len, bool url, size_t *padded,
                                    size_t *pad)
{
    if (url) {
        if (len % 4 == 1)
            return NULL;
        *pad = (4 - len % 4) % 4;
    } else {
        if (len % 4 != 0)
            return NULL;
        *pad = 0;
        while (*pad < 2 && *pad < len && in[len - 1 - *pad] == '=')
            (*pad)++;
    }
    size_t chars = url ? len : len - *pad;
    for (size_t i = 0; i < chars; i++) {
        if (!in_alphabet(in[i], url))
            return NULL;
    }
    *padded = chars + *pad;
    unsigned char *text = dm_xmalloc(*padded + 1);
    for (size_t i = 0; i < chars; i++)
        text[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
    memset(text + chars, '=', *pad);
    return text;
}

bool dm_base64_decode(const char *in, size_t len, unsigned flags, unsigned char **out,
                      size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    size_t padded, pad;
    unsigned char *text = standard_form(in, len, flags & DM_BASE64_URL, &padded, &pad);
    if (!text)
        return false;

    unsigned char *bin = dm_xmalloc(padded / 4 * 3 + 1);
    int n = EVP_DecodeBlock(bin, text, (int)padded);
    /* EVP_DecodeBlock counts the bytes the padding stands for as decoded zeros. */
    bool ok = n >= 0 && (size_t)n == padded / 4 * 3;
    size_t exact = ok ? (size_t)n - pad : 0;

    /* Canonical form: encoding the result again must give back the input. */
    if (ok && (flags & DM_BASE64_CANONICAL)) {
        unsigned char *again = dm_xmalloc(padded + 1);
        int m = EVP_EncodeBlock(again, bin, (int)exact);
        ok = m >= 0 && (size_t)m == padded && memcmp(again, text, padded) == 0;
        free(again);
    }
    free(text);
    if (!ok) {
        free(bin);
        return false;
    }
    /* Exact size, so a sanitizer build catches any read past the decoded bytes. */
    *out = dm_xrealloc(bin, exact ? exact : 1);
    *outlen = exact;
    return true;
}
