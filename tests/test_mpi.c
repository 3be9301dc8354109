/* Data parallelism on MPI, run by tests/mpi.sh under mpirun -np N (2, 3):
 * the deterministic mean, a sharded trainer against one process with the
 * global batch, the same run twice and with the exchange started after
 * the backward pass, a checkpoint written by the ranks and resumed, a
 * failure on one rank, and ranks with different models.
 *   test_mpi DIR   (DIR: where rank 0 writes its checkpoints) */
#include "loom/loom.h"

#include <mpi.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank, ranks, failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "rank %d: %s:%d: %s: ", rank, __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

/* ---- the mean ---- */

static void test_mean(loom_comm *c)
{
    /* sizes below, at and above the rank count (chunks of 0 floats) */
    int64_t sizes[] = {1, 2, 7, 1000, 4099};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int64_t n = sizes[s];
        float *x = malloc((size_t)n * sizeof *x), *want = malloc((size_t)n * sizeof *want);
        for (int64_t k = 0; k < n; k++) {
            float sum = 0;
            for (int r = 0; r < ranks; r++) { /* rank r's value, summed in rank order */
                float v = sinf((float)(k * 7 + r * 13)) * (float)(1 + r);
                sum += v;
                if (r == rank) x[k] = v;
            }
            want[k] = sum / (float)ranks;
        }
        loom_error err = {0};
        CHECK(!loom_comm_mean(c, x, n, &err), "%s", err.msg);
        CHECK(!memcmp(x, want, (size_t)n * sizeof *x), "mean of %lld floats: not the rank-ordered sum / N", (long long)n);
        free(x), free(want);
    }
}

/* A communicator of the program's: the even and the odd ranks apart, each
 * group its own mean (loom_comm_from_mpi duplicates it: the program's may
 * be freed at once). */
static void test_sub_communicator(void)
{
    MPI_Comm half;
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
    loom_error err = {0};
    loom_comm *c = loom_comm_from_mpi(&half, &err);
    MPI_Comm_free(&half);
    CHECK(c, "%s", err.msg);
    if (!c) return;
    int size = (ranks + 1 - rank % 2) / 2;
    CHECK(loom_comm_size(c) == size && loom_comm_rank(c) == rank / 2, "rank %d of %d", loom_comm_rank(c), loom_comm_size(c));
    float x[5], want = 0;
    for (int r = rank % 2; r < ranks; r += 2) want += (float)r; /* the group's ranks, in order */
    want /= (float)size;
    for (int k = 0; k < 5; k++) x[k] = (float)rank;
    CHECK(!loom_comm_mean(c, x, 5, &err), "%s", err.msg);
    for (int k = 0; k < 5; k++) CHECK(x[k] == want, "group mean %g, want %g", x[k], want);
    loom_comm_free(c);
}

/* ---- a trainer ---- */

static const char text[] = "the time traveller for so it will be convenient to speak of him was expounding a recondite "
                           "matter to us his grey eyes shone and twinkled and his usually pale face was flushed and animated";

typedef struct {
    loom_graph *g;
    loom_lm lm;
    loom_store *s;
    loom_batches *b;
    loom_trainer *t;
    int32_t ids[sizeof text];
} lm_run;

/* A character LSTM LM of batch `batch` per process over `text`, its
 * batches of global batch `batch` × ranks (comm: sharded by the trainer). */
static loom_trainer *lm_make(lm_run *m, loom_comm *c, int batch, int hidden, bool after, loom_error *err)
{
    memset(m, 0, sizeof *m);
    int n = 0;
    for (const char *p = text; *p; p++) m->ids[n++] = *p == ' ' ? 0 : *p - 'a' + 1;
    m->g = loom_graph_new();
    loom_lm_build(m->g, &m->lm, &(loom_lm_opts){.cell = loom_cell_by_name("lstm"), .vocab = 27, .hidden = hidden, .layers = 2,
                                                .steps = 5, .batch = batch, .seed = 3});
    m->s = loom_store_new(m->g);
    loom_store_init(m->s, 4);
    m->b = loom_batches_new(m->ids, n, 5, batch * (c ? loom_comm_size(c) : 1), LOOM_SAMPLE_SEQUENTIAL, 9);
    m->t = loom_trainer_new(m->g, m->s,
                            &(loom_trainer_opts){.loss = m->lm.loss, .state_in = m->lm.init, .state_out = m->lm.out.final,
                                                 .n_states = 2, .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .clip_norm = 0.5,
                                                 .batches = m->b, .tokens = m->lm.tokens, .targets = m->lm.targets, .comm = c,
                                                 .comm_after = after, .seed = 5},
                            err);
    return m->t;
}

