/* Ordering: prune, ready sets, and which ready sets run side by side.
 *
 * Level of a node = 1 + the highest level of its inputs (sources: 0; views
 * take their input's level and run nothing). Nodes of one level only read
 * lower levels, so they may run side by side. */
#define _GNU_SOURCE /* qsort_r */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

/* Marks what the outputs need (inputs precede their users in the arena). */
static void prune(loom_plan *p)
{
    const loom_graph *g = p->g;
    for (int i = 0; i < p->n_outputs; i++) p->in_plan[loom_index(p->outputs[i])] = true;
    for (int32_t i = p->n_graph - 1; i >= 0; i--) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in; j++) p->in_plan[loom_index(loom_node_input(g, loom_at(i), j))] = true;
        if (nd->n_in > p->max_in) p->max_in = nd->n_in;
    }
}

/* The accumulate rewrite. A sum's term that is an OPF_ACCUM node of the
 * sum's shape, read by nothing else and not an output, runs inside the
 * sum's kernel with β = 1 into the sum's buffer: BPTT's weight gradient
 * Σ_t δ_tᵀ·a_t becomes T GEMMs into one matrix instead of T matrices and
 * an add_n. The term gets no buffer and no level of its own. */
static loom_status fold_into_sums(loom_plan *p)
{
    const loom_graph *g = p->g;
    for (int32_t i = 0; i < p->n_graph; i++) p->into[i] = -1;
    if (!(p->rewrites & LOOM_REWRITE_ACCUMULATE)) return LOOM_OK;
    int32_t *uses = calloc((size_t)p->n_graph, sizeof *uses);
    if (!uses) return LOOM_ERR_NOMEM;
    for (int32_t i = 0; i < p->n_graph; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in; j++) uses[loom_index(loom_node_input(g, loom_at(i), j))]++;
    }
    for (int i = 0; i < p->n_outputs; i++) uses[loom_index(p->outputs[i])] += 2;
    for (int32_t s = 0; s < p->n_graph; s++) {
        const loom_node *nd = loom_graph_node(g, loom_at(s));
        if (!p->in_plan[s] || !(loom_op(nd->op)->flags & OPF_SUM)) continue;
        for (int j = 0; j < nd->n_in; j++) {
            loom_tensor x = loom_node_input(g, loom_at(s), j);
            const loom_node *xn = loom_graph_node(g, x);
            if (uses[loom_index(x)] != 1 || !(loom_op(xn->op)->flags & OPF_ACCUM) || !loom_shape_eq(xn->shape, nd->shape))
                continue;
            p->into[loom_index(x)] = s;
            p->folded_in[s]++;
            p->n_folded++;
        }
    }
    free(uses);
    return LOOM_OK;
}

/* ---- the batch rewrite ---- */

static bool batchable(const loom_plan *p, int32_t i)
{
    const loom_node *nd = loom_graph_node(p->g, loom_at(i));
    const loom_op_desc *d = loom_op(nd->op);
    return p->in_plan[i] && p->into[i] < 0 && d->batches && d->batches(p->g, loom_at(i));
}

static int32_t input0_root(const loom_plan *p, int32_t i)
{
    (void)p;
    return loom_index(loom_node_input(p->g, loom_at(i), 0));
}

/* Candidates sort by what a batch shares (op, inputs 1.., attributes,
 * input 0's shape), then by input 0's id: the rows stack in the order the
 * step inputs were made, the same for every weight that reads them. */
static int cmp_batch(const void *a, const void *b, void *ctx)
{
    const loom_graph *g = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const loom_node *nx = loom_graph_node(g, loom_at(x)), *ny = loom_graph_node(g, loom_at(y));
    if (nx->op != ny->op) return nx->op < ny->op ? -1 : 1;
    if (nx->n_in != ny->n_in) return nx->n_in < ny->n_in ? -1 : 1;
    for (int j = 1; j < nx->n_in; j++) {
        int32_t u = loom_index(loom_node_input(g, loom_at(x), j)), v = loom_index(loom_node_input(g, loom_at(y), j));
        if (u != v) return u < v ? -1 : 1;
    }
    int c = memcmp(&nx->attr, &ny->attr, sizeof nx->attr);
    if (c) return c;
    loom_shape sx = loom_tensor_shape(g, loom_node_input(g, loom_at(x), 0));
    loom_shape sy = loom_tensor_shape(g, loom_node_input(g, loom_at(y), 0));
    if (!loom_shape_eq(sx, sy)) return memcmp(&sx, &sy, sizeof sx);
    return 0;
}

