/* Internal: what the readers and generators of data/ share — a whole file
 * into memory, and a counter-based random generator. */
#ifndef LOOM_DATA_READ_H
#define LOOM_DATA_READ_H

#include "graph/error.h"

#include <stddef.h>
#include <stdint.h>

/* The bytes of the file at path (malloc'd; *len of them), or NULL with the
 * reason in e ("PATH: cannot open: ...", out of memory, read error). */
char *loom_read_all(const char *path, size_t *len, loom_error *e);

/* splitmix64: a draw that depends only on z (seeds, epochs, counters). */
static inline uint64_t loom_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The next draw of the stream *s, uniform in [0, n). */
static inline uint64_t loom_below(uint64_t *s, uint64_t n) { return (*s = loom_mix(*s)) % n; }

#endif
