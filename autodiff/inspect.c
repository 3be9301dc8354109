/* Inside an unrolled model (see loom/inspect.h): its carried states, and
 * the loss's gradient with respect to each, in float32 and float64. */
#include "loom/inspect.h"
#include "autodiff/eval64.h"
#include "ops/op.h"
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

static const char *const dir_name[] = {"forward", "reverse"};

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
                    st = loom_metrics_row(m, "%s%d,%d,%s,%s,%.9g,%s", first, t + 1, l, dir_name[d], names[s],
                                          (double)norm[i], n64);
                }
    return st;
}

/* ---- Jacobians between steps ---- */

static const void *bound(const loom_binding *b, int n, loom_tensor t)
{
    for (int i = 0; i < n; i++)
        if (b[i].t.id == t.id) return b[i].data;
    return NULL;
}

/* The input row of step t of layer l, direction d: the one node of an
 * earlier layer (or the input row, layer −1) of step t that the step's
 * nodes read. */
static loom_tensor step_input(const loom_graph *g, int t, int l, int d)
{
    loom_tensor found = LOOM_INVALID;
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        if (n->tags.step != t || n->tags.layer != l || n->tags.dir != d || n->tags.role == LOOM_ROLE_BACKWARD) continue;
        for (int j = 0; j < n->n_in; j++) {
            loom_tensor k = loom_node_input(g, loom_at(i), j);
            loom_tags kt = loom_graph_node(g, k)->tags;
            if (kt.step != t || kt.layer >= l || kt.role == LOOM_ROLE_BACKWARD) continue;
            if (loom_valid(found) && found.id != k.id) return LOOM_INVALID; /* two: not a step of the unroller's */
            found = k;
        }
    }
    return found;
}

/* λ_max(JᵀJ) by power iteration; returns σ_max(J) = √λ. */
static double sigma_max(const double *J, int n, double *v, double *w)
{
    for (int i = 0; i < n; i++) v[i] = 1.0 + 0.01 * (i % 7); /* not orthogonal to the top vector, in practice */
    double lam = 0;
    for (int it = 0; it < 1000; it++) {
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += J[(size_t)i * n + j] * v[j];
            w[i] = s;
        }
        double nv = 0;
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += J[(size_t)i * n + j] * w[i];
            v[j] = s, nv += s * s;
        }
        nv = sqrt(nv);
        if (!(nv > 0) || !isfinite(nv)) return nv > 0 ? NAN : 0; /* J = 0: σ = 0 */
        for (int j = 0; j < n; j++) v[j] /= nv;
        bool done = fabs(nv - lam) <= 1e-13 * nv;
        lam = nv;
        if (done) break;
    }
    return sqrt(lam);
}

/* One layer and direction's step as a graph of its own over a batch of n
 * rows (n the states' joined width): x, the states and their seeds u are
 * inputs; grads[s] = ∂(Σ_s' u_s'·s'_new)/∂s. */
typedef struct {
    loom_graph *g;
    loom_tensor x, st[LOOM_CELL_MAX_STATES], u[LOOM_CELL_MAX_STATES], grads[LOOM_CELL_MAX_STATES];
    loom_tensor p[LOOM_CELL_MAX_PARAMS];
    loom_plan *plan;
} one_step;

static loom_status one_step_build(one_step *o, const loom_graph *g, const loom_rnn *rnn, int l, int d, int I, const int *W,
                                  int S, int n)
{
    const loom_cell_def *cell = rnn->o.cell;
    loom_graph *h = o->g = loom_graph_new();
    if (!h) return LOOM_ERR_NOMEM;
    for (int j = 0; j < rnn->n_params; j++) {
        loom_tensor q = rnn->param[l][d][j];
        o->p[j] = loom_param(h, loom_tensor_name(g, q), loom_tensor_shape(g, q));
    }
    o->x = loom_input(h, "x", loom_shape2(n, I));
    loom_tensor next[LOOM_CELL_MAX_STATES], terms[LOOM_CELL_MAX_STATES];
    for (int s = 0; s < S; s++) {
        char nm[16];
        snprintf(nm, sizeof nm, "s%d", s);
        o->st[s] = loom_input(h, nm, loom_shape2(n, W[s]));
        snprintf(nm, sizeof nm, "u%d", s);
        o->u[s] = loom_input(h, nm, loom_shape2(n, W[s]));
        next[s] = LOOM_INVALID;
    }
    cell->step(h, cell, o->p, o->x, o->st, next);
    for (int s = 0; s < S; s++) terms[s] = loom_sum_all(h, loom_mul(h, o->u[s], next[s]));
    loom_tensor loss = S > 1 ? loom_add_n(h, terms, S) : terms[0];
    if (!loom_graph_failed(h)) loom_backward(h, loss, o->st, S, o->grads);
    if (!loom_graph_failed(h)) o->plan = loom_plan_new(h, o->grads, S, NULL);
    return loom_graph_status(h);
}