static int cmp_batch_order(const void *a, const void *b, void *ctx)
{
    int c = cmp_batch(a, b, ((void **)ctx)[0]);
    if (c) return c;
    const loom_plan *p = ((void **)ctx)[1];
    int32_t u = input0_root(p, *(const int32_t *)a), v = input0_root(p, *(const int32_t *)b);
    return (u > v) - (u < v);
}

/* Whether no member's input 0 depends on a member (then all of them can
 * run at once, after every input 0): a forward sweep over the ids from the
 * first member, `dep` marking what depends on one. */
static bool independent(const loom_plan *p, const int32_t *m, int n, bool *dep)
{
    int32_t lo = m[0], hi = 0;
    for (int k = 0; k < n; k++) {
        lo = m[k] < lo ? m[k] : lo;
        int32_t a = input0_root(p, m[k]);
        hi = a > hi ? a : hi;
    }
    if (hi <= lo) return true;
    for (int k = 0; k < n; k++) dep[m[k]] = true;
    for (int32_t i = lo + 1; i <= hi; i++) {
        if (dep[i] || !p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(p->g, loom_at(i));
        for (int j = 0; j < nd->n_in && !dep[i]; j++) dep[i] = dep[loom_index(loom_node_input(p->g, loom_at(i), j))];
    }
    bool ok = true;
    for (int k = 0; k < n && ok; k++) ok = !dep[input0_root(p, m[k])];
    memset(dep + lo, 0, (size_t)(hi - lo + 1) * sizeof *dep);
    for (int k = 0; k < n; k++) dep[m[k]] = false;
    return ok;
}

/* Finds the batches: runs of candidates that share everything but input
 * 0, at least two, independent of one another. */
static loom_status find_batches(loom_plan *p)
{
    for (int32_t i = 0; i < p->n_graph; i++) p->batch_of[i] = -1;
    if (!(p->rewrites & LOOM_REWRITE_BATCH)) return LOOM_OK;
    int32_t n = 0, *c = malloc((size_t)p->n_graph * sizeof *c + 1);
    bool *dep = calloc((size_t)p->n_graph + 1, sizeof *dep);
    p->batch_member = malloc((size_t)p->n_graph * sizeof *p->batch_member + 1);
    p->batch_start = malloc(((size_t)p->n_graph / 2 + 2) * sizeof *p->batch_start);
    if (!c || !dep || !p->batch_member || !p->batch_start) {
        free(c), free(dep);
        return LOOM_ERR_NOMEM;
    }
    for (int32_t i = 0; i < p->n_graph; i++)
        if (batchable(p, i)) c[n++] = i;
    qsort_r(c, (size_t)n, sizeof *c, cmp_batch_order, (void *[]){(void *)p->g, p});
    int32_t used = 0;
    for (int32_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && !cmp_batch(&c[a], &c[b], (void *)p->g); b++) {}
        if (b - a < 2 || !independent(p, c + a, b - a, dep)) continue;
        p->batch_start[p->n_batches] = used;
        for (int32_t k = a; k < b; k++) {
            p->batch_of[c[k]] = p->n_batches;
            p->batch_member[used++] = c[k];
        }
        p->n_batches++;
        p->n_batched += b - a - 1;
    }
    p->batch_start[p->n_batches] = used;
    free(c), free(dep);
    return LOOM_OK;
}

/* Levels and storage roots; returns the highest level. A folded term takes
 * its inputs' level (its work happens in the sum's kernel, a level later).
 * The members of a batch all take the level after every member's inputs
 * (a batch may wait for another, so the levels settle over a few passes). */
