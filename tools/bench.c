/* loom bench: training and inference speed of the language model on fixed
 * configurations — the figures the performance work is judged by.
 *
 * A training step is what `loom train` does: forward, mean cross-entropy
 * over all T·B positions from a zero state, backward, clip_grad_norm_ 1.0,
 * SGD at lr 1.0. Inference is the forward pass to the logits (evaluation
 * mode). Each figure is the median of --iters timed runs after one warm-up
 * run. bench/lm_torch.py times the same steps in PyTorch. */
#include "tool.h"

#include "loom/autodiff.h"
#include "loom/runtime.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int vocab, embed, hidden, layers, batch, steps; /* embed 0: one-hot input */
} bench_config;

static const bench_config configs[] = {
    {"charlm-small", 28, 0, 256, 1, 32, 35},
    {"charlm-512", 28, 0, 512, 1, 32, 35},
    {"wordlm-medium", 10000, 650, 650, 2, 20, 35},
    {"long-seq", 28, 0, 128, 1, 16, 1000},
};
#define N_CONFIGS (int)(sizeof configs / sizeof *configs)

const char bench_help[] =
    "time a training step and an inference pass of the language model on fixed\n"
    "configurations (median of --iters runs; without --config, every one;\n"
    "the GEMM floor is the training plan's matmul kernels run alone, in plan order):\n"
    "    charlm-small   vocab 28, one-hot, hidden 256, 1 layer, batch 32, seq len 35\n"
    "    charlm-512     vocab 28, one-hot, hidden 512, 1 layer, batch 32, seq len 35\n"
    "    wordlm-medium  vocab 10000, embedding 650, hidden 650, 2 layers, batch 20, seq len 35\n"
    "    long-seq       vocab 28, one-hot, hidden 128, 1 layer, batch 16, seq len 1000\n";

typedef struct {
    int config; /* −1: every one */
    int precision;
    const loom_cell_def *cell;
    long threads, iters, recompute, seq_len, batch;
    bool json, profile, mpi;
} bench_args;

#define B(field) offsetof(bench_args, field)
const tool_opt bench_opts[] = {
    {"--config", OPT_CHOICE, B(config), .choices = (const char *const[]){"charlm-small", "charlm-512", "wordlm-medium", "long-seq", NULL},
     .arg = "NAME", .help = "one configuration"},
    {"--cell", OPT_CELL, B(cell), .arg = "NAME", .help = "(default: rnn_tanh, gru and lstm in turn)"},
    {"--threads", OPT_INT, B(threads), 1, 1024, .arg = "N",
     .help = "threads (default: LOOM_NUM_THREADS, else OMP_NUM_THREADS, else all)"},
    {"--iters", OPT_INT, B(iters), 1, 100000, .arg = "N", .help = "timed runs per figure (default 5)"},
    {"--seq-len", OPT_INT, B(seq_len), 1, 1000000, .arg = "T", .help = "every configuration at sequence length T"},
    {"--batch", OPT_INT, B(batch), 1, 1000000, .arg = "B", .help = "every configuration at batch B (with --mpi: each process's)"},
    {"--recompute", OPT_AUTO, B(recompute), 0, 1000000, .arg = "N",
     .help = "keep the carried states every N steps and recompute the rest in the backward pass\n"
             "(auto: N = √T; 0: keep every value, the default)"},
    {"--precision", OPT_CHOICE, B(precision), .choices = tool_precisions, .arg = "P",
     .help = "the matrix products' operands: f32 (the default) or bf16 (f32 sums; a CPU with AVX512_BF16 or AMX)"},
    {"--json", OPT_FLAG, B(json), .help = "also one JSON object per result line (the last line is the last result)"},
    {"--profile", OPT_FLAG, B(profile),
     .help = "after each result, where a training step's time goes: the plan's kernels by kind, clipping, the update"},
    {"--mpi", OPT_FLAG, B(mpi),
     .help = "under mpirun -np N: a data-parallel training step (each process the configuration's batch) with the\n"
             "gradients' exchange overlapped with the backward pass, and started after it: the step, the time it waits\n"
             "on the exchange, tokens/s of all processes"},
};
#undef B
const int n_bench_opts = (int)(sizeof bench_opts / sizeof *bench_opts);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double train_ms, infer_ms, floor_ms, build_ms, plan_ms;
    int64_t flops;
    size_t peak, infer_peak, kept;
} bench_result;

