/* Internal: cells written as equations (the cell language, README "Cells
 * from equations"). loom_cell_parse (loom/rnn.h) compiles and registers;
 * these compile and free a cell the registry does not hold (the parser's
 * fuzz target). */
#ifndef LOOM_FRONTENDS_CELL_LANG_H
#define LOOM_FRONTENDS_CELL_LANG_H

#include "loom/rnn.h"

/* A new cell from its equations, or NULL with err set ("ORIGIN:LINE:COL:
 * what was expected"; origin may be NULL). */
loom_cell_def *loom_cell_compile(const char *text, const char *origin, loom_error *err);
void loom_cell_discard(loom_cell_def *cell);

#endif
