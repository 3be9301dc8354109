/* Shared test helpers: run a graph, compare arrays, gradient-check an op. */
#ifndef LOOM_TEST_HELPERS_H
#define LOOM_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"

/* Reads a safetensors file; NULL, with the file's error in err, when the
 * read fails. */
static inline loom_st *st_read(const char *path, char *err, size_t n)
{
    loom_st *f = loom_st_new();
    cr_assert(f, "out of memory");
    if (loom_st_read(f, path)) {
        snprintf(err, n, "%s", loom_st_error(f));
        loom_st_free(f);
        return NULL;
    }
    return f;
}

/* A whole file, NUL-terminated (malloc'd). */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

/* ‖∂L/∂h_t‖ of a one-sequence vanilla RNN by hand, in double:
 * h_t = tanh(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), L = Σ h_{T−1} ⊙ r;
 * g_{T−1} = r, g_t = W_hhᵀ (g_{t+1} ⊙ (1 − h_{t+1}²)). norms[t] for t < T. */
static inline void hand_rnn_grad_norms(int T, int I, int H, const float *xv, const float *Wih, const float *Whh,
                                       const float *bih, const float *bhh, const float *r, double *norms)
{
    double *h = calloc((size_t)(T + 1) * H, sizeof *h), *gr = calloc((size_t)T * H, sizeof *gr);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H; i++) {
            double a = (double)bih[i] + bhh[i];
            for (int j = 0; j < I; j++) a += (double)Wih[i * I + j] * xv[t * I + j];
            for (int j = 0; j < H; j++) a += (double)Whh[i * H + j] * h[t * H + j];
            h[(t + 1) * H + i] = tanh(a);
        }
    for (int i = 0; i < H; i++) gr[(T - 1) * H + i] = r[i];
    for (int t = T - 2; t >= 0; t--)
        for (int j = 0; j < H; j++)
            for (int i = 0; i < H; i++)
                gr[t * H + j] += Whh[i * H + j] * gr[(t + 1) * H + i] * (1 - h[(t + 2) * H + i] * h[(t + 2) * H + i]);
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int j = 0; j < H; j++) s += gr[t * H + j] * gr[t * H + j];
        norms[t] = sqrt(s);
    }
    free(h), free(gr);
}

/* dir/name in one of four rotating buffers (a call may hold up to four
 * paths at once). */
static inline const char *tmp_path(const char *dir, const char *name)
{
    static char p[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static uint64_t test_rng = 0x853c49e6748fea9bull;

static inline float rnd(float lo, float hi) { return lo + (hi - lo) * (float)loom_uniform(&test_rng); }

/* A heap buffer of n values uniform in [lo, hi) (freed by the test). */
static inline float *rnd_buf(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd(lo, hi);
    return p;
}

/* Runs a plan for `out` with bindings; returns a copy of its value. */
static inline float *eval(loom_graph *g, loom_tensor out, const loom_binding *b, int nb)
{
    cr_assert(!loom_graph_failed(g), "graph failed: %s", loom_graph_error(g));
    loom_plan *p = loom_plan_new(g, &out, 1, NULL);
    cr_assert(p, "plan failed: %s", loom_graph_error(g));
    for (int i = 0; i < nb; i++) cr_assert_eq(loom_bind(p, b[i].t, b[i].data), LOOM_OK, "%s", loom_plan_error(p));
    cr_assert_eq(loom_run(p), LOOM_OK, "run failed: %s", loom_plan_error(p));
    int64_t n = loom_tensor_numel(g, out);
    float *v = malloc((size_t)n * sizeof *v);
    cr_assert_eq(loom_plan_read(p, out, v, (size_t)n), LOOM_OK);
    loom_plan_free(p);
    return v;
}

static inline void assert_close(const float *got, const float *want, int64_t n, float tol)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) <= tol * (1.0f + fabsf(want[i])), "element %lld: got %.7g, want %.7g",
                  (long long)i, got[i], want[i]);
}

/* loss = Σ y ⊙ R with a fixed random R: every element of y gets a distinct
 * weight, so the check covers the whole Jacobian-vector product. */
static inline loom_tensor weighted_loss(loom_graph *g, loom_tensor y)
{
    int64_t n = loom_tensor_numel(g, y);
    float *r = rnd_buf(n, -1.0f, 1.0f);
    loom_tensor c = loom_constant(g, loom_tensor_shape(g, y), r);
    free(r);
    return loom_sum_all(g, loom_mul(g, y, c));
}

