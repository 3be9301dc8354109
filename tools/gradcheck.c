/* `loom gradcheck`: a language-model-shaped graph — inputs (T, B, I) →
 * recurrent stack → linear decoder → cross-entropy against random targets —
 * whose every gradient (parameters, inputs, initial states) is checked
 * against central differences. */
#include "tool.h"

#include "loom/loom.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

const char gradcheck_help[] =
    "build an unrolled recurrent language-model graph, take its BPTT\n"
    "gradients and check every one against central differences\n";

typedef struct {
    tool_model m;
    long vocab, max_checks;
    double eps;
    bool help;
} gc_args;

#define G(field) offsetof(gc_args, field)
const tool_opt gradcheck_opts[] = {
    {"--vocab", OPT_INT, G(vocab), 1, 100000, .arg = "V", .help = "output classes (default 7)"},
    {"--eps", OPT_REAL, G(eps), 1e-30, 0.5, .arg = "E",
     .help = "central-difference step, taken in double precision (default 1e-6)"},
    {"--max-checks", OPT_INT, G(max_checks), 1, 1L << 40, .arg = "N",
     .help = "check at most N sampled elements of each tensor (default: all);\n"
             "a long check reports its progress on stderr"},
};
#undef G
const int n_gradcheck_opts = (int)(sizeof gradcheck_opts / sizeof *gradcheck_opts);

/* 0: parsed; otherwise the exit status. */
static int parse(gc_args *a, int argc, char **argv)
{
    *a = (gc_args){{&loom_cell_lstm, 4, 3, 5, 6, 1, 1, false, 0}, 7, 0, 0, false};
    int rc = tool_opts("loom gradcheck", gradcheck_opts, n_gradcheck_opts, a, &a->m, argc, argv, &a->help);
    if (rc || a->help) return rc;
    if (a->eps == 0) a->eps = 1e-6;
    return 0;
}

typedef struct {
    loom_graph *g;
    loom_tensor x, init[LOOM_CELL_MAX_STATES], targets, loss;
    int32_t n_forward;
} lm_graph;

static void build(lm_graph *lm, const gc_args *a)
{
    const tool_model *m = &a->m;
    int D = m->bidirectional ? 2 : 1;
    loom_graph *g = lm->g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = m->cell, .input_size = (int)m->input, .hidden_size = (int)m->hidden,
                                            .layers = (int)m->layers, .bidirectional = m->bidirectional,
                                            .stacking = (loom_stacking)m->stacking});
    loom_tensor dec_w = loom_param(g, "decoder.weight", loom_shape2((int)a->vocab, (int)(D * m->hidden)));
    loom_tensor dec_b = loom_param(g, "decoder.bias", loom_shape1((int)a->vocab));
    lm->x = loom_input(g, "input", loom_shape3((int)m->steps, (int)m->batch, (int)m->input));
    loom_rnn_args args = {0};
    loom_rnn_init_inputs(g, &rnn, (int)m->batch, args.init);
    memcpy(lm->init, args.init, sizeof lm->init);
    lm->targets = loom_input_i32(g, "targets", loom_shape2((int)m->steps, (int)m->batch));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, lm->x, &args);
    loom_tensor logits = loom_add(g, loom_matmul(g, o.output, dec_w, false, true), dec_b);
    lm->loss = loom_cross_entropy(g, logits, lm->targets, LOOM_NO_MASK);
    lm->n_forward = loom_graph_size(g);
}

static float uniform(uint64_t *rng, float lo, float hi) { return lo + (hi - lo) * (float)loom_uniform(rng); }

/* Random values in [-0.5, 0.5) for parameters, [-1, 1) for inputs and
 * states: larger than PyTorch's initial weights, so that every
 * nonlinearity works away from its linear regime. Fills wrt (parameters
 * first, their data in the store) and the targets; false when out of memory. */
static bool fill(const lm_graph *lm, loom_store *store, const gc_args *a, loom_binding *wrt, int *n_wrt, int32_t *tg)
{
    loom_graph *g = lm->g;
    uint64_t rng = loom_mix((uint64_t)a->m.seed + 1);
    for (int i = 0; i < loom_store_count(store); i++) {
        loom_tensor t = loom_store_tensor(store, i);
        float *d = loom_store_data(store, t);
        for (int64_t k = 0; k < loom_tensor_numel(g, t); k++) d[k] = uniform(&rng, -0.5f, 0.5f);
        wrt[(*n_wrt)++] = (loom_binding){t, d};
    }
    loom_tensor in_t[1 + LOOM_CELL_MAX_STATES] = {lm->x};
    for (int s = 0; s < a->m.cell->n_states; s++) in_t[1 + s] = lm->init[s];
    for (int i = 0; i < 1 + a->m.cell->n_states; i++) {
        int64_t n = loom_tensor_numel(g, in_t[i]);
        float *d = malloc((size_t)n * sizeof *d);
        if (!d) return false;
        for (int64_t k = 0; k < n; k++) d[k] = uniform(&rng, -1, 1);
        wrt[(*n_wrt)++] = (loom_binding){in_t[i], d};
    }
    for (long k = 0; k < a->m.steps * a->m.batch; k++) tg[k] = (int32_t)(uniform(&rng, 0, 1) * (float)a->vocab) % (int32_t)a->vocab;
    return true;
}