static void lm_free(lm_run *m)
{
    loom_trainer_free(m->t);
    loom_batches_free(m->b);
    loom_store_free(m->s);
    loom_graph_free(m->g);
}

static int early; /* the last step's exchanges begun during its run */

static int steps(lm_run *m, int k, double *loss)
{
    for (int i = 0; i < k; i++) {
        loom_train_step s;
        if (loom_trainer_step(m->t, &s)) return 1;
        if (loss) loss[i] = s.loss;
        early = s.comm_early;
    }
    return 0;
}

/* The largest |a − b| over the largest |b| of parameter i of two stores. */
static double rel_diff(const lm_run *a, const lm_run *b, int i)
{
    const float *x = loom_store_data(a->s, loom_store_tensor(a->s, i)), *y = loom_store_data(b->s, loom_store_tensor(b->s, i));
    double d = 0, m = 0;
    for (int64_t k = 0; k < loom_store_numel(a->s, i); k++) d = fmax(d, fabs((double)x[k] - y[k])), m = fmax(m, fabs((double)y[k]));
    return m > 0 ? d / m : d;
}

static bool same_bits(const lm_run *a, const lm_run *b)
{
    for (int i = 0; i < loom_store_count(a->s); i++)
        if (memcmp(loom_store_data(a->s, loom_store_tensor(a->s, i)), loom_store_data(b->s, loom_store_tensor(b->s, i)),
                   (size_t)loom_store_numel(a->s, i) * sizeof(float)))
            return false;
    return true;
}

/* 20 steps on N ranks of batch 2 against one process of batch 2N: every
 * loss and every parameter within 1e-5 (relative); the run again, and
 * with the exchanges after the backward pass: the same bits. */
static void test_global_batch(loom_comm *c)
{
    lm_run dp, one, again, after;
    loom_error err = {0};
    CHECK(lm_make(&dp, c, 2, 16, false, &err), "%s", err.msg);
    CHECK(lm_make(&one, NULL, 2 * ranks, 16, false, &err), "%s", err.msg);
    CHECK(lm_make(&again, c, 2, 16, false, &err), "%s", err.msg);
    CHECK(lm_make(&after, c, 2, 16, true, &err), "%s", err.msg);
    if (!dp.t || !one.t || !again.t || !after.t) return;
    double l_dp[20], l_one[20];
    CHECK(!steps(&dp, 20, l_dp), "%s", loom_trainer_error(dp.t));
    /* the decoder's and the top layer's gradients are done long before the run ends */
    CHECK(early >= 2 && early < loom_store_count(dp.s), "%d of %d exchanges begun during the run", early, loom_store_count(dp.s));
    CHECK(!steps(&one, 20, l_one), "%s", loom_trainer_error(one.t));
    CHECK(!steps(&again, 20, NULL), "%s", loom_trainer_error(again.t));
    CHECK(!steps(&after, 20, NULL), "%s", loom_trainer_error(after.t));
    CHECK(early == 0, "comm_after: %d exchanges begun during the run", early);
    for (int i = 0; i < 20; i++) CHECK(fabs(l_dp[i] - l_one[i]) <= 1e-5 * fabs(l_one[i]), "step %d: loss %.9g, one process %.9g", i + 1, l_dp[i], l_one[i]);
    for (int i = 0; i < loom_store_count(dp.s); i++)
        CHECK(rel_diff(&dp, &one, i) <= 1e-5, "%s: %.3g from one process", loom_store_name(dp.s, i), rel_diff(&dp, &one, i));
    CHECK(same_bits(&dp, &again), "the same run twice differs");
    CHECK(same_bits(&dp, &after), "the exchange after the backward pass differs from the overlapped one");
    /* every rank the same bits */
    for (int i = 0; i < loom_store_count(dp.s); i++) {
        int64_t n = loom_store_numel(dp.s, i);
        float *all = malloc((size_t)(n * ranks) * sizeof *all);
        CHECK(!loom_comm_gather(c, loom_store_data(dp.s, loom_store_tensor(dp.s, i)), n, all, &err), "%s", err.msg);
        for (int r = 1; r < ranks; r++) CHECK(!memcmp(all, all + r * n, (size_t)n * sizeof *all), "rank %d's %s differs", r, loom_store_name(dp.s, i));
        free(all);
    }
    lm_free(&dp), lm_free(&one), lm_free(&again), lm_free(&after);
}

