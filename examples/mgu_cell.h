/* A user-defined recurrent cell: the minimal gated unit (MGU). */
#ifndef LOOM_EXAMPLE_MGU_CELL_H
#define LOOM_EXAMPLE_MGU_CELL_H

#include <loom/rnn.h>

extern const loom_cell_def mgu_cell;

#endif
