/* Inside an unrolled model (see loom/inspect.h): its carried states, and
 * the loss's gradient with respect to each, in float32 and float64. */
#include "loom/inspect.h"
#include "autodiff/eval64.h"
#include "loom/autodiff.h"
#include "loom/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void loom_states_find(const loom_graph *g, const loom_state_grid *grid, loom_tensor *out)
{
    size_t n = loom_state_count(grid);
    for (size_t i = 0; i < n; i++) out[i] = LOOM_INVALID;
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        loom_tags t = loom_graph_node(g, loom_at(i))->tags;
        if (t.state < 1 || t.state > grid->states || t.role == LOOM_ROLE_BACKWARD || t.step < 0 || t.step >= grid->steps ||
            t.layer < 0 || t.layer >= grid->layers || t.dir < 0 || t.dir >= grid->dirs)
            continue;
        out[loom_state_at(grid, t.step, t.layer, t.dir, t.state - 1)] = loom_at(i); /* the last node of the state's tag */
    }
}

void loom_state_name(const loom_graph *g, int s, char *buf, size_t n)
{
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const char *nm = loom_tensor_name(g, loom_at(i));
        if (loom_graph_node(g, loom_at(i))->tags.state != s + 1 || !nm) continue;
        size_t len = strcspn(nm, "[");
        if (len && nm[len] == '[' && len < n) {
            snprintf(buf, n, "%.*s", (int)len, nm);
            return;
        }
    }
    if (s < 2) snprintf(buf, n, "%s", s ? "c" : "h");
    else snprintf(buf, n, "s%d", s); /* as the unroller names the inputs s2_0, s3_0 */
}

static double norm_of(const float *v, int64_t n)
{
    double s = 0;
    for (int64_t q = 0; q < n; q++) s += (double)v[q] * v[q];
    return sqrt(s);
}

/* ‖v‖ without overflow or underflow of the squares (values near 1e-200). */
static double norm64_of(const double *v, int64_t n)
{
    double big = 0, s = 0;
    for (int64_t q = 0; q < n; q++) big = fmax(big, fabs(v[q]));
    if (!(big > 0) || !isfinite(big)) return big;
    for (int64_t q = 0; q < n; q++) s += (v[q] / big) * (v[q] / big);
    return big * sqrt(s);
}

loom_status loom_state_grad_norms(loom_graph *g, loom_tensor loss, const loom_state_grid *grid, const loom_binding *binds,
                                  int n_binds, float *norm, double *norm64)
{
    size_t n = loom_state_count(grid);
    int m = 0;
    loom_tensor *states = malloc(n * sizeof *states), *wrt = malloc(n * sizeof *wrt);
    loom_tensor *grads = malloc(n * sizeof *grads);
    loom_plan *p = NULL;
    loom_eval64 e = {0};
    loom_status st = LOOM_OK;
    if (!states || !wrt || !grads) loom_graph_fail(g, st = LOOM_ERR_NOMEM, "gradient norms: out of memory");
    if (!st) {
        loom_states_find(g, grid, states);
        for (size_t i = 0; i < n; i++)
            if (loom_valid(states[i])) wrt[m++] = states[i];
        st = m ? loom_backward(g, loss, wrt, m, grads) : LOOM_OK;
    }
    if (!st && m) {
        p = loom_plan_new(g, grads, m, &(loom_plan_opts){.eval = true});
        st = p ? LOOM_OK : loom_graph_status(g);
    }
    if (!st && p) st = loom_bind_all(p, binds, n_binds);
    if (!st && p && (st = loom_run(p))) loom_graph_fail(g, st, "gradient norms: %s", loom_plan_error(p));
    if (!st && m && norm64) { /* the same gradients in double precision, each value freed after its last use */
        st = loom_eval64_new(&e, g, grads, m, binds, n_binds, NULL, 0, 0, true);
        if (!st) st = loom_eval64_run(&e, false);
        if (st) loom_graph_fail(g, st, "gradient norms (double precision): %s", e.err);
    }
    for (size_t i = 0, k = 0; !st && i < n; i++) {
        norm[i] = 0;
        if (norm64) norm64[i] = 0;
        if (!loom_valid(states[i])) continue;
        int64_t numel = loom_tensor_numel(g, states[i]);
        norm[i] = (float)norm_of(loom_plan_output(p, grads[k]), numel);
        if (norm64) norm64[i] = norm64_of(loom_eval64_value(&e, grads[k]), numel);
        k++;
    }
    loom_eval64_free(&e);
    loom_plan_free(p);
    free(states), free(wrt), free(grads);
    return st;
}

loom_status loom_state_norms_rows(loom_metrics *m, const loom_graph *g, const loom_state_grid *grid, const float *norm,
                                  const double *norm64, int64_t step)
{
    char names[LOOM_CELL_MAX_STATES][32], first[32] = "", n64[40] = "";
    int S = grid->states < LOOM_CELL_MAX_STATES ? grid->states : LOOM_CELL_MAX_STATES;
    for (int s = 0; s < S; s++) loom_state_name(g, s, names[s], sizeof names[s]);
    if (step >= 0) snprintf(first, sizeof first, "%lld,", (long long)step);
    loom_status st = LOOM_OK;
    for (int t = 0; t < grid->steps; t++)
        for (int l = 0; l < grid->layers; l++)
            for (int d = 0; d < grid->dirs; d++)
                for (int s = 0; !st && s < S; s++) {
                    size_t i = loom_state_at(grid, t, l, d, s);
                    if (norm64) snprintf(n64, sizeof n64, "%.17g", norm64[i]);
                    st = loom_metrics_row(m, "%s%d,%d,%s,%s,%.9g,%s", first, t + 1, l, d ? "reverse" : "forward", names[s],
                                          (double)norm[i], n64);
                }
    return st;
}
