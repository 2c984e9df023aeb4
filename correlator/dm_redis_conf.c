/* dm_redis_conf.c - see dm_redis_conf.h. */
#include "dm_redis_conf.h"
#include "dm_join.h"
#include "dm_scripts.h"

dm_redis_opts dm_redis_conf_opts(const dm_config *c, const char *socket, const char *name)
{
    dm_join_conf join;
    dm_join_conf_init(&join, c);
    return (dm_redis_opts){
        .host = socket ? NULL : c->redis.host,
        .port = socket ? 0 : c->redis.port,
        .unix_path = socket ? socket : c->redis.unix_path,
        .username = c->redis.username,
        .password = c->redis.password,
        .db = c->redis.db,
        .cluster = c->redis.cluster,
        .connect_timeout_ms = c->redis.connect_timeout_ms,
        .command_timeout_ms = c->redis.command_timeout_ms,
        .scripts = dm_join_scripts(&join),
        .nscripts = DM_SCRIPT_COUNT,
        .name = name,
    };
}
