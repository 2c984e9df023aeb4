#include "dm_common.h"
#include "dm_jsonw.h"

#include <stdlib.h>

void dm_jsonw_put(json_t *obj, const char *key, json_t *val)
{
    if (!val || json_object_set_new(obj, key, val) != 0)
        abort();
}

json_t *dm_jsonw_str(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = dm_xstrdup(s);
    for (char *p = copy; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    }
    j = json_string(copy);
    free(copy);
    return j;
}

void dm_jsonw_put_str(json_t *obj, const char *key, const char *s)
{
    dm_jsonw_put(obj, key, dm_jsonw_str(s));
}

void dm_jsonw_put_opt_str(json_t *obj, const char *key, const char *s)
{
    if (s)
        dm_jsonw_put_str(obj, key, s);
}