/* Progress on stderr every few seconds, for checks that take a while. */
typedef struct {
    struct timespec start, last;
    bool shown;
} progress;

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + 1e-9 * (double)(now.tv_nsec - t->tv_nsec);
}

static void show_progress(void *ctx, int64_t done, int64_t total)
{
    progress *p = ctx;
    if ((done & 63) && done != total) return; /* read the clock now and then */
    if (since(&p->last) < 2.0 && done != total) return;
    if (done == total && !p->shown) return;
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    double el = since(&p->start);
    fprintf(stderr, "loom gradcheck: %" PRId64 " of %" PRId64 " elements (%.0f%%), %.0f s, about %.0f s left\n", done,
            total, 100.0 * (double)done / (double)total, el, el / (double)done * (double)(total - done));
    p->shown = true;
}

static void report(const lm_graph *lm, const gc_args *a, const loom_gradcheck_result *r, const loom_binding *wrt, int n_wrt)
{
    const tool_model *m = &a->m;
    printf("%s%s language model: T=%ld B=%ld input=%ld hidden=%ld layers=%ld%s vocab=%ld (matmul: %s)\n", m->cell->name,
           loom_cell_source(m->cell) ? " (equations)" : "",
           m->steps, m->batch, m->input, m->hidden, m->layers, m->bidirectional ? " bidirectional" : "", a->vocab,
           loom_blas_enabled() ? "CBLAS" : "portable kernel");
    printf("graph: %d forward nodes, %d backward nodes, fingerprint %016" PRIx64 "\n", lm->n_forward,
           loom_graph_size(lm->g) - lm->n_forward, loom_graph_fingerprint(lm->g));
    printf("checked %" PRId64 " gradient elements over %d tensors in double precision (eps %.1e", r->checked, n_wrt, a->eps);
    if (r->kinks) printf("; %" PRId64 " one-sided, at kinks", r->kinks);
    printf(")\n");
    if (r->worst_tensor >= 0)
        printf("largest error %.3e (relative %.3e); worst against its tolerance: %s[%" PRId64 "], analytic %.9g, numeric %.9g%s\n",
               r->max_abs_err, r->max_rel_err, loom_tensor_name(lm->g, wrt[r->worst_tensor].t), r->worst_index,
               r->worst_analytic, r->worst_numeric, isfinite(r->max_abs_err) ? "" : " (not finite: a NaN or infinite gradient)");
    if (r->f32_worst_tensor >= 0)
        printf("f32 gradients (the kernels training runs): within %.3e of double, relative to the tensor's largest (worst %s[%" PRId64 "])\n",
               r->f32_max_err, loom_tensor_name(lm->g, wrt[r->f32_worst_tensor].t), r->f32_worst_index);
    printf("gradcheck %s\n", r->passed ? "passed" : "FAILED");
}

int gradcheck_parse(int argc, char **argv)
{
    gc_args a;
    return parse(&a, argc, argv);
}

int cmd_gradcheck(int argc, char **argv)
{
    gc_args a;
    int rc = parse(&a, argc, argv);
    if (rc) return rc;
    if (a.help) {
        tool_help("gradcheck [options]", gradcheck_help, gradcheck_opts, n_gradcheck_opts, true);
        return 0;
    }
    lm_graph lm;
    build(&lm, &a);
    if (loom_graph_failed(lm.g)) {
        fprintf(stderr, "loom: %s\n", loom_graph_error(lm.g));
        rc = tool_exit(loom_graph_status(lm.g));
        loom_graph_free(lm.g);
        return rc;
    }
    loom_store *store = loom_store_new(lm.g);
    int n_params = store ? loom_store_count(store) : 0, n_wrt = 0;
    loom_binding *wrt = calloc((size_t)(n_params + 1 + a.m.cell->n_states), sizeof *wrt);
    int32_t *tg = malloc((size_t)(a.m.steps * a.m.batch) * sizeof *tg);
    loom_gradcheck_result r;
    progress pr = {.shown = false};
    clock_gettime(CLOCK_MONOTONIC, &pr.start);
    pr.last = pr.start;
    rc = 1;
    if (loom_store_status(store)) {
        fprintf(stderr, "loom: %s\n", loom_store_error(store));
    } else if (!wrt || !tg || !fill(&lm, store, &a, wrt, &n_wrt, tg)) {
        fprintf(stderr, "loom: out of memory\n");
    } else if (loom_gradcheck(lm.g, lm.loss, wrt, n_wrt, &(loom_binding){lm.targets, tg}, 1,
                              &(loom_gradcheck_opts){.eps = a.eps, .max_checks = a.max_checks, .seed = (uint64_t)a.m.seed,
                                                     .progress = show_progress, .progress_ctx = &pr},
                              &r)) {
        fprintf(stderr, "loom: %s\n", loom_graph_error(lm.g));
    } else {
        report(&lm, &a, &r, wrt, n_wrt);
        rc = r.passed ? 0 : 1;
    }
    for (int i = n_params; wrt && i < n_wrt; i++) free(wrt[i].data);
    free(wrt);
    free(tg);
    loom_store_free(store);
    loom_graph_free(lm.g);
    return rc;
}
