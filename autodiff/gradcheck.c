/* Gradient check: analytic gradients from loom_backward against central
 * differences (L(x + ε) − L(x − ε)) / 2ε, element by element. */
#include "loom/gradcheck.h"
#include "loom/random.h"
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>

static loom_status run_loss(loom_plan *p, uint64_t seed, loom_tensor loss, double *out)
{
    loom_plan_set_seed(p, seed);
    loom_status s = loom_run(p);
    if (s) return s;
    *out = loom_plan_output(p, loss)[0];
    return LOOM_OK;
}

loom_status loom_gradcheck(loom_graph *g, loom_tensor loss, const loom_binding *wrt, int n_wrt,
                           const loom_binding *fixed, int n_fixed, const loom_gradcheck_opts *opts,
                           loom_gradcheck_result *res)
{
    loom_gradcheck_opts o = {.eps = 5e-3, .atol = 1e-3, .rtol = 1e-2, .seed = 1};
    if (opts) {
        o = *opts;
        if (o.eps <= 0) o.eps = 5e-3;
        if (o.atol <= 0) o.atol = 1e-3;
        if (o.rtol <= 0) o.rtol = 1e-2;
    }
    loom_gradcheck_result r = {true, 0, 0, 0, -1, -1, 0, 0};
    if (n_wrt < 1 || !wrt) {
        loom_graph_fail(g, LOOM_ERR_ARG, "gradcheck: nothing to check (no wrt tensors)");
        return LOOM_ERR_ARG;
    }
    loom_tensor *ts = malloc((size_t)n_wrt * sizeof *ts), *grads = malloc((size_t)n_wrt * sizeof *grads);
    loom_tensor *outs = malloc((size_t)(n_wrt + 1) * sizeof *outs);
    if (!ts || !grads || !outs) {
        free(ts), free(grads), free(outs);
        loom_graph_fail(g, LOOM_ERR_NOMEM, "gradcheck: out of memory");
        return LOOM_ERR_NOMEM;
    }
    for (int i = 0; i < n_wrt; i++) ts[i] = wrt[i].t;
    loom_status st = loom_backward(g, loss, ts, n_wrt, grads);
    loom_plan *pf = NULL, *pb = NULL;
    if (!st) {
        outs[0] = loss;
        for (int i = 0; i < n_wrt; i++) outs[i + 1] = grads[i];
        pb = loom_plan_new(g, outs, n_wrt + 1, &(loom_plan_opts){.seed = o.seed});
        pf = loom_plan_new(g, &loss, 1, &(loom_plan_opts){.seed = o.seed});
        st = pb && pf ? LOOM_OK : loom_graph_status(g);
    }
    if (!st) st = loom_bind_all(pb, wrt, n_wrt);
    if (!st) st = loom_bind_all(pb, fixed, n_fixed);
    if (!st) st = loom_bind_all(pf, wrt, n_wrt);
    if (!st) st = loom_bind_all(pf, fixed, n_fixed);
    double l0;
    if (!st) st = run_loss(pb, o.seed, loss, &l0);
    if (st && pb && *loom_plan_error(pb)) loom_graph_fail(g, st, "gradcheck: %s", loom_plan_error(pb));

    uint64_t rng = o.seed * 0x9E3779B97F4A7C15ull + 1;
    int64_t total = 0, done = 0;
    for (int i = 0; i < n_wrt; i++) {
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        total += o.max_checks > 0 && o.max_checks < numel ? o.max_checks : numel;
    }
    for (int i = 0; !st && i < n_wrt; i++) {
        float *x = wrt[i].data;
        const float *ga = loom_plan_output(pb, grads[i]);
        int64_t numel = loom_tensor_numel(g, wrt[i].t);
        int64_t count = o.max_checks > 0 && o.max_checks < numel ? o.max_checks : numel;
        for (int64_t c = 0; !st && c < count; c++) {
            int64_t e = c;
            if (count < numel) e = (int64_t)loom_below(&rng, (uint64_t)numel); /* sampled, with repeats */
            float keep = x[e];
            double lp, lm;
            x[e] = (float)(keep + o.eps);
            double hp = (double)x[e] - keep; /* the step actually taken in f32 */
            st = run_loss(pf, o.seed, loss, &lp);
            x[e] = (float)(keep - o.eps);
            double hm = keep - (double)x[e];
            if (!st) st = run_loss(pf, o.seed, loss, &lm);
            x[e] = keep;
            if (st) {
                loom_graph_fail(g, st, "gradcheck: %s", loom_plan_error(pf));
                break;
            }
            /* a step too small for f32 (hp + hm = 0) gives NaN, which fails */
            double num = (lp - lm) / (hp + hm), an = ga[e];
            double err = fabs(an - num), scale = fmax(fabs(an), fabs(num));
            double rel = err / fmax(scale, 1e-8);
            bool finite = isfinite(err);
            r.checked++;
            if (!finite || err > o.atol + o.rtol * scale) r.passed = false;
            /* the worst element: the first non-finite one, else the largest error */
            if (r.worst_tensor < 0 || (isfinite(r.max_abs_err) && (!finite || err > r.max_abs_err))) {
                r.max_abs_err = err;
                r.worst_tensor = i;
                r.worst_index = e;
                r.worst_analytic = an;
                r.worst_numeric = num;
            }
            if (err > o.atol && rel > r.max_rel_err) r.max_rel_err = rel;
            if (o.progress) o.progress(o.progress_ctx, ++done, total);
        }
    }
    loom_plan_free(pf);
    loom_plan_free(pb);
    free(ts), free(grads), free(outs);
    if (st) r.passed = false;
    if (res) *res = r;
    return st;
}
