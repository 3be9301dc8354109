/* Minibatches over one token stream (d2l's seq_data_iter_random and
 * seq_data_iter_sequential). */
#include "loom/data.h"

#include "data/read.h"

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
    int first, columns;     /* this rank's columns of the batch (loom_batches_shard) */
};

/* Lays out epoch e: its offset, and the order of its windows. */
static void start_epoch(loom_batches *b, int64_t e)
{
    uint64_t s = b->seed * 0xD1B54A32D192ED03ull ^ loom_mix((uint64_t)e + 1);
    b->epoch = e, b->batch = 0;
    if (b->sampling == LOOM_SAMPLE_RANDOM) {
        b->offset = (int64_t)loom_below(&s, (uint64_t)b->T);
        int64_t windows = (b->n - b->offset - 1) / b->T;
        for (int64_t i = 0; i < windows; i++) b->starts[i] = b->offset + i * b->T;
        for (int64_t i = windows - 1; i > 0; i--) { /* Fisher–Yates */
            int64_t j = (int64_t)loom_below(&s, (uint64_t)i + 1), t = b->starts[i];
            b->starts[i] = b->starts[j], b->starts[j] = t;
        }
        b->per_epoch = windows / b->B;
    } else {
        b->offset = (int64_t)loom_below(&s, (uint64_t)b->T + 1);
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
    *b = (loom_batches){.ids = ids, .n = n, .T = steps, .B = batch, .sampling = s, .seed = seed, .columns = batch};
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
    for (int c = 0; c < b->columns; c++) {
        /* random: the window dealt j-th in this batch; sequential: stream j,
         * continuing where the previous batch of that stream ended */
        int64_t j = b->first + c;
        int64_t start = b->sampling == LOOM_SAMPLE_RANDOM ? b->starts[b->batch * b->B + j]
                                                          : b->offset + j * b->stream_len + b->batch * b->T;
        for (int t = 0; t < b->T; t++) {
            x[t * b->columns + c] = b->ids[start + t];
            y[t * b->columns + c] = b->ids[start + t + 1];
        }
    }
    b->batch++;
    return first;
}

int64_t loom_batches_per_epoch(const loom_batches *b) { return b->per_epoch; }

bool loom_batches_shard(loom_batches *b, int rank, int ranks)
{
    if (!b || ranks < 1 || rank < 0 || rank >= ranks || b->B % ranks) return false;
    b->columns = b->B / ranks, b->first = rank * b->columns;
    return true;
}

int loom_batches_columns(const loom_batches *b) { return b ? b->columns : 0; }

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
