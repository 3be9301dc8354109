/* Internal: replacing a file atomically. Every file loom writes goes to a
 * temporary file in the target's directory, which is flushed, synced and
 * renamed over the target only when complete: a failed or interrupted write
 * leaves the old file (or none) and no temporary behind. */
#ifndef LOOM_IO_ATOMIC_H
#define LOOM_IO_ATOMIC_H

#include "graph/error.h"

#include <stdio.h>

typedef struct {
    FILE *f;     /* write here */
    char *tmp;   /* the temporary file's path */
    const char *path;
} loom_atomic;

/* Creates the temporary file PATH.tmpPID.XXXXXX (removing those of
 * writers that died before finishing), with the mode a new file would get (0666
 * less the umask) or the mode of the file it replaces. A path that is a
 * directory, or whose directory does not exist, is refused here. */
loom_status loom_atomic_open(loom_atomic *a, const char *path, loom_error *e);
/* Whether a file can be written at path: a temporary file is made beside
 * it and removed. */
loom_status loom_atomic_check(const char *path, loom_error *e);
/* Flushes, syncs, closes and renames over the target; on failure the
 * temporary file is removed and the target is untouched. */
loom_status loom_atomic_commit(loom_atomic *a, loom_error *e);
/* Closes and removes the temporary file. */
void loom_atomic_abort(loom_atomic *a);

#endif
