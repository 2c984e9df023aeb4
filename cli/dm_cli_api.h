/* dm_cli_api.h - the commands of the digestmap client that talk to digestmapd's HTTP API:
 * "query" (GET /v1/images/<digest>) and "send-build" (POST a build event, signed with
 * dm_sign.h like a CI step would).
 *
 * Each takes @p argc/@p argv from the command name on, and @p f with the global options given
 * before it (the command adds those given after it); it prints its result and failures, and
 * returns the exit code (dm_cli_opts.h).
 */
#ifndef DM_CLI_DM_CLI_API_H
#define DM_CLI_DM_CLI_API_H

#include "dm_cli_opts.h"

int dm_cli_cmd_query(dm_cli_flags *f, int argc, char **argv);
int dm_cli_cmd_send_build(dm_cli_flags *f, int argc, char **argv);

#endif