loom_status loom_state_jacobian_norms(loom_graph *g, const loom_rnn *rnn, const loom_state_grid *grid,
                                      const loom_binding *binds, int n_binds, int max_seqs, double *sigma, double *radius)
{
    int T = grid->steps, L = grid->layers, D = grid->dirs, S = grid->states;
    size_t ns = loom_state_count(grid), nx = (size_t)T * L * D;
    for (size_t i = 0; i < nx; i++) sigma[i] = NAN;
    for (size_t i = 0; radius && i < nx; i++) radius[i] = NAN;
    if (S != rnn->o.cell->n_states || L != rnn->o.layers || D != rnn->dirs)
        return loom_graph_fail(g, LOOM_ERR_ARG, "jacobians: the grid (%d layers, %d directions, %d states) is not the stack's", L,
                               D, S),
               LOOM_ERR_ARG;
    loom_tensor *states = malloc(ns * sizeof *states), *xs = malloc(nx * sizeof *xs), *outs = malloc((ns + nx) * sizeof *outs);
    loom_status st = states && xs && outs ? LOOM_OK : LOOM_ERR_NOMEM;
    int n_out = 0;
    if (!st) { /* the values the steps read: every state and every step input, from one forward run */
        loom_states_find(g, grid, states);
        for (size_t i = 0; i < ns; i++)
            if (loom_valid(states[i])) outs[n_out++] = states[i];
        for (int t = 0; t < T && !st; t++)
            for (int l = 0; l < L && !st; l++)
                for (int d = 0; d < D && !st; d++) {
                    loom_tensor x = xs[((size_t)t * L + l) * D + d] = step_input(g, t, l, d);
                    if (!loom_valid(x)) st = LOOM_ERR_ARG;
                    else outs[n_out++] = x;
                }
        if (st) loom_graph_fail(g, st, "jacobians: cannot tell the input of each step (a graph the unroller built is needed)");
    } else {
        loom_graph_fail(g, st, "jacobians: out of memory");
    }
    loom_plan *fwd = NULL;
    if (!st && !(fwd = loom_plan_new(g, outs, n_out, &(loom_plan_opts){.eval = true}))) st = loom_graph_status(g);
    if (!st && ((st = loom_bind_all(fwd, binds, n_binds)) || (st = loom_run(fwd))))
        loom_graph_fail(g, st, "jacobians: %s", loom_plan_error(fwd));
    for (int l = 0; !st && l < L; l++)
        for (int d = 0; !st && d < D; d++) {
            int W[LOOM_CELL_MAX_STATES], off[LOOM_CELL_MAX_STATES + 1] = {0}, B;
            loom_tensor x0 = xs[(size_t)l * D + d];
            int I = loom_tensor_shape(g, x0).d[1];
            B = loom_tensor_shape(g, x0).d[0];
            for (int s = 0; s < S; s++) {
                W[s] = loom_tensor_shape(g, states[loom_state_at(grid, 0, l, d, s)]).d[1];
                off[s + 1] = off[s] + W[s];
            }
            int n = off[S], seqs = max_seqs > 0 && max_seqs < B ? max_seqs : B;
            one_step o = {0};
            st = one_step_build(&o, g, rnn, l, d, I, W, S, n);
            if (st) {
                loom_graph_fail(g, st, "jacobians: the one-step graph: %s", o.g ? loom_graph_error(o.g) : "out of memory");
                loom_graph_free(o.g);
                break;
            }
            float *xb = malloc((size_t)n * I * sizeof *xb), *sb[LOOM_CELL_MAX_STATES] = {0}, *ub[LOOM_CELL_MAX_STATES] = {0};
            double *J = malloc((size_t)n * n * sizeof *J), *v = malloc((size_t)n * sizeof *v), *w = malloc((size_t)n * sizeof *w);
            double *ev = malloc((size_t)2 * n * sizeof *ev);
            bool ok = xb && J && v && w && ev;
            for (int s = 0; s < S; s++) {
                ok = ok && (sb[s] = malloc((size_t)n * W[s] * sizeof(float))) && (ub[s] = calloc((size_t)n * W[s], sizeof(float)));
                for (int k = 0; ok && k < W[s]; k++) ub[s][(size_t)(off[s] + k) * W[s] + k] = 1; /* row off+k seeds unit k of state s */
            }
            if (!ok) loom_graph_fail(g, st = LOOM_ERR_NOMEM, "jacobians: out of memory");
            for (int j = 0; !st && j < rnn->n_params; j++) {
                const void *data = bound(binds, n_binds, rnn->param[l][d][j]);
                if (!data) st = LOOM_ERR_ARG, loom_graph_fail(g, st, "jacobians: no value bound for %s", loom_tensor_name(g, rnn->param[l][d][j]));
                else st = loom_bind(o.plan, o.p[j], data);
            }
            if (!st && !(st = loom_bind(o.plan, o.x, xb)))
                for (int s = 0; !st && s < S; s++)
                    if (!(st = loom_bind(o.plan, o.st[s], sb[s]))) st = loom_bind(o.plan, o.u[s], ub[s]);
            for (int k = 1; !st && k < T; k++) {
                int t = d ? T - 1 - k : k, prev = d ? t + 1 : t - 1;
                const float *xv = loom_plan_output(fwd, xs[((size_t)t * L + l) * D + d]);
                double sum = 0, rsum = 0;
                for (int b = 0; !st && b < seqs; b++) {
                    for (int r = 0; r < n; r++) memcpy(xb + (size_t)r * I, xv + (size_t)b * I, (size_t)I * sizeof *xb);
                    for (int s = 0; s < S; s++) {
                        const float *pv = loom_plan_output(fwd, states[loom_state_at(grid, prev, l, d, s)]);
                        for (int r = 0; r < n; r++) memcpy(sb[s] + (size_t)r * W[s], pv + (size_t)b * W[s], (size_t)W[s] * sizeof(float));
                    }
                    if ((st = loom_run(o.plan))) {
                        loom_graph_fail(g, st, "jacobians: %s", loom_plan_error(o.plan));
                        break;
                    }
                    for (int s = 0; s < S; s++) { /* row r of J: ∂(joined new state)_r / ∂(joined old state) */
                        const float *gv = loom_plan_output(o.plan, o.grads[s]);
                        for (int r = 0; r < n; r++)
                            for (int c = 0; c < W[s]; c++) J[(size_t)r * n + off[s] + c] = gv[(size_t)r * W[s] + c];
                    }
                    sum += sigma_max(J, n, v, w);
                    if (radius) { /* the eigenvalue of largest modulus: the rate a gradient shrinks at, step after step */
                        double rho = 0;
                        if (loom_eigenvalues(J, n, ev, ev + n)) rho = NAN;
                        for (int e = 0; e < n && !isnan(rho); e++) rho = fmax(rho, hypot(ev[e], ev[n + e]));
                        rsum += rho;
                    }
                }
                sigma[((size_t)t * L + l) * D + d] = sum / seqs;
                if (radius) radius[((size_t)t * L + l) * D + d] = rsum / seqs;
            }
            for (int s = 0; s < S; s++) free(sb[s]), free(ub[s]);
            free(xb), free(J), free(v), free(w), free(ev);
            loom_plan_free(o.plan);
            loom_graph_free(o.g);
        }
    loom_plan_free(fwd);
    free(states), free(xs), free(outs);
    return st;
}