/* The model, its two plans, and the buffers they read. */
typedef struct {
    loom_graph *g;
    loom_lm lm;
    loom_store *store;
    loom_plan *train, *infer;
    loom_optim *opt;
    loom_tensor *outs;
    float **grads, *state[LOOM_CELL_MAX_STATES];
    int64_t *sizes;
    int32_t *x, *y;
    int n_params;
} bench_model;

static void model_free(bench_model *m)
{
    loom_plan_free(m->train), loom_plan_free(m->infer);
    loom_optim_free(m->opt);
    loom_store_free(m->store);
    loom_graph_free(m->g);
    for (int s = 0; s < LOOM_CELL_MAX_STATES; s++) free(m->state[s]);
    free(m->outs), free(m->grads), free(m->sizes), free(m->x), free(m->y);
}

/* n tokens and targets: any ids will do for timing. */
static void fill_tokens(int32_t *x, int32_t *y, int64_t n, int vocab, uint64_t z)
{
    for (int64_t i = 0; i < n; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (int32_t)((z >> 33) % (uint64_t)vocab), y[i] = (int32_t)((z >> 13) % (uint64_t)vocab);
    }
}

static int build(bench_model *m, const bench_config *c, const loom_cell_def *cell, const bench_args *a, bench_result *r)
{
    double t0 = tool_now();
    m->g = loom_graph_new();
    if (!m->g) return 1;
    loom_lm_build(m->g, &m->lm, &(loom_lm_opts){.cell = cell, .vocab = c->vocab, .embed = c->embed, .hidden = c->hidden,
                                                 .layers = c->layers, .steps = c->steps, .batch = c->batch});
    m->store = loom_store_new(m->g);
    if (!m->store) return 1;
    if (loom_graph_failed(m->g) || loom_store_status(m->store)) {
        fprintf(stderr, "loom bench: %s\n", loom_graph_failed(m->g) ? loom_graph_error(m->g) : loom_store_error(m->store));
        return tool_exit(loom_graph_failed(m->g) ? loom_graph_status(m->g) : loom_store_status(m->store));
    }
    m->n_params = loom_store_count(m->store);
    m->outs = malloc((size_t)(m->n_params + 1) * sizeof *m->outs);
    m->grads = malloc((size_t)m->n_params * sizeof *m->grads);
    m->sizes = malloc((size_t)m->n_params * sizeof *m->sizes);
    if (!m->outs || !m->grads || !m->sizes) return 1;
    m->outs[0] = m->lm.loss;
    loom_backward_with(m->g, m->lm.loss, loom_store_tensors(m->store), m->n_params, m->outs + 1,
                       &(loom_backward_opts){.recompute = (int32_t)a->recompute});
    double t1 = tool_now();
    loom_precision prec = (loom_precision)a->precision;
    m->train = loom_plan_new(m->g, m->outs, m->n_params + 1, &(loom_plan_opts){.precision = prec});
    m->infer = m->train ? loom_plan_new(m->g, &m->lm.logits, 1, &(loom_plan_opts){.eval = true, .precision = prec}) : NULL;
    double t2 = tool_now();
    if (!m->train || !m->infer) {
        fprintf(stderr, "loom bench: %s\n", loom_graph_error(m->g));
        return tool_exit(loom_graph_status(m->g));
    }
    r->build_ms = (t1 - t0) * 1e3, r->plan_ms = (t2 - t1) * 1e3;
    loom_store_init(m->store, 1);
    int64_t n = (int64_t)c->steps * c->batch, sn = (int64_t)c->layers * c->batch * c->hidden;
    m->x = malloc((size_t)n * sizeof *m->x);
    m->y = malloc((size_t)n * sizeof *m->y);
    if (!m->x || !m->y) return 1;
    fill_tokens(m->x, m->y, n, c->vocab, 42);
    for (int s = 0; s < cell->n_states; s++) {
        m->state[s] = calloc((size_t)sn, sizeof(float));
        if (!m->state[s]) return 1;
        loom_bind(m->train, m->lm.init[s], m->state[s]);
        loom_bind(m->infer, m->lm.init[s], m->state[s]);
    }
    loom_store_bind(m->store, m->train), loom_store_bind(m->store, m->infer);
    loom_bind(m->train, m->lm.tokens, m->x), loom_bind(m->train, m->lm.targets, m->y);
    loom_bind(m->infer, m->lm.tokens, m->x);
    loom_error err = {0};
    m->opt = loom_optim_for_store(&(loom_optim_opts){.kind = LOOM_OPT_SGD, .lr = 1.0f}, m->store, &err);
    if (!m->opt) return fprintf(stderr, "loom bench: %s\n", err.msg), tool_exit(err.status);
    for (int i = 0; i < m->n_params; i++) m->sizes[i] = loom_store_numel(m->store, i);
    loom_plan_stats ts = loom_plan_get_stats(m->train);
    r->flops = ts.matmul_flops, r->kept = ts.kept_bytes;
    return 0;
}

