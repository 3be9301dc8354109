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

/* The model both commands build: cell, stack and sizes. */
typedef struct {
    const loom_cell_def *cell;
    long steps, batch, input, hidden, layers, seed;
    bool bidirectional;
} loom_tool_model;

/* Reads argv[*a] if it is a model flag (advancing *a past its value):
 * 1 if it was one, 0 if not, -1 if its value is bad (message printed). */
int loom_tool_model_flag(loom_tool_model *m, int argc, char **argv, int *a);

#endif