/* ---- gates ---- */

void loom_gates_free(loom_gates *gates)
{
    free(gates->mean);
    memset(gates, 0, sizeof *gates);
}

loom_status loom_gate_means(loom_graph *g, const loom_state_grid *grid, const loom_binding *binds, int n_binds,
                            loom_gates *out)
{
    int T = grid->steps, L = grid->layers, D = grid->dirs;
    memset(out, 0, sizeof *out);
    size_t cells = (size_t)T * L * D;
    out->mean = malloc(cells * LOOM_MAX_GATES * sizeof *out->mean);
    int32_t n = loom_graph_size(g);
    loom_tensor *nodes = malloc((size_t)n * sizeof *nodes);
    int *which = malloc((size_t)n * sizeof *which), m = 0;
    if (!out->mean || !nodes || !which) {
        free(nodes), free(which), loom_gates_free(out);
        return loom_graph_fail(g, LOOM_ERR_NOMEM, "gates: out of memory"), LOOM_ERR_NOMEM;
    }
    for (size_t i = 0; i < cells * LOOM_MAX_GATES; i++) out->mean[i] = NAN;
    for (int32_t i = 0; i < n; i++) { /* a named sigmoid of a step: a gate */
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        const char *nm = loom_tensor_name(g, loom_at(i));
        loom_tags t = nd->tags;
        if (!nm || (nd->op != OP_SIGMOID && nd->op != OP_HARD_SIGMOID) || t.role == LOOM_ROLE_BACKWARD || t.step < 0 || t.step >= T ||
            t.layer < 0 || t.layer >= L || t.dir < 0 || t.dir >= D)
            continue;
        size_t len = strcspn(nm, "[");
        if (!len || len >= sizeof out->name[0]) continue;
        int k = 0;
        while (k < out->n && (strlen(out->name[k]) != len || strncmp(out->name[k], nm, len))) k++;
        if (k == out->n) {
            if (k == LOOM_MAX_GATES) continue;
            snprintf(out->name[out->n++], sizeof out->name[0], "%.*s", (int)len, nm);
        }
        nodes[m] = loom_at(i), which[m++] = k;
    }
    loom_plan *p = NULL;
    loom_status st = LOOM_OK;
    if (m && !(p = loom_plan_new(g, nodes, m, &(loom_plan_opts){.eval = true}))) st = loom_graph_status(g);
    if (!st && p && ((st = loom_bind_all(p, binds, n_binds)) || (st = loom_run(p))))
        loom_graph_fail(g, st, "gates: %s", loom_plan_error(p));
    for (int i = 0; !st && i < m; i++) {
        loom_tags t = loom_graph_node(g, nodes[i])->tags;
        const float *v = loom_plan_output(p, nodes[i]);
        int64_t c = loom_tensor_numel(g, nodes[i]);
        double s = 0;
        for (int64_t q = 0; q < c; q++) s += v[q];
        out->mean[(((size_t)t.step * L + t.layer) * D + t.dir) * LOOM_MAX_GATES + which[i]] = c ? s / (double)c : NAN;
    }
    loom_plan_free(p);
    free(nodes), free(which);
    if (st) loom_gates_free(out);
    return st;
}