/* Gradient-checks the weighted loss of y with respect to wrt (all f32). */
static inline void check_grads(loom_graph *g, loom_tensor y, const loom_binding *wrt, int n,
                               const loom_binding *fixed, int nf)
{
    loom_tensor loss = weighted_loss(g, y);
    loom_gradcheck_result r;
    loom_status s = loom_gradcheck(g, loss, wrt, n, fixed, nf, NULL, &r);
    cr_assert_eq(s, LOOM_OK, "gradcheck: %s", loom_graph_error(g));
    cr_assert(r.checked > 0);
    cr_assert(r.passed, "gradient mismatch in wrt[%d] element %lld: analytic %.6g numeric %.6g", r.worst_tensor,
              (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
}

/* A language model, its store (initialised from init_seed) and a plan of
 * its loss and every parameter's gradient (outs[0] the loss, outs[1..n]
 * the gradients), the parameters bound. */
typedef struct {
    loom_graph *g;
    loom_lm lm;
    loom_store *s;
    int n;
    loom_tensor *outs;
    loom_plan *p;
} grad_plan;

static inline void grad_plan_make(grad_plan *m, const loom_lm_opts *o, uint64_t init_seed, const loom_backward_opts *bo,
                                  const loom_plan_opts *po)
{
    m->g = loom_graph_new();
    cr_assert_eq(loom_lm_build(m->g, &m->lm, o), LOOM_OK, "%s", loom_graph_error(m->g));
    m->s = loom_store_new(m->g);
    loom_store_init(m->s, init_seed);
    m->n = loom_store_count(m->s);
    m->outs = malloc((size_t)(m->n + 1) * sizeof *m->outs);
    m->outs[0] = m->lm.loss;
    cr_assert_eq(loom_backward_with(m->g, m->lm.loss, loom_store_tensors(m->s), m->n, m->outs + 1, bo), LOOM_OK, "%s",
                 loom_graph_error(m->g));
    m->p = loom_plan_new(m->g, m->outs, m->n + 1, po);
    cr_assert(m->p, "%s", loom_graph_error(m->g));
    loom_store_bind(m->s, m->p);
}

/* The loss and every gradient of the last run, end to end (malloc'd);
 * *count: how many floats. */
static inline float *grad_plan_values(const grad_plan *m, int64_t *count)
{
    int64_t total = 0;
    for (int i = 0; i <= m->n; i++) total += loom_tensor_numel(m->g, m->outs[i]);
    float *v = malloc((size_t)total * sizeof *v);
    for (int i = 0, at = 0; i <= m->n; at += (int)loom_tensor_numel(m->g, m->outs[i]), i++)
        memcpy(v + at, loom_plan_output(m->p, m->outs[i]), (size_t)loom_tensor_numel(m->g, m->outs[i]) * sizeof *v);
    *count = total;
    return v;
}

static inline void grad_plan_free(grad_plan *m)
{
    free(m->outs);
    loom_plan_free(m->p);
    loom_store_free(m->s);
    loom_graph_free(m->g);
}

/* A language model of at most 64 tokens a batch, its store (initialised
 * from seed 4) and a trainer of its loss with the carried states; each
 * step k trains on a fixed batch of token pattern k (trainer_rig_step). */
typedef struct {
    loom_graph *g;
    loom_lm lm;
    loom_store *s;
    loom_trainer *t;
    int tokens, vocab;
    int32_t x[64], y[64];
} trainer_rig;

/* to: the trainer's options but for the loss and states, which the rig sets. */
static inline void trainer_rig_make(trainer_rig *r, const loom_lm_opts *o, loom_trainer_opts to)
{
    cr_assert_leq(o->steps * o->batch, 64);
    r->g = loom_graph_new();
    cr_assert_eq(loom_lm_build(r->g, &r->lm, o), LOOM_OK, "%s", loom_graph_error(r->g));
    r->s = loom_store_new(r->g);
    loom_store_init(r->s, 4);
    r->tokens = o->steps * o->batch, r->vocab = o->vocab;
    to.loss = r->lm.loss, to.state_in = r->lm.init, to.state_out = r->lm.out.final, to.n_states = o->cell->n_states;
    loom_error err = {0};
    r->t = loom_trainer_new(r->g, r->s, &to, &err);
    cr_assert(r->t, "%s", err.msg);
    loom_trainer_bind(r->t, r->lm.tokens, r->x), loom_trainer_bind(r->t, r->lm.targets, r->y);
}

static inline double trainer_rig_step(trainer_rig *r, int k)
{
    int n = r->tokens;
    for (int i = 0; i < n; i++) r->x[i] = (k * n + i) * 5 % r->vocab, r->y[i] = (k * n + i + 1) * 5 % r->vocab;
    loom_train_step s;
    cr_assert_eq(loom_trainer_step(r->t, &s), LOOM_OK, "%s", loom_trainer_error(r->t));
    return s.loss;
}

static inline void trainer_rig_free(trainer_rig *r)
{
    loom_trainer_free(r->t);
    loom_store_free(r->s);
    loom_graph_free(r->g);
}

#endif
