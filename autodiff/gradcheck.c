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
#include "autodiff/eval64.h"
#include "loom/random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    loom_eval64 e;
    memset(&e, 0, sizeof e);
    if (!st) st = loom_eval64_new(&e, g, outs, n_wrt + 1, wrt, n_wrt, fixed, n_fixed, o.seed, false);
    if (!st) st = loom_eval64_run(&e, false);
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
        loom_eval64_mark(&e, src);
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        int64_t count = o.max_checks > 0 && o.max_checks < numel ? o.max_checks : numel;
        for (int64_t c = 0; !st && c < count; c++) {
            int64_t el = c;
            if (count < numel) el = (int64_t)loom_below(&rng, (uint64_t)numel); /* sampled, with repeats */
            double keep = x[el], lp = 0, lm = 0;
            x[el] = keep + o.eps;
            st = loom_eval64_run(&e, true);
            if (!st) lp = lv[0];
            x[el] = keep - o.eps;
            if (!st) st = loom_eval64_run(&e, true);
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
        if (!st) st = loom_eval64_run(&e, true); /* the values at the restored x, for the next tensor's nodes */
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
    loom_eval64_free(&e);
    loom_plan_free(pb);
    free(grads), free(outs);
    if (st) r.passed = false;
    if (res) *res = r;
    return st;
}