/* ---- spectra ---- */

/* Reduction to upper Hessenberg form by stabilised elementary similarity
 * transformations (EISPACK's elmhes); a is n × n, row-major. */
static void hessenberg(double *a, int n)
{
#define A(i, j) a[(size_t)(i) * n + (j)]
    for (int m = 1; m < n - 1; m++) {
        double x = 0;
        int i = m;
        for (int j = m; j < n; j++)
            if (fabs(A(j, m - 1)) > fabs(x)) x = A(j, m - 1), i = j;
        if (i != m) {
            for (int j = m - 1; j < n; j++) {
                double t = A(i, j);
                A(i, j) = A(m, j), A(m, j) = t;
            }
            for (int j = 0; j < n; j++) {
                double t = A(j, i);
                A(j, i) = A(j, m), A(j, m) = t;
            }
        }
        if (x == 0) continue;
        for (i = m + 1; i < n; i++) {
            double y = A(i, m - 1);
            if (y == 0) continue;
            y /= x;
            A(i, m - 1) = 0;
            for (int j = m; j < n; j++) A(i, j) -= y * A(m, j);
            for (int j = 0; j < n; j++) A(j, m) += y * A(j, i);
        }
    }
#undef A
}

/* The eigenvalues of an upper Hessenberg matrix by the shifted QR
 * algorithm with Francis double steps (EISPACK's hqr); a is destroyed.
 * False when an eigenvalue takes more than 60 iterations. */
