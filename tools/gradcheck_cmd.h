/* Subcommands of the loom command and what they share. */
#ifndef LOOM_TOOLS_GRADCHECK_CMD_H
#define LOOM_TOOLS_GRADCHECK_CMD_H

#include "loom/rnn.h"

#include <stdbool.h>

/* `loom gradcheck [options]`, `loom dot [options]`; return the exit status. */
int loom_cmd_gradcheck(int argc, char **argv);
int loom_cmd_dot(int argc, char **argv);
/* A built-in cell or the example user cell (mgu) by name, or NULL. */
const loom_cell_def *loom_tool_cell(const char *name);
/* Parses an integer flag value in [lo, hi]; false (with a message) otherwise. */
bool loom_tool_int(const char *flag, const char *s, long lo, long hi, long *out);

#endif
