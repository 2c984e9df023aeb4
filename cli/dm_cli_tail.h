/* dm_cli_tail.h - "digestmap tail": print the output records of every shard's stream as JSON
 * lines, with or without a consumer group (dm_cli_tail.c gives the delivery rules).
 *
 * Takes @p argc/@p argv from the command name on, and @p f with the global options given
 * before it; prints, and returns the exit code (dm_cli_opts.h).
 */
#ifndef DM_CLI_DM_CLI_TAIL_H
#define DM_CLI_DM_CLI_TAIL_H

#include "dm_cli_opts.h"

int dm_cli_cmd_tail(dm_cli_flags *f, int argc, char **argv);

#endif