static bool hqr(double *a, int n, double *wr, double *wi)
{
#define A(i, j) a[(size_t)((i)-1) * n + (j)-1]
#define SIGN(x, y) ((y) >= 0 ? fabs(x) : -fabs(x))
    double anorm = 0, t = 0, p = 0, q = 0, r = 0, s, w, x, y, z;
    for (int i = 1; i <= n; i++)
        for (int j = i > 1 ? i - 1 : 1; j <= n; j++) anorm += fabs(A(i, j));
    int nn = n, l;
    wr--, wi--; /* 1-based below */
    while (nn >= 1) {
        int its = 0;
        do {
            for (l = nn; l >= 2; l--) {
                s = fabs(A(l - 1, l - 1)) + fabs(A(l, l));
                if (s == 0) s = anorm;
                if (fabs(A(l, l - 1)) + s == s) {
                    A(l, l - 1) = 0;
                    break;
                }
            }
            x = A(nn, nn);
            if (l == nn) { /* one root */
                wr[nn] = x + t, wi[nn--] = 0;
            } else {
                y = A(nn - 1, nn - 1);
                w = A(nn, nn - 1) * A(nn - 1, nn);
                if (l == nn - 1) { /* two roots */
                    p = 0.5 * (y - x);
                    q = p * p + w;
                    z = sqrt(fabs(q));
                    x += t;
                    if (q >= 0) {
                        z = p + SIGN(z, p);
                        wr[nn - 1] = wr[nn] = x + z;
                        if (z != 0) wr[nn] = x - w / z;
                        wi[nn - 1] = wi[nn] = 0;
                    } else {
                        wr[nn - 1] = wr[nn] = x + p;
                        wi[nn - 1] = -(wi[nn] = z);
                    }
                    nn -= 2;
                } else {
                    if (its == 60) return false;
                    if (its == 10 || its == 20 || its == 40) { /* an exceptional shift */
                        t += x;
                        for (int i = 1; i <= nn; i++) A(i, i) -= x;
                        s = fabs(A(nn, nn - 1)) + fabs(A(nn - 1, nn - 2));
                        y = x = 0.75 * s;
                        w = -0.4375 * s * s;
                    }
                    ++its;
                    int m;
                    for (m = nn - 2; m >= l; m--) {
                        z = A(m, m);
                        r = x - z;
                        s = y - z;
                        p = (r * s - w) / A(m + 1, m) + A(m, m + 1);
                        q = A(m + 1, m + 1) - z - r - s;
                        r = A(m + 2, m + 1);
                        s = fabs(p) + fabs(q) + fabs(r);
                        p /= s, q /= s, r /= s;
                        if (m == l) break;
                        double u = fabs(A(m, m - 1)) * (fabs(q) + fabs(r));
                        double v = fabs(p) * (fabs(A(m - 1, m - 1)) + fabs(z) + fabs(A(m + 1, m + 1)));
                        if (u + v == v) break;
                    }
                    for (int i = m + 2; i <= nn; i++) {
                        A(i, i - 2) = 0;
                        if (i != m + 2) A(i, i - 3) = 0;
                    }
                    for (int k = m; k <= nn - 1; k++) {
                        if (k != m) {
                            p = A(k, k - 1);
                            q = A(k + 1, k - 1);
                            r = 0;
                            if (k != nn - 1) r = A(k + 2, k - 1);
                            if ((x = fabs(p) + fabs(q) + fabs(r)) != 0) p /= x, q /= x, r /= x;
                        }
                        if ((s = SIGN(sqrt(p * p + q * q + r * r), p)) != 0) {
                            if (k == m) {
                                if (l != m) A(k, k - 1) = -A(k, k - 1);
                            } else {
                                A(k, k - 1) = -s * x;
                            }
                            p += s;
                            x = p / s, y = q / s, z = r / s;
                            q /= p, r /= p;
                            for (int j = k; j <= nn; j++) {
                                p = A(k, j) + q * A(k + 1, j);
                                if (k != nn - 1) {
                                    p += r * A(k + 2, j);
                                    A(k + 2, j) -= p * z;
                                }
                                A(k + 1, j) -= p * y;
                                A(k, j) -= p * x;
                            }
                            int mmin = nn < k + 3 ? nn : k + 3;
                            for (int i = l; i <= mmin; i++) {
                                p = x * A(i, k) + y * A(i, k + 1);
                                if (k != nn - 1) {
                                    p += z * A(i, k + 2);
                                    A(i, k + 2) -= p * r;
                                }
                                A(i, k + 1) -= p * q;
                                A(i, k) -= p;
                            }
                        }
                    }
                }
            }
        } while (l < nn - 1);
    }
    return true;
#undef A
#undef SIGN
}

loom_status loom_eigenvalues(const double *a, int n, double *re, double *im)
{
    if (n < 1) return LOOM_OK;
    double *h = malloc((size_t)n * n * sizeof *h);
    if (!h) return LOOM_ERR_NOMEM;
    bool finite = true;
    for (size_t i = 0; i < (size_t)n * n; i++) finite &= isfinite(h[i] = a[i]) != 0;
    bool ok = finite;
    if (ok) hessenberg(h, n);
    if (ok) ok = hqr(h, n, re, im);
    free(h);
    return ok ? LOOM_OK : LOOM_ERR_VALUE;
}

