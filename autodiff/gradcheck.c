/* Gradient check, as PyTorch's gradcheck does it in float64: the graph and
 * the gradient nodes loom_backward added are evaluated in double precision
 * by the ops' reference kernels (the double path, loom_op_desc.map64/f64),
 * and every checked element's analytic gradient is compared with the
 * central difference (L(x + ε) − L(x − ε)) / 2ε in double. A difference
 * across a kink (ReLU at 0, a hard sigmoid's corners) is recognised by its
 * one-sided differences disagreeing; there the analytic value must match
 * one of them (it is the derivative of the side x lies on). The f32 plan's
 * gradients (the kernels loom trains with, and the plan rewrites) are then
 * compared with the double path's. */
#include "loom/gradcheck.h"
#include "graph/walk.h"
#include "loom/random.h"
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>

/* The double path's evaluation of a graph: a value per node it needs. */
typedef struct {
    const loom_graph *g;
    int32_t n;
    double **val;  /* val[i]: node i's value (NULL: not needed) */
    bool *dirty;   /* nodes that depend on the element being perturbed */
    uint64_t run_seed;
    char err[256];
} eval64;

static loom_status eval_node(eval64 *e, int32_t i)
{
    loom_walk w = loom_graph_walk(e->g);
    const loom_node *nd = loom_walk_node(w, i);
    const loom_op_desc *d = loom_op(nd->op);
    if (d->flags & OPF_BOUND) return LOOM_OK; /* set from the bindings */
    enum { MAX_IN = 64 };
    const double *in_small[MAX_IN];
    const loom_node *nodes_small[MAX_IN];
    const double **in = in_small;
    const loom_node **in_node = nodes_small;
    if (nd->n_in > MAX_IN) {
        in = malloc((size_t)nd->n_in * sizeof *in);
        in_node = malloc((size_t)nd->n_in * sizeof *in_node);
        if (!in || !in_node) {
            if (in != in_small) free(in);
            if (in_node != nodes_small) free(in_node);
            snprintf(e->err, sizeof e->err, "out of memory");
            return LOOM_ERR_NOMEM;
        }
    }
    for (int j = 0; j < nd->n_in; j++) {
        int32_t k = loom_walk_in(w, i, j);
        in[j] = e->val[k];
        in_node[j] = loom_walk_node(w, k);
    }
    loom_args64 a = {e->g, nd, e->val[i], in, in_node, nd->n_in, e->run_seed, true, e->err, sizeof e->err};
    loom_status s = LOOM_OK;
    if (d->f64) {
        s = d->f64(&a);
    } else if (d->map64) {
        s = loom_map64_run(&a, d->map64);
    } else {
        snprintf(e->err, sizeof e->err, "op %s has no double-precision kernel", d->name);
        s = LOOM_ERR_STATE;
    }
    if (in != in_small) free(in);
    if (in_node != nodes_small) free(in_node);
    return s;
}

/* Evaluates the needed nodes (only the dirty ones when `only_dirty`), in
 * node order, which is a topological order. */
static loom_status eval_run(eval64 *e, bool only_dirty)
{
    for (int32_t i = 0; i < e->n; i++) {
        if (!e->val[i] || (only_dirty && !e->dirty[i])) continue;
        loom_status s = eval_node(e, i);
        if (s) return s;
    }
    return LOOM_OK;
}

/* Buffers for every node the outputs need; the bound ones filled from the
 * bindings (i32 values as doubles). */
static loom_status eval_new(eval64 *e, const loom_graph *g, const loom_tensor *outs, int n_outs, const loom_binding *b1,
                            int n1, const loom_binding *b2, int n2, uint64_t seed)
{
    memset(e, 0, sizeof *e);
    e->g = g;
    e->n = loom_graph_size(g);
    e->run_seed = seed * 0x2545F4914F6CDD1Dull; /* a plan's first run after loom_plan_set_seed(seed) */
    e->val = calloc((size_t)e->n, sizeof *e->val);
    e->dirty = calloc((size_t)e->n, sizeof *e->dirty);
    bool *need = calloc((size_t)e->n, sizeof *need);
    if (!e->val || !e->dirty || !need) {
        free(need);
        snprintf(e->err, sizeof e->err, "out of memory");
        return LOOM_ERR_NOMEM;
    }
    loom_walk w = loom_graph_walk(g);
    for (int k = 0; k < n_outs; k++) need[outs[k].id - 1] = true;
    for (int32_t i = e->n - 1; i >= 0; i--)
        for (int j = 0; need[i] && j < loom_walk_node(w, i)->n_in; j++) need[loom_walk_in(w, i, j)] = true;
    loom_status s = LOOM_OK;
    for (int32_t i = 0; !s && i < e->n; i++) {
        if (!need[i]) continue;
        int64_t numel = loom_shape_numel(loom_walk_node(w, i)->shape);
        if (!(e->val[i] = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(double)))) {
            snprintf(e->err, sizeof e->err, "out of memory");
            s = LOOM_ERR_NOMEM;
        }
    }
    for (int k = 0; !s && k < n1 + n2; k++) {
        const loom_binding *b = k < n1 ? &b1[k] : &b2[k - n1];
        const loom_node *nd = loom_graph_node(g, b->t);
        if (!nd || !e->val[b->t.id - 1]) continue; /* not needed */
        double *v = e->val[b->t.id - 1];
        for (int64_t q = 0, n = loom_shape_numel(nd->shape); q < n; q++)
            v[q] = nd->dtype == LOOM_I32 ? ((const int32_t *)b->data)[q] : ((const float *)b->data)[q];
    }
    free(need);
    return s;
}

