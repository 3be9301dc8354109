/* Internal: what the readers and generators of data/ share — a whole file
 * into memory, a growing string, and the seeded generator (loom/random.h). */
#ifndef LOOM_DATA_READ_H
#define LOOM_DATA_READ_H

#include "graph/error.h"
#include "loom/random.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The bytes of the regular file at path (malloc'd, NUL after the *len of
 * them), or NULL with the reason in e: LOOM_ERR_ARG when path names no file
 * or not a regular one (a directory, a FIFO, /dev/zero: refused before any
 * read), LOOM_ERR_NOMEM, LOOM_ERR_IO for a read error. */
char *loom_read_all(const char *path, size_t *len, loom_error *e);

/* A growing byte string, NUL-terminated after its n bytes (zero-initialise it). */
typedef struct {
    char *s;
    size_t n, cap;
} loom_buf;

/* Appends n bytes; false when out of memory (b is left as it was). */
static inline bool loom_buf_put(loom_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = 2 * b->cap + n + 4096;
        char *ns = realloc(b->s, cap);
        if (!ns) return false;
        b->s = ns, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->s[b->n += n] = 0;
    return true;
}

#endif