loom_status loom_cell_recurrent_params(const loom_cell_def *cell, int input_size, int hidden_size, bool *rec, int max)
{
    loom_param_spec specs[LOOM_CELL_MAX_PARAMS];
    int np = cell->params(cell, input_size, hidden_size, specs, LOOM_CELL_MAX_PARAMS);
    if (np < 0 || np > LOOM_CELL_MAX_PARAMS || np > max) return LOOM_ERR_ARG;
    loom_graph *g = loom_graph_new();
    if (!g) return LOOM_ERR_NOMEM;
    loom_tensor p[LOOM_CELL_MAX_PARAMS], st[LOOM_CELL_MAX_STATES], next[LOOM_CELL_MAX_STATES];
    for (int i = 0; i < np; i++) p[i] = loom_param(g, specs[i].name, specs[i].shape), rec[i] = false;
    loom_tensor x = loom_input(g, "x", loom_shape2(2, input_size));
    for (int s = 0; s < cell->n_states; s++) {
        char nm[8];
        snprintf(nm, sizeof nm, "s%d", s);
        st[s] = loom_input(g, nm, loom_shape2(2, hidden_size));
        next[s] = LOOM_INVALID;
    }
    cell->step(g, cell, p, x, st, next);
    loom_status status = loom_graph_status(g);
    int32_t n = loom_graph_size(g);
    bool *dep = calloc((size_t)n, sizeof *dep), *from_p = calloc((size_t)n * np, sizeof *from_p);
    if (!status && (!dep || !from_p)) status = LOOM_ERR_NOMEM;
    /* dep: depends on a state; from_p[i·np + k]: is parameter k or a view of it (slice, reshape, transpose) */
    for (int32_t i = 0; !status && i < n; i++) {
        loom_tensor ti = loom_at(i);
        const loom_node *nd = loom_graph_node(g, ti);
        for (int s = 0; s < cell->n_states; s++) dep[i] |= ti.id == st[s].id;
        for (int k = 0; k < np; k++) from_p[(size_t)i * np + k] = ti.id == p[k].id;
        for (int j = 0; j < nd->n_in; j++) dep[i] |= dep[loom_node_input(g, ti, j).id - 1];
        if ((nd->op == OP_SLICE || nd->op == OP_RESHAPE || nd->op == OP_TRANSPOSE) && nd->n_in >= 1)
            for (int k = 0; k < np; k++) from_p[(size_t)i * np + k] |= from_p[(size_t)(loom_node_input(g, ti, 0).id - 1) * np + k];
        if (nd->op != OP_MATMUL || nd->n_in < 2) continue;
        int32_t a = loom_node_input(g, ti, 0).id - 1, b = loom_node_input(g, ti, 1).id - 1;
        for (int k = 0; k < np; k++) { /* W @ state-dependent, either way round */
            if (from_p[(size_t)a * np + k] && dep[b]) rec[k] = true;
            if (from_p[(size_t)b * np + k] && dep[a]) rec[k] = true;
        }
    }
    free(dep), free(from_p);
    loom_graph_free(g);
    return status;
}

void loom_spectra_free(loom_spectrum *s, int n)
{
    for (int i = 0; s && i < n; i++) free(s[i].re), free(s[i].im);
    free(s);
}

loom_status loom_rnn_spectra(const loom_graph *g, const loom_rnn *rnn, const loom_binding *binds, int n_binds,
                             loom_spectrum **out, int *n)
{
    *out = NULL, *n = 0;
    int cap = 0;
    bool rec[LOOM_CELL_MAX_PARAMS];
    loom_status st = LOOM_OK;
    for (int l = 0; l < rnn->o.layers && !st; l++)
        for (int d = 0; d < rnn->dirs && !st; d++) {
            int I = l == 0 ? rnn->o.input_size : rnn->dirs * rnn->out_size;
            if ((st = loom_cell_recurrent_params(rnn->o.cell, I, rnn->o.hidden_size, rec, LOOM_CELL_MAX_PARAMS))) break;
            for (int j = 0; j < rnn->n_params && !st; j++) {
                loom_tensor w = rnn->param[l][d][j];
                loom_shape s = loom_tensor_shape(g, w);
                int H = s.rank == 2 ? s.d[1] : 0;
                const float *data = bound(binds, n_binds, w);
                if (!rec[j] || !H || s.d[0] % H) continue; /* square blocks only */
                if (!data) {
                    st = LOOM_ERR_ARG;
                    break;
                }
                double *a = malloc((size_t)H * H * sizeof *a);
                for (int k = 0; a && !st && k < s.d[0] / H; k++) {
                    if (*n == cap) {
                        loom_spectrum *m = realloc(*out, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *m);
                        if (!m) {
                            st = LOOM_ERR_NOMEM;
                            break;
                        }
                        *out = m;
                    }
                    loom_spectrum *e = &(*out)[*n];
                    *e = (loom_spectrum){l, d, j, k, H, malloc((size_t)H * sizeof(double)), malloc((size_t)H * sizeof(double))};
                    (*n)++;
                    if (!e->re || !e->im) {
                        st = LOOM_ERR_NOMEM;
                        break;
                    }
                    for (size_t q = 0; q < (size_t)H * H; q++) a[q] = data[(size_t)k * H * H + q];
                    if ((st = loom_eigenvalues(a, H, e->re, e->im))) break;
                    for (int x = 1; x < H; x++) /* by modulus, largest first (insertion: H is a layer's width) */
                        for (int y = x; y > 0 && hypot(e->re[y], e->im[y]) > hypot(e->re[y - 1], e->im[y - 1]); y--) {
                            double tr = e->re[y], ti = e->im[y];
                            e->re[y] = e->re[y - 1], e->im[y] = e->im[y - 1], e->re[y - 1] = tr, e->im[y - 1] = ti;
                        }
                }
                if (!a && !st) st = LOOM_ERR_NOMEM;
                free(a);
            }
        }
    if (st) loom_spectra_free(*out, *n), *out = NULL, *n = 0;
    return st;
}

