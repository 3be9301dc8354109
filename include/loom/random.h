/* loom/random.h — splitmix64, the one generator behind every seeded draw
 * in loom (initialisers, truncation, data order, task generators,
 * sampling): a draw depends only on the seed and the counter, so a run is
 * the same on every machine and a draw can be made again from its seed
 * and position alone (nothing to save in a checkpoint). */
#ifndef LOOM_RANDOM_H
#define LOOM_RANDOM_H

#include <stdint.h>

/* splitmix64's output for the counter value z + γ (a hash of z). */
static inline uint64_t loom_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The next draw of the generator whose counter is *state. */
static inline uint64_t loom_splitmix(uint64_t *state)
{
    uint64_t z = loom_mix(*state);
    *state += 0x9E3779B97F4A7C15ull;
    return z;
}

/* A draw of the stream *s (which the draw replaces), uniform in [0, n). */
static inline uint64_t loom_below(uint64_t *s, uint64_t n) { return (*s = loom_mix(*s)) % n; }

/* A draw of the generator *state, uniform in [0, 1) with 53 bits. */
static inline double loom_uniform(uint64_t *state) { return (double)(loom_splitmix(state) >> 11) * 0x1p-53; }

#endif