/* 10 steps, a checkpoint (rank 0 writes it), a new trainer restored from
 * it on every rank, 10 more: the bits of 20 straight steps. */
static void test_resume(loom_comm *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/dp.ckpt", dir);
    lm_run a, b, straight;
    loom_error err = {0};
    CHECK(lm_make(&a, c, 2, 16, false, &err), "%s", err.msg);
    CHECK(lm_make(&straight, c, 2, 16, false, &err), "%s", err.msg);
    if (!a.t || !straight.t) return;
    CHECK(!steps(&a, 10, NULL) && !steps(&straight, 20, NULL), "steps");
    loom_st *f = loom_st_new();
    loom_status st = loom_trainer_save(a.t, f);
    CHECK(!st, "save: %s", loom_trainer_error(a.t));
    if (rank == 0) st = loom_checkpoint_write(f, path);
    CHECK(!loom_comm_agree(c, st, &err), "write: %s", err.msg);
    loom_st_free(f);
    CHECK(lm_make(&b, c, 2, 16, false, &err), "%s", err.msg);
    f = loom_st_new();
    CHECK(!loom_checkpoint_read(f, path), "read %s", path);
    CHECK(loom_trainer_file_ranks(f) == ranks, "loom.ranks %lld", (long long)loom_trainer_file_ranks(f));
    CHECK(!loom_trainer_restore(b.t, f), "restore: %s", loom_trainer_error(b.t));
    loom_st_free(f);
    CHECK(!steps(&b, 10, NULL), "%s", loom_trainer_error(b.t));
    CHECK(same_bits(&b, &straight), "10 + 10 steps through a checkpoint differ from 20 straight");
    lm_free(&a), lm_free(&b), lm_free(&straight);
}

/* A fit whose batch callback fails on the last rank at step 3: every
 * rank's fit ends there with that rank's message. */
typedef struct {
    int calls;
} fail_ctx;

static loom_status next_batch(void *ctx, loom_trainer *t)
{
    fail_ctx *f = ctx;
    return ++f->calls == 3 && rank == ranks - 1 ? LOOM_ERR_IO : LOOM_OK;
}

static void test_failure(loom_comm *c)
{
    lm_run m;
    loom_error err = {0};
    CHECK(lm_make(&m, c, 2, 16, false, &err), "%s", err.msg);
    if (!m.t) return;
    fail_ctx f = {0};
    loom_status st = loom_trainer_fit(m.t, &(loom_fit_opts){.steps = 10, .ctx = &f, .next_batch = next_batch});
    char want[64];
    snprintf(want, sizeof want, "rank %d: ", ranks - 1);
    CHECK(st == LOOM_ERR_IO, "status %d", st);
    CHECK(!strncmp(loom_trainer_error(m.t), want, strlen(want)), "message '%s'", loom_trainer_error(m.t));
    CHECK(loom_trainer_steps(m.t) == 2, "%lld steps", (long long)loom_trainer_steps(m.t));
    lm_free(&m);
}

/* Rank 1 builds another model: every rank's trainer_new refuses it. */
static void test_other_model(loom_comm *c)
{
    lm_run m;
    loom_error err = {0};
    loom_trainer *t = lm_make(&m, c, 2, rank == 1 ? 17 : 16, false, &err);
    CHECK(!t, "a trainer of another model on rank 1");
    CHECK(strstr(err.msg, "rank 1's model"), "message '%s'", err.msg);
    lm_free(&m);
}

int main(int argc, char **argv)
{
    if (argc != 2) return fprintf(stderr, "usage: test_mpi DIR\n"), 2;
    loom_error err = {0};
    loom_comm *c = loom_comm_world(&err);
    if (!c) return fprintf(stderr, "%s\n", err.msg), 1;
    rank = loom_comm_rank(c), ranks = loom_comm_size(c);
    test_mean(c);
    test_sub_communicator();
    test_global_batch(c);
    test_resume(c, argv[1]);
    test_failure(c);
    if (ranks > 1) test_other_model(c);
    loom_status st = loom_comm_agree(c, failures ? LOOM_ERR_VALUE : LOOM_OK, &err); /* any rank's failure fails every rank */
    if (rank == 0) printf("test_mpi: %d ranks: %s\n", ranks, st ? "FAILED" : "passed");
    loom_comm_free(c);
    return st ? 1 : 0;
}