loom_status loom_jacobian_rows(loom_metrics *m, const loom_state_grid *grid, const double *sigma, const double *radius)
{
    loom_status st = LOOM_OK;
    for (int t = 0; t < grid->steps; t++)
        for (int l = 0; l < grid->layers; l++)
            for (int d = 0; d < grid->dirs && !st; d++) {
                size_t i = ((size_t)t * grid->layers + l) * grid->dirs + d;
                if (!isnan(sigma[i])) st = loom_metrics_row(m, "%d,%d,%s,%.9g,%.9g", t + 1, l, dir_name[d], sigma[i], radius[i]);
            }
    return st;
}

loom_status loom_gate_rows(loom_metrics *m, const loom_state_grid *grid, const loom_gates *gates)
{
    loom_status st = LOOM_OK;
    for (int t = 0; t < grid->steps; t++)
        for (int l = 0; l < grid->layers; l++)
            for (int d = 0; d < grid->dirs; d++)
                for (int k = 0; k < gates->n && !st; k++) {
                    double v = gates->mean[(((size_t)t * grid->layers + l) * grid->dirs + d) * LOOM_MAX_GATES + k];
                    if (!isnan(v)) st = loom_metrics_row(m, "%d,%d,%s,%s,%.9g", t + 1, l, dir_name[d], gates->name[k], v);
                }
    return st;
}

loom_status loom_spectra_rows(loom_metrics *m, const loom_graph *g, const loom_rnn *rnn, const loom_spectrum *spec, int n)
{
    loom_status st = LOOM_OK;
    for (int i = 0; i < n && !st; i++) {
        const loom_spectrum *e = &spec[i];
        const char *name = loom_tensor_name(g, rnn->param[e->layer][e->dir][e->param]);
        for (int k = 0; k < e->n && !st; k++)
            st = loom_metrics_row(m, "%d,%s,%s,%d,%d,%.9g,%.9g,%.9g", e->layer, dir_name[e->dir], name, e->block, k + 1,
                                  e->re[k], e->im[k], hypot(e->re[k], e->im[k]));
    }
    return st;
}

void loom_state_select(const loom_state_grid *g, const float *norm, const double *norm64, int state, float *out, double *out64)
{
    for (int t = 0; t < g->steps; t++)
        for (int l = 0; l < g->layers; l++)
            for (int d = 0; d < g->dirs; d++) {
                size_t at = loom_state_at(g, t, l, d, state), k = ((size_t)t * g->layers + l) * g->dirs + d;
                if (out) out[k] = norm[at];
                if (out64) out64[k] = norm64[at];
            }
}

/* ratio = ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖; the factor a step is its (T−1)-th root
 * (the gradient shrinking geometrically); the geometric means of ‖J_t‖₂
 * and ρ(J_t) are exp of their logs' means. */
void loom_gradient_summarize(const loom_state_grid *g, const float *norm, const double *norm64, const double *sigma,
                             const double *radius, loom_gradient_summary *out)
{
    int T = g->steps, top = g->layers - 1;
    *out = (loom_gradient_summary){.ratio = NAN, .factor = NAN, .sigma_min = NAN, .sigma_max = NAN, .sigma_mean = NAN,
                                   .sigma_product = NAN, .radius_mean = NAN};
    if (T < 1) return;
    size_t a = loom_state_at(g, 0, top, 0, 0), b = loom_state_at(g, T - 1, top, 0, 0);
    out->first = norm64[a], out->last = norm64[b];
    out->first_underflows = norm[a] == 0 && norm64[a] > 0;
    if (out->last > 0) out->ratio = out->first / out->last;
    if (T > 1 && out->first > 0 && out->last > 0) out->factor = pow(out->ratio, 1.0 / (T - 1));
    double lo = INFINITY, hi = 0, logsum = 0, rlog = 0;
    int n = 0;
    for (int t = 0; sigma && radius && t < T; t++) {
        size_t k = ((size_t)t * g->layers + top) * g->dirs; /* top layer, forward */
        if (isnan(sigma[k])) continue;
        lo = fmin(lo, sigma[k]), hi = fmax(hi, sigma[k]), logsum += log(sigma[k]), rlog += log(radius[k]), n++;
    }
    if (!n) return;
    out->jacobians = n;
    out->sigma_min = lo, out->sigma_max = hi, out->sigma_mean = exp(logsum / n), out->sigma_product = exp(logsum);
    out->radius_mean = exp(rlog / n);
}