static void eval_free(eval64 *e)
{
    for (int32_t i = 0; e->val && i < e->n; i++) free(e->val[i]);
    free(e->val);
    free(e->dirty);
}

/* Marks the nodes that depend on node `src`. */
static void mark_dirty(eval64 *e, int32_t src)
{
    loom_walk w = loom_graph_walk(e->g);
    memset(e->dirty, 0, (size_t)e->n * sizeof *e->dirty);
    e->dirty[src] = true;
    for (int32_t i = src + 1; i < e->n; i++)
        for (int j = 0; e->val[i] && j < loom_walk_node(w, i)->n_in && !e->dirty[i]; j++)
            e->dirty[i] = e->dirty[loom_walk_in(w, i, j)];
}

static bool within(double a, double b, double atol, double rtol)
{
    return fabs(a - b) <= atol + rtol * fmax(fabs(a), fabs(b));
}

loom_status loom_gradcheck(loom_graph *g, loom_tensor loss, const loom_binding *wrt, int n_wrt,
                           const loom_binding *fixed, int n_fixed, const loom_gradcheck_opts *opts,
                           loom_gradcheck_result *res)
{
    loom_gradcheck_opts o = {.eps = 1e-6, .atol = 1e-5, .rtol = 1e-3, .f32_tol = 1e-3, .seed = 1};
    if (opts) {
        o = *opts;
        if (o.eps <= 0) o.eps = 1e-6;
        if (o.atol <= 0) o.atol = 1e-5;
        if (o.rtol <= 0) o.rtol = 1e-3;
        if (o.f32_tol <= 0) o.f32_tol = 1e-3;
    }
    loom_gradcheck_result r = {.passed = true, .worst_tensor = -1, .worst_index = -1, .f32_worst_tensor = -1};
    if (res) *res = r;
    if (n_wrt < 1 || !wrt) {
        loom_graph_fail(g, LOOM_ERR_ARG, "gradcheck: nothing to check (no wrt tensors)");
        return LOOM_ERR_ARG;
    }
    loom_tensor *grads = malloc((size_t)n_wrt * sizeof *grads), *outs = malloc((size_t)(n_wrt + 1) * sizeof *outs);
    if (!grads || !outs) {
        free(grads), free(outs);
        loom_graph_fail(g, LOOM_ERR_NOMEM, "gradcheck: out of memory");
        return LOOM_ERR_NOMEM;
    }
    for (int i = 0; i < n_wrt; i++) outs[i + 1] = wrt[i].t;
    loom_status st = loom_backward(g, loss, outs + 1, n_wrt, grads);
    outs[0] = loss;
    for (int i = 0; i < n_wrt; i++) outs[i + 1] = grads[i];

    /* the f32 plan: its gradients, compared at the end; it also checks the
     * bindings and the index inputs before the double path reads them */
    loom_plan *pb = NULL;
    if (!st) {
        pb = loom_plan_new(g, outs, n_wrt + 1, &(loom_plan_opts){.seed = o.seed});
        st = pb ? LOOM_OK : loom_graph_status(g);
    }
    if (!st) st = loom_bind_all(pb, wrt, n_wrt);
    if (!st) st = loom_bind_all(pb, fixed, n_fixed);
    if (!st) {
        loom_plan_set_seed(pb, o.seed);
        st = loom_run(pb);
    }
    if (st && pb && *loom_plan_error(pb)) loom_graph_fail(g, st, "gradcheck: %s", loom_plan_error(pb));

    eval64 e;
    memset(&e, 0, sizeof e);
    if (!st) st = eval_new(&e, g, outs, n_wrt + 1, wrt, n_wrt, fixed, n_fixed, o.seed);
    if (!st) st = eval_run(&e, false);
    double **ga = calloc((size_t)n_wrt, sizeof *ga); /* the double path's analytic gradients */
    if (!st && !ga) st = LOOM_ERR_NOMEM, snprintf(e.err, sizeof e.err, "out of memory");
    for (int i = 0; !st && i < n_wrt; i++) {
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        if (!(ga[i] = malloc((size_t)numel * sizeof **ga))) {
            st = LOOM_ERR_NOMEM, snprintf(e.err, sizeof e.err, "out of memory");
            break;
        }
        memcpy(ga[i], e.val[grads[i].id - 1], (size_t)numel * sizeof **ga);
    }
    double *lv = st ? NULL : e.val[loss.id - 1], l0 = lv ? lv[0] : 0;

    uint64_t rng = o.seed * 0x9E3779B97F4A7C15ull + 1;
    int64_t total = 0, done = 0;
    for (int i = 0; i < n_wrt; i++) {
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        total += o.max_checks > 0 && o.max_checks < numel ? o.max_checks : numel;
    }
    double worst_ratio = -1;
    for (int i = 0; !st && i < n_wrt; i++) {
        int32_t src = wrt[i].t.id - 1;
        double *x = e.val[src];
        if (!x) continue; /* the loss does not depend on it: every gradient is 0 */
        mark_dirty(&e, src);
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        int64_t count = o.max_checks > 0 && o.max_checks < numel ? o.max_checks : numel;
        for (int64_t c = 0; !st && c < count; c++) {
            int64_t el = c;
            if (count < numel) el = (int64_t)loom_below(&rng, (uint64_t)numel); /* sampled, with repeats */
            double keep = x[el], lp = 0, lm = 0;
            x[el] = keep + o.eps;
            st = eval_run(&e, true);
            if (!st) lp = lv[0];
            x[el] = keep - o.eps;
            if (!st) st = eval_run(&e, true);
            if (!st) lm = lv[0];
            x[el] = keep;
            if (st) break;
            double an = ga[i][el], num = (lp - lm) / (2 * o.eps);
            bool ok = within(an, num, o.atol, o.rtol);
            if (!ok) { /* a kink between x − ε and x + ε: the one-sided differences disagree */
                double right = (lp - l0) / o.eps, left = (l0 - lm) / o.eps;
                if (!within(right, left, o.atol, o.rtol) && (within(an, right, o.atol, o.rtol) || within(an, left, o.atol, o.rtol))) {
                    ok = true;
                    num = within(an, right, o.atol, o.rtol) ? right : left;
                    r.kinks++;
                }
            }
            double err = fabs(an - num), scale = fmax(fabs(an), fabs(num));
            bool finite = isfinite(err);
            r.checked++;
            if (!finite || !ok) r.passed = false;
            if (err > r.max_abs_err || !finite) r.max_abs_err = finite ? err : INFINITY;
            if (scale > 0 && err / scale > r.max_rel_err) r.max_rel_err = err / scale;
            /* the worst element: the first non-finite one, else the furthest past its tolerance */
            double ratio = finite ? err / (o.atol + o.rtol * scale) : INFINITY;
            if (ratio > worst_ratio && !(isinf(worst_ratio))) {
                worst_ratio = ratio;
                r.worst_tensor = i;
                r.worst_index = el;
                r.worst_analytic = an;
                r.worst_numeric = num;
            }
            if (o.progress) o.progress(o.progress_ctx, ++done, total);
        }
        if (!st) st = eval_run(&e, true); /* the values at the restored x, for the next tensor's nodes */
    }
    if (st && *e.err) loom_graph_fail(g, st, "gradcheck (double precision): %s", e.err);

    /* the f32 plan's gradients against the double path's, relative to each
     * tensor's largest gradient — but at least a thousandth of the largest
     * of all (a tensor whose true gradient is 0 up to rounding: terms that
     * cancel) and 1e-4·max(|L|, 1) (below f32's resolution of the loss: a
     * saturated tanh's 1 − y² is 0 in f32) */
    double biggest = 0;
    for (int i = 0; !st && i < n_wrt; i++)
        for (int64_t q = 0, numel = loom_tensor_numel(g, wrt[i].t); q < numel; q++) biggest = fmax(biggest, fabs(ga[i][q]));
    for (int i = 0; !st && i < n_wrt; i++) {
        const float *g32 = loom_plan_output(pb, grads[i]);
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        double big = fmax(1e-3 * biggest, 1e-4 * fmax(fabs(l0), 1));
        for (int64_t q = 0; q < numel; q++) big = fmax(big, fabs(ga[i][q]));
        for (int64_t q = 0; q < numel; q++) {
            double d = fabs(g32[q] - ga[i][q]) / fmax(big, 1e-30);
            if (!(d <= r.f32_max_err)) {
                r.f32_max_err = isfinite(d) ? d : INFINITY;
                r.f32_worst_tensor = i;
                r.f32_worst_index = q;
            }
        }
    }
    if (!(r.f32_max_err <= o.f32_tol)) r.passed = false;

    for (int i = 0; ga && i < n_wrt; i++) free(ga[i]);
    free(ga);
    eval_free(&e);
    loom_plan_free(pb);
    free(grads), free(outs);
    if (st) r.passed = false;
    if (res) *res = r;
    return st;
}
