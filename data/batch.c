/* Minibatches over one token stream (d2l's seq_data_iter_random and
 * seq_data_iter_sequential), and the synthetic long-range tasks. */
#include "loom/data.h"

#include <stdlib.h>
#include <string.h>

struct loom_batches {
    const int32_t *ids;
    int64_t n;
    int T, B;
    loom_sampling sampling;
    uint64_t seed;
    int64_t epoch, batch;   /* position: the next batch is `batch` of `epoch` */
    int64_t per_epoch;      /* batches in the current epoch */
    int64_t offset;         /* tokens dropped at the start of this epoch */
    int64_t *starts;        /* random: the windows' starts in dealing order */
    int64_t stream_len;     /* sequential: tokens per parallel stream */
};

/* A counter-based generator: the epoch's draws depend only on (seed, epoch). */
static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n) { return (*s = mix(*s)) % n; }

/* Lays out epoch e: its offset, and the order of its windows. */
static void start_epoch(loom_batches *b, int64_t e)
{
    uint64_t s = b->seed * 0xD1B54A32D192ED03ull ^ mix((uint64_t)e + 1);
    b->epoch = e, b->batch = 0;
    if (b->sampling == LOOM_SAMPLE_RANDOM) {
        b->offset = (int64_t)below(&s, (uint64_t)b->T);
        int64_t windows = (b->n - b->offset - 1) / b->T;
        for (int64_t i = 0; i < windows; i++) b->starts[i] = b->offset + i * b->T;
        for (int64_t i = windows - 1; i > 0; i--) { /* Fisher–Yates */
            int64_t j = (int64_t)below(&s, (uint64_t)i + 1), t = b->starts[i];
            b->starts[i] = b->starts[j], b->starts[j] = t;
        }
        b->per_epoch = windows / b->B;
    } else {
        b->offset = (int64_t)below(&s, (uint64_t)b->T + 1);
        b->stream_len = (b->n - b->offset - 1) / b->B;
        b->per_epoch = b->stream_len / b->T;
    }
}

loom_batches *loom_batches_new(const int32_t *ids, int64_t n, int steps, int batch, loom_sampling s, uint64_t seed)
{
    /* every epoch, whatever its offset, must hold one batch */
    if (!ids || steps < 1 || batch < 1 || n - steps - 1 < (int64_t)steps * batch) return NULL;
    loom_batches *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    *b = (loom_batches){.ids = ids, .n = n, .T = steps, .B = batch, .sampling = s, .seed = seed};
    if (s == LOOM_SAMPLE_RANDOM && !(b->starts = malloc((size_t)(n / steps + 1) * sizeof *b->starts))) {
        free(b);
        return NULL;
    }
    start_epoch(b, 0);
    return b;
}

void loom_batches_free(loom_batches *b)
{
    if (!b) return;
    free(b->starts);
    free(b);
}

bool loom_batches_next(loom_batches *b, int32_t *x, int32_t *y)
{
    if (b->batch == b->per_epoch) start_epoch(b, b->epoch + 1);
    bool first = b->batch == 0;
    for (int j = 0; j < b->B; j++) {
        /* random: the window dealt j-th in this batch; sequential: stream j,
         * continuing where the previous batch of that stream ended */
        int64_t start = b->sampling == LOOM_SAMPLE_RANDOM ? b->starts[b->batch * b->B + j]
                                                          : b->offset + j * b->stream_len + b->batch * b->T;
        for (int t = 0; t < b->T; t++) {
            x[t * b->B + j] = b->ids[start + t];
            y[t * b->B + j] = b->ids[start + t + 1];
        }
    }
    b->batch++;
    return first;
}

int64_t loom_batches_per_epoch(const loom_batches *b) { return b->per_epoch; }

void loom_batches_tell(const loom_batches *b, int64_t *epoch, int64_t *batch)
{
    *epoch = b->epoch;
    *batch = b->batch;
}

void loom_batches_seek(loom_batches *b, int64_t epoch, int64_t batch)
{
    start_epoch(b, epoch < 0 ? 0 : epoch);
    b->batch = batch < 0 ? 0 : batch > b->per_epoch ? b->per_epoch : batch;
}

/* ---- synthetic tasks ---- */

static float unit(uint64_t *s) { return (float)((*s = mix(*s)) >> 40) * (1.0f / 16777216.0f); }

void loom_task_adding(int T, int B, uint64_t seed, float *x, float *y)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    memset(x, 0, (size_t)T * (size_t)B * 2 * sizeof *x);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) x[((size_t)t * B + b) * 2] = unit(&s);
        int half = T / 2 > 0 ? T / 2 : 1;
        int i = (int)below(&s, (uint64_t)half), j = half + (int)below(&s, (uint64_t)(T - half > 0 ? T - half : 1));
        if (j >= T) j = T - 1;
        if (j == i) j = (i + 1) % T;
        x[((size_t)i * B + b) * 2 + 1] = 1.0f;
        x[((size_t)j * B + b) * 2 + 1] = 1.0f;
        y[b] = x[((size_t)i * B + b) * 2] + x[((size_t)j * B + b) * 2];
    }
}

void loom_task_copy(int T, int K, int A, int B, uint64_t seed, int32_t *x, int32_t *y)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 11;
    int L = K + T + K;
    memset(x, 0, (size_t)L * (size_t)B * sizeof *x);
    memset(y, 0, (size_t)L * (size_t)B * sizeof *y);
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < K; k++) {
            int32_t sym = 1 + (int32_t)below(&s, (uint64_t)A);
            x[(size_t)k * B + b] = sym;
            y[(size_t)(K + T + k) * B + b] = sym;
        }
        x[(size_t)(K + T - 1) * B + b] = A + 1; /* the delimiter: now repeat */
    }
}