/* min, max, mean, ‖·‖₂ of n floats, summed in double */
static void stats_of(const float *v, int64_t n, float *out)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0, sq = 0;
    for (int64_t k = 0; k < n; k++) lo = fmin(lo, v[k]), hi = fmax(hi, v[k]), sum += v[k], sq += (double)v[k] * v[k];
    out[0] = n ? (float)lo : NAN, out[1] = n ? (float)hi : NAN, out[2] = n ? (float)(sum / (double)n) : NAN, out[3] = (float)sqrt(sq);
}

loom_status loom_node_values(loom_graph *g, loom_tensor t, const loom_binding *binds, int n_binds, float *out, size_t n)
{
    if (!g || !out) return LOOM_ERR_ARG;
    if (loom_graph_failed(g)) return loom_graph_status(g);
    const loom_node *v = loom_graph_node(g, t);
    if (!v || v->dtype != LOOM_F32)
        return loom_graph_fail(g, LOOM_ERR_ARG, "node values: %s", v ? "not a float32 node" : "no such node"), LOOM_ERR_ARG;
    size_t numel = (size_t)loom_shape_numel(v->shape);
    if (n != numel)
        return loom_graph_fail(g, LOOM_ERR_SHAPE, "node values: the node has %zu values, the buffer %zu", numel, n), LOOM_ERR_SHAPE;
    if (loom_op(v->op)->flags & OPF_BOUND) { /* an input or a parameter: its binding */
        const float *data = bound(binds, n_binds, t);
        if (!data) return loom_graph_fail(g, LOOM_ERR_STATE, "node values: the node is not bound"), LOOM_ERR_STATE;
        memcpy(out, data, n * sizeof *out);
        return LOOM_OK;
    }
    loom_plan *p = loom_plan_new(g, &t, 1, &(loom_plan_opts){.eval = true});
    loom_status st = p ? LOOM_OK : loom_graph_failed(g) ? loom_graph_status(g) : LOOM_ERR_NOMEM;
    if (p && ((st = loom_bind_all(p, binds, n_binds)) || (st = loom_run(p)) || (st = loom_plan_read(p, t, out, n))))
        loom_graph_fail(g, st, "node values: %s", loom_plan_error(p));
    loom_plan_free(p);
    return st;
}

loom_status loom_value_stats(loom_graph *g, const loom_tensor *roots, int n_roots, const loom_binding *binds, int n_binds,
                             float *stats)
{
    if (!g || !stats || (n_roots && !roots)) return LOOM_ERR_ARG;
    if (loom_graph_failed(g)) return loom_graph_status(g);
    int32_t n = loom_graph_size(g);
    for (int64_t k = 0; k < 4 * (int64_t)n; k++) stats[k] = NAN;
    uint8_t *need = calloc((size_t)n + 1, 1);
    loom_tensor *out = malloc(((size_t)n + 1) * sizeof *out);
    if (!need || !out) {
        free(need), free(out);
        loom_graph_fail(g, LOOM_ERR_NOMEM, "value stats: out of memory");
        return LOOM_ERR_NOMEM;
    }
    for (int r = 0; r < n_roots; r++)
        if (loom_graph_has(g, roots[r])) need[loom_index(roots[r])] = 1;
    int n_out = 0;
    for (int32_t i = n - 1; i >= 0; i--) { /* what the roots need (inputs come first) */
        if (!need[i]) continue;
        const loom_node *v = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < v->n_in; j++) need[loom_index(loom_node_input(g, loom_at(i), j))] = 1;
    }
    for (int32_t i = 0; i < n; i++) {
        const loom_node *v = loom_graph_node(g, loom_at(i));
        if (!need[i] || v->dtype != LOOM_F32) continue;
        if (loom_op(v->op)->flags & OPF_BOUND) { /* an input or a parameter: its binding */
            const float *data = bound(binds, n_binds, loom_at(i));
            if (data) stats_of(data, loom_shape_numel(v->shape), stats + 4 * (int64_t)i);
            continue;
        }
        out[n_out++] = loom_at(i);
    }
    loom_status st = LOOM_OK;
    /* no rewrites: every value its own buffer, read after the run */
    loom_plan *p = n_out ? loom_plan_new(g, out, n_out, &(loom_plan_opts){.eval = true, .no_rewrites = LOOM_REWRITE_ALL}) : NULL;
    if (n_out && !p) st = loom_graph_failed(g) ? loom_graph_status(g) : LOOM_ERR_NOMEM;
    if (p && !st && ((st = loom_bind_all(p, binds, n_binds)) || (st = loom_run(p))))
        loom_graph_fail(g, st, "value stats: %s", loom_plan_error(p));
    for (int k = 0; p && !st && k < n_out; k++) {
        const float *v = loom_plan_output(p, out[k]);
        if (v) stats_of(v, loom_tensor_numel(g, out[k]), stats + 4 * (int64_t)loom_index(out[k]));
    }
    loom_plan_free(p);
    free(need), free(out);
    return st;
}