/* One training step: run, clip, update; with clip_s and update_s, the
 * seconds of clipping and of the update added to them. */
static int train_step_timed(bench_model *m, double *clip_s, double *update_s)
{
    if (loom_run(m->train)) return fprintf(stderr, "loom bench: %s\n", loom_plan_error(m->train)), 1;
    for (int i = 0; i < m->n_params; i++) m->grads[i] = (float *)loom_plan_output(m->train, m->outs[1 + i]);
    double t0 = tool_now();
    loom_clip_grad_norm(m->grads, m->sizes, m->n_params, 1.0);
    double t1 = tool_now();
    loom_optim_step(m->opt, (const float *const *)m->grads, 1.0f);
    if (clip_s) *clip_s += t1 - t0, *update_s += tool_now() - t1;
    return 0;
}

static int train_step(bench_model *m) { return train_step_timed(m, NULL, NULL); }

/* The training plan's GEMMs alone (the floor of a training step). */
static int floor_step(bench_model *m)
{
    return loom_run_matmuls(m->train) ? (fprintf(stderr, "loom bench: %s\n", loom_plan_error(m->train)), 1) : 0;
}

static int infer_step(bench_model *m)
{
    return loom_run(m->infer) ? (fprintf(stderr, "loom bench: %s\n", loom_plan_error(m->infer)), 1) : 0;
}

