/* Internal: a whole file into memory, for the text readers of data/. */
#ifndef LOOM_DATA_READ_H
#define LOOM_DATA_READ_H

#include "graph/error.h"

#include <stddef.h>

/* The bytes of the file at path (malloc'd; *len of them), or NULL with the
 * reason in e ("PATH: cannot open: ...", out of memory, read error). */
char *loom_read_all(const char *path, size_t *len, loom_error *e);

#endif