static int32_t level_pass(loom_plan *p, const int32_t *batch_level, int32_t *batch_need)
{
    const loom_graph *g = p->g;
    int32_t max_level = 0;
    p->n_views = 0;
    for (int32_t i = 0; i < p->n_graph; i++) {
        p->root[i] = i;
        p->level[i] = 0;
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        const loom_op_desc *d = loom_op(nd->op);
        if (d->flags & OPF_STORED) p->bound[i] = loom_graph_stored(g, nd->attr.i[1]);
        if (d->flags & OPF_SOURCE) continue;
        int32_t lv = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t in = loom_index(loom_node_input(g, loom_at(i), j));
            lv = p->level[in] > lv ? p->level[in] : lv;
        }
        if (p->into[i] >= 0) {
            p->level[i] = lv;
        } else if (p->batch_of[i] >= 0) {
            int32_t b = p->batch_of[i];
            batch_need[b] = lv > batch_need[b] ? lv : batch_need[b];
            p->level[i] = batch_level[b];
        } else if (d->flags & OPF_ALIAS) {
            p->level[i] = lv;
            p->root[i] = p->root[loom_index(loom_node_input(g, loom_at(i), 0))];
            p->n_views++;
        } else {
            p->level[i] = lv + 1;
        }
        max_level = p->level[i] > max_level ? p->level[i] : max_level;
    }
    return max_level;
}

static int32_t assign_levels(loom_plan *p, bool *ok)
{
    int32_t *level = calloc((size_t)p->n_batches + 1, sizeof *level), *need = malloc(((size_t)p->n_batches + 1) * sizeof *need);
    *ok = level && need;
    int32_t max_level = 0;
    for (bool settled = false; *ok && !settled;) {
        for (int32_t b = 0; b < p->n_batches; b++) need[b] = 0;
        max_level = level_pass(p, level, need);
        settled = true;
        for (int32_t b = 0; b < p->n_batches; b++)
            if (level[b] != need[b] + 1) level[b] = need[b] + 1, settled = false;
    }
    free(level), free(need);
    return max_level;
}

static bool runs_kernel(const loom_plan *p, int32_t i)
{
    return p->in_plan[i] && p->into[i] < 0 &&
           (p->batch_of[i] < 0 || p->batch_member[p->batch_start[p->batch_of[i]]] == i) &&
           !(loom_op(loom_graph_node(p->g, loom_at(i))->op)->flags & (OPF_SOURCE | OPF_ALIAS));
}

/* Buckets the nodes with kernels by level (a counting sort keeps id order
 * inside a level). */
static loom_status bucket(loom_plan *p)
{
    int32_t L = p->n_levels, *count = calloc((size_t)L + 2, sizeof *count);
    p->level_start = calloc((size_t)L + 2, sizeof *p->level_start);
    if (!count || !p->level_start) {
        free(count);
        return LOOM_ERR_NOMEM;
    }
    for (int32_t i = 0; i < p->n_graph; i++)
        if (runs_kernel(p, i)) count[p->level[i]]++, p->n_exec++;
    for (int32_t l = 1; l <= L; l++) p->level_start[l] = p->level_start[l - 1] + count[l];
    memset(count, 0, ((size_t)L + 2) * sizeof *count);
    for (int32_t i = 0; i < p->n_graph; i++)
        if (runs_kernel(p, i)) p->exec[p->level_start[p->level[i] - 1] + count[p->level[i]]++] = i;
    free(count);
    return LOOM_OK;
}

/* Side by side only when a level is worth a parallel region and no node in
 * it is big enough to use every thread by itself. */
static loom_status choose_wide(loom_plan *p)
{
    p->wide = calloc((size_t)p->n_levels + 1, sizeof *p->wide);
    if (!p->wide) return LOOM_ERR_NOMEM;
    for (int32_t l = 0; l < p->n_levels; l++) {
        int32_t b = p->level_start[l], e = p->level_start[l + 1];
        bool wide = e - b > 1;
        int64_t total = 0;
        for (int32_t k = b; wide && k < e; k++) {
            int64_t w = loom_op_cost(p->g, loom_at(p->exec[k]));
            total += w;
            wide = w <= LOOM_PAR_MIN;
        }
        p->wide[l] = wide && total >= LOOM_PAR_MIN;
    }
    return LOOM_OK;
}

loom_status loom_plan_schedule(loom_plan *p)
{
    prune(p);
    loom_status s = fold_into_sums(p);
    if (!s) s = find_batches(p);
    if (s) return s;
    bool ok;
    p->n_levels = assign_levels(p, &ok);
    if (!ok) return LOOM_ERR_NOMEM;
    s = bucket(p);
    return s ? s : choose_wide(p);
}
