/* dm_resp.c - bounds on hiredis's reply reader (dm_resp.h). */
#include "dm_common.h"
#include "dm_resp.h"

#include <hiredis/hiredis.h>
#include <pthread.h>

/* hiredis's own functions (every reader shares one static table), copied once with the array
 * constructor replaced. */
static redisReplyObjectFunctions bounded;
static void *(*hiredis_array)(const redisReadTask *, int);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *bounded_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || (size_t)elements > DM_RESP_MAX_ELEMENTS)
        return NULL; /* the reader fails the connection: nothing is allocated */
    return hiredis_array(task, elements);
}

static void init(void)
{
    redisReader *r = redisReaderCreate();
    if (!r || !r->fn || !r->fn->createArray) {
        if (r)
            redisReaderFree(r);
        return;
    }
    bounded = *r->fn;
    hiredis_array = bounded.createArray;
    bounded.createArray = bounded_array;
    redisReaderFree(r);
}

void dm_resp_bound(struct redisReader *r)
{
    pthread_once(&once, init);
    if (r && hiredis_array && r->fn && r->fn->createArray == hiredis_array)
        r->fn = &bounded;
}