/* Median ms of iters runs of step, after one warm-up run. */
static int median_ms(bench_model *m, int (*step)(bench_model *), int iters, double *ms)
{
    double *t = malloc((size_t)iters * sizeof *t);
    if (!t) return 1;
    int rc = step(m);
    for (int i = 0; i < iters && !rc; i++) {
        double t0 = tool_now();
        rc = step(m);
        t[i] = (tool_now() - t0) * 1e3;
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    *ms = iters % 2 ? t[iters / 2] : 0.5 * (t[iters / 2 - 1] + t[iters / 2]);
    free(t);
    return rc;
}

/* iters training steps with the plan's profile on: ms per step of each kind
 * of kernel (thread 0's time), of waiting, of clipping and of the update. */
static int profile_steps(bench_model *m, int iters)
{
    loom_plan_set_profile(m->train, true);
    double clip = 0, update = 0;
    for (int i = 0; i < iters; i++)
        if (train_step_timed(m, &clip, &update)) return 1;
    loom_profile_row rows[12];
    double wall, busy = 0;
    int64_t runs;
    int n = loom_plan_profile(m->train, rows, 12, &wall, &runs);
    loom_plan_set_profile(m->train, false);
    printf("  a training step, ms (mean of %d; kernels: thread 0's time):\n", iters);
    for (int i = 0; i < n && i < 12; i++) {
        printf("    %-22s %9.2f  (%.1f calls)\n", rows[i].kind, rows[i].seconds * 1e3 / iters, (double)rows[i].calls / iters);
        busy += rows[i].seconds;
    }
    if (n > 12) printf("    (%d more kinds)\n", n - 12);
    printf("    %-22s %9.2f\n    %-22s %9.2f\n    %-22s %9.2f\n    %-22s %9.2f\n", "waiting, other kinds", (wall - busy) * 1e3 / iters,
           "clipping", clip * 1e3 / iters, "update", update * 1e3 / iters, "step", (wall + clip + update) * 1e3 / iters);
    return 0;
}

static int run_one(const bench_config *c, const loom_cell_def *cell, const bench_args *a, int threads, double peak)
{
    bench_model m = {0};
    bench_result r = {0};
    int iters = (int)a->iters;
    bool json = a->json, profile = a->profile;
    int rc = build(&m, c, cell, a, &r);
    if (!rc) rc = median_ms(&m, train_step, iters, &r.train_ms);
    if (!rc) rc = median_ms(&m, infer_step, iters, &r.infer_ms);
    if (!rc) rc = median_ms(&m, floor_step, iters, &r.floor_ms);
    if (!rc) { /* the arenas and the packed weights' copies (made by the runs) */
        loom_plan_stats ts = loom_plan_get_stats(m.train), is = loom_plan_get_stats(m.infer);
        r.peak = ts.arena_bytes + ts.copies_bytes, r.infer_peak = is.arena_bytes + is.copies_bytes;
    }
    if (rc) model_free(&m);
    if (rc == 1) fprintf(stderr, "loom bench: %s %s: out of memory or a failed run\n", c->name, cell->name);
    if (rc) return rc;
    double tokens = (double)c->steps * c->batch;
    double gflops = (double)r.flops / (r.train_ms * 1e6);
    printf("%-14s %-9s %d thr  train %9.2f ms (GEMMs alone %.2f, ×%.2f)  infer %8.2f ms  %9.0f tok/s  %6.1f GFLOP/s "
           "(%4.1f%% of peak)  peak %7.1f MB (BPTT keeps %.1f MB)  infer peak %6.1f MB  (build %.0f ms, plan %.0f ms)\n",
           c->name, cell->name, threads, r.train_ms, r.floor_ms, r.train_ms / r.floor_ms, r.infer_ms,
           tokens / (r.train_ms * 1e-3), gflops, 100 * gflops / peak, r.peak / 1e6, r.kept / 1e6, r.infer_peak / 1e6, r.build_ms,
           r.plan_ms);
    if (json)
        printf("{\"config\": \"%s\", \"cell\": \"%s\", \"threads\": %d, \"seq_len\": %d, \"batch\": %d, \"recompute\": %ld, \"precision\": \"%s\", \"train_ms\": %.3f, \"infer_ms\": %.3f, "
               "\"tokens_per_s\": %.1f, \"gflops\": %.2f, \"fp32_peak_gflops\": %.1f, \"peak_bytes\": %zu, \"infer_peak_bytes\": %zu, "
               "\"kept_bytes\": %zu, \"gemm_floor_ms\": %.3f, \"build_ms\": %.2f, \"plan_ms\": %.2f, \"matmul\": \"%s\"}\n",
               c->name, cell->name, threads, c->steps, c->batch, a->recompute, tool_precisions[a->precision], r.train_ms, r.infer_ms, tokens / (r.train_ms * 1e-3),
               gflops, peak, r.peak, r.infer_peak, r.kept, r.floor_ms, r.build_ms, r.plan_ms,
               loom_blas_enabled() ? (loom_dnnl_enabled() ? "CBLAS+oneDNN" : "CBLAS") : "portable");
    if (profile) rc = profile_steps(&m, iters);
    model_free(&m);
    fflush(stdout);
    return rc;
}

/* Medians of iters data-parallel training steps (loom_trainer with a
 * communicator) after one warm-up step: the step's wall time, and the part
 * of it spent waiting on the gradients' exchange after the run. */
static int mpi_steps(const bench_config *c, const loom_cell_def *cell, const bench_args *a, loom_comm *comm, bool after,
                     double *step_ms, double *wait_ms)
{
    int iters = (int)a->iters;
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    loom_lm_build(g, &lm, &(loom_lm_opts){.cell = cell, .vocab = c->vocab, .embed = c->embed, .hidden = c->hidden,
                                           .layers = c->layers, .steps = c->steps, .batch = c->batch});
    loom_store *s = loom_store_new(g);
    loom_error err = {0};
    loom_trainer *t = s ? loom_trainer_new(g, s, &(loom_trainer_opts){.loss = lm.loss, .state_in = lm.init, .state_out = lm.out.final,
                                                                      .n_states = cell->n_states,
                                                                      .optim = {.kind = LOOM_OPT_SGD, .lr = 1.0f}, .clip_norm = 1,
                                                                      .recompute = (int32_t)a->recompute,
                                                                      .precision = (loom_precision)a->precision, .comm = comm,
                                                                      .comm_after = after},
                                           &err)
                        : NULL;
    int64_t n = (int64_t)c->steps * c->batch;
    int32_t *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    double *ms = malloc((size_t)iters * sizeof *ms), *w = malloc((size_t)iters * sizeof *w);
    int rc = !t ? (fprintf(stderr, "loom bench: %s\n", err.msg[0] ? err.msg : "out of memory"), 1) : !x || !y || !ms || !w;
    if (!rc) {
        loom_store_init(s, 1);
        fill_tokens(x, y, n, c->vocab, 42 + (uint64_t)loom_comm_rank(comm)); /* each rank its own */
        loom_trainer_bind(t, lm.tokens, x), loom_trainer_bind(t, lm.targets, y);
    }
    for (int i = -1; i < iters && !rc; i++) {
        loom_train_step st;
        double t0 = tool_now();
        if (loom_trainer_step(t, &st)) rc = (fprintf(stderr, "loom bench: %s\n", loom_trainer_error(t)), 1);
        else if (i >= 0) ms[i] = (tool_now() - t0) * 1e3, w[i] = st.comm_wait * 1e3;
    }
    if (!rc) {
        qsort(ms, (size_t)iters, sizeof *ms, cmp_double), qsort(w, (size_t)iters, sizeof *w, cmp_double);
        *step_ms = ms[iters / 2], *wait_ms = w[iters / 2];
    }
    free(x), free(y), free(ms), free(w);
    loom_trainer_free(t);
    loom_store_free(s);
    loom_graph_free(g);
    return rc;
}

static int run_mpi(const bench_config *c, const loom_cell_def *cell, const bench_args *a, loom_comm *comm, int threads)
{
    double ms[2], wait[2];
    for (int after = 0; after < 2; after++) {
        int rc = mpi_steps(c, cell, a, comm, after, &ms[after], &wait[after]);
        if (rc) return rc;
    }
    int ranks = loom_comm_size(comm);
    double tokens = (double)c->steps * c->batch * ranks;
    printf("%-14s %-9s %d × %d thr  step %8.2f ms, waiting on the exchange %6.2f ms (%4.1f%%); exchange after the backward pass: "
           "step %8.2f ms, waiting %6.2f ms (%4.1f%%)  %9.0f tok/s\n",
           c->name, cell->name, ranks, threads, ms[0], wait[0], 100 * wait[0] / ms[0], ms[1], wait[1], 100 * wait[1] / ms[1],
           tokens / (ms[0] * 1e-3));
    if (a->json)
        printf("{\"config\": \"%s\", \"cell\": \"%s\", \"ranks\": %d, \"threads\": %d, \"seq_len\": %d, \"batch\": %d, \"step_ms\": %.3f, \"wait_ms\": %.3f, "
               "\"step_after_ms\": %.3f, \"wait_after_ms\": %.3f, \"tokens_per_s\": %.1f}\n",
               c->name, cell->name, ranks, threads, c->steps, c->batch, ms[0], wait[0], ms[1], wait[1], tokens / (ms[0] * 1e-3));
    fflush(stdout);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_args a = {.config = -1, .iters = 5};
    bool help = false;
    int rc = tool_opts("loom bench", bench_opts, n_bench_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help) tool_help("bench [options]", bench_help, bench_opts, n_bench_opts, false);
        return rc;
    }
    const bench_config *only = a.config >= 0 ? &configs[a.config] : NULL;
    const loom_cell_def *cell = a.cell;
    long threads = a.threads;
    if (!tool_threads(threads)) return 2;
    int n_threads = omp_get_max_threads();
    const loom_cell_def *cells[] = {&loom_cell_rnn_tanh, &loom_cell_gru, &loom_cell_lstm};
    loom_comm *comm = NULL;
    if (a.mpi) {
        loom_error err = {0};
        if (!loom_comm_launched())
            return fprintf(stderr, "loom bench: --mpi times data-parallel steps: run it under mpirun -np N (N >= 2)\n"), 2;
        if (!(comm = loom_comm_world(&err))) return fprintf(stderr, "loom bench: --mpi: %s\n", err.msg), 2;
        tool_ranks_quiet(loom_comm_rank(comm), loom_comm_size(comm));
        printf("loom bench --mpi: %d processes, each %d thread%s and the configuration's batch\n", loom_comm_size(comm), n_threads,
               n_threads > 1 ? "s" : "");
        for (int k = 0; k < N_CONFIGS && !rc; k++) {
            if (only && only != &configs[k]) continue;
            for (int j = 0; j < 3 && !rc; j++) {
                bench_config c = configs[k];
                if (a.seq_len) c.steps = (int)a.seq_len;
                if (a.batch) c.batch = (int)a.batch;
                rc = run_mpi(&c, cell ? cell : cells[j], &a, comm, n_threads);
                if (cell) break;
            }
        }
        if (rc) loom_comm_abort(comm, rc);
        loom_comm_free(comm);
        return rc;
    }
    printf("loom bench: %d thread%s, matmul %s, OPENBLAS_CORETYPE %s, rewrites %s\n", n_threads, n_threads > 1 ? "s" : "",
           a.precision ? "in bf16 on oneDNN, weights packed"
           : loom_blas_enabled() ? (loom_dnnl_enabled() ? "CBLAS, oneDNN for ≤ 64 rows (recurrent weights packed)" : "CBLAS")
                                 : "portable kernel",
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset", getenv("LOOM_REWRITES") ? getenv("LOOM_REWRITES") : "all");
    const char *isa;
    double peak = loom_fp32_peak(n_threads, 0.2, &isa);
    printf("FP32 peak of this machine: %.1f GFLOP/s on %d thread%s (%s fused multiply-adds, measured)\n", peak, n_threads,
           n_threads > 1 ? "s" : "", isa);
    for (int k = 0; k < N_CONFIGS; k++) {
        if (only && only != &configs[k]) continue;
        for (int j = 0; j < 3; j++) {
            bench_config c = configs[k];
            if (a.seq_len) c.steps = (int)a.seq_len;
            if (a.batch) c.batch = (int)a.batch;
            int rc = run_one(&c, cell ? cell : cells[j], &a, n_threads, peak);
            if (rc) return rc;
            if (cell) break;
        }
    }
    return 0;
}
