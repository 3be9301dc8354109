/* A graph in double precision (see eval64.h). */
#include "autodiff/eval64.h"
#include "graph/walk.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

static loom_status eval_node(loom_eval64 *e, int32_t i)
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

/* The buffer of node i, allocated when first needed in release mode. */
static bool ensure(loom_eval64 *e, int32_t i)
{
    if (e->val[i]) return true;
    int64_t numel = loom_shape_numel(loom_walk_node(loom_graph_walk(e->g), i)->shape);
    if ((e->val[i] = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(double)))) return true;
    snprintf(e->err, sizeof e->err, "out of memory");
    return false;
}

loom_status loom_eval64_run(loom_eval64 *e, bool only_dirty)
{
    loom_walk w = loom_graph_walk(e->g);
    for (int32_t i = 0; i < e->n; i++) {
        if (e->last) {
            if (e->last[i] == -2) continue; /* not needed */
            if (!ensure(e, i)) return LOOM_ERR_NOMEM;
        } else if (!e->val[i] || (only_dirty && !e->dirty[i])) {
            continue;
        }
        loom_status s = eval_node(e, i);
        if (s) return s;
        for (int j = 0; e->last && j < loom_walk_node(w, i)->n_in; j++) {
            int32_t k = loom_walk_in(w, i, j);
            if (e->last[k] == i) free(e->val[k]), e->val[k] = NULL;
        }
    }
    return LOOM_OK;
}

loom_status loom_eval64_new(loom_eval64 *e, const loom_graph *g, const loom_tensor *outs, int n_outs, const loom_binding *b1,
                            int n1, const loom_binding *b2, int n2, uint64_t seed, bool release)
{
    memset(e, 0, sizeof *e);
    e->g = g;
    e->n = loom_graph_size(g);
    e->run_seed = seed * 0x2545F4914F6CDD1Dull; /* a plan's first run after loom_plan_set_seed(seed) */
    e->val = calloc((size_t)e->n, sizeof *e->val);
    e->dirty = calloc((size_t)e->n, sizeof *e->dirty);
    bool *need = calloc((size_t)e->n, sizeof *need);
    if (release) e->last = malloc((size_t)e->n * sizeof *e->last);
    if (!e->val || !e->dirty || !need || (release && !e->last)) {
        free(need);
        snprintf(e->err, sizeof e->err, "out of memory");
        return LOOM_ERR_NOMEM;
    }
    loom_walk w = loom_graph_walk(g);
    for (int k = 0; k < n_outs; k++) need[outs[k].id - 1] = true;
    for (int32_t i = e->n - 1; i >= 0; i--)
        for (int j = 0; need[i] && j < loom_walk_node(w, i)->n_in; j++) need[loom_walk_in(w, i, j)] = true;
    if (release) { /* -2: not needed; -1: kept to the end; else its last reader */
        for (int32_t i = 0; i < e->n; i++) e->last[i] = need[i] ? i : -2;
        for (int32_t i = 0; i < e->n; i++)
            for (int j = 0; need[i] && j < loom_walk_node(w, i)->n_in; j++) e->last[loom_walk_in(w, i, j)] = i;
        for (int k = 0; k < n_outs; k++) e->last[outs[k].id - 1] = -1;
    }
    loom_status s = LOOM_OK;
    for (int32_t i = 0; !s && i < e->n; i++) /* bound nodes now; release mode allocates the rest as it goes */
        if (need[i] && (!release || (loom_op(loom_walk_node(w, i)->op)->flags & OPF_BOUND)) && !ensure(e, i))
            s = LOOM_ERR_NOMEM;
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

void loom_eval64_free(loom_eval64 *e)
{
    for (int32_t i = 0; e->val && i < e->n; i++) free(e->val[i]);
    free(e->val);
    free(e->dirty);
    free(e->last);
    memset(e, 0, sizeof *e);
}

void loom_eval64_mark(loom_eval64 *e, int32_t src)
{
    loom_walk w = loom_graph_walk(e->g);
    memset(e->dirty, 0, (size_t)e->n * sizeof *e->dirty);
    e->dirty[src] = true;
    for (int32_t i = src + 1; i < e->n; i++)
        for (int j = 0; e->val[i] && j < loom_walk_node(w, i)->n_in && !e->dirty[i]; j++)
            e->dirty[i] = e->dirty[loom_walk_in(w, i, j)];
}
