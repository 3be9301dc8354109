/* Plan rewrites found by pattern (passes/rewrite.h): the accumulate, batch
 * and fuse rewrites, and the LOOM_REWRITES switch (which also covers the
 * runtime's inplace and sink). */
#define _GNU_SOURCE /* qsort_r */
#include "passes/rewrite.h"

#include "ops/op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const struct {
    const char *name;
    unsigned bit;
} rewrite_names[] = {{"accumulate", LOOM_REWRITE_ACCUMULATE}, {"batch", LOOM_REWRITE_BATCH}, {"inplace", LOOM_REWRITE_IN_PLACE},
                     {"sink", LOOM_REWRITE_SINK}, {"fuse", LOOM_REWRITE_FUSE}};
#define N_REWRITES (int)(sizeof rewrite_names / sizeof *rewrite_names)

/* LOOM_REWRITES: none, all, or names separated by commas. */
loom_status loom_plan_rewrites(const loom_plan_opts *opts, unsigned *rewrites, loom_error *err)
{
    const char *env = getenv("LOOM_REWRITES");
    unsigned on = LOOM_REWRITE_ALL;
    if (env && strcmp(env, "all") != 0) {
        on = 0;
        for (const char *s = env; strcmp(env, "none") != 0 && *s;) {
            size_t len = strcspn(s, ",");
            int k = 0;
            while (k < N_REWRITES && (strlen(rewrite_names[k].name) != len || strncmp(s, rewrite_names[k].name, len)))
                k++;
            if (k == N_REWRITES)
                return loom_error_set(err, LOOM_ERR_ARG,
                                      "LOOM_REWRITES='%s': unknown rewrite '%.*s' (none, all, or of: accumulate, batch, inplace, "
                                      "sink, fuse)", env, (int)len, s);
            on |= rewrite_names[k].bit;
            s += len + (s[len] == ',');
        }
    }
    *rewrites = on & ~(opts ? opts->no_rewrites : 0u);
    return LOOM_OK;
}

/* ---- accumulate ---- */

/* The accumulate rewrite. A sum's term that is an OPF_ACCUM node of the
 * sum's shape, read by nothing else and not an output, runs inside the
 * sum's kernel with β = 1 into the sum's buffer: BPTT's weight gradient
 * Σ_t δ_tᵀ·a_t becomes T GEMMs into one matrix instead of T matrices and
 * an add_n. The term gets no buffer and no level of its own. */
static loom_status fold_into_sums(loom_rewrites *p)
{
    const loom_graph *g = p->g;
    for (int32_t i = 0; i < p->n_graph; i++) p->into[i] = -1;
    if (!(p->which & LOOM_REWRITE_ACCUMULATE)) return LOOM_OK;
    int32_t *uses = calloc((size_t)p->n_graph, sizeof *uses);
    if (!uses) return LOOM_ERR_NOMEM;
    for (int32_t i = 0; i < p->n_graph; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; j < nd->n_in; j++) uses[loom_walk_in(p->walk, i, j)]++;
    }
    for (int i = 0; i < p->n_outputs; i++) uses[loom_index(p->outputs[i])] += 2;
    for (int32_t s = 0; s < p->n_graph; s++) {
        const loom_node *nd = loom_walk_node(p->walk, s);
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

/* ---- batch ---- */

static bool batchable(const loom_rewrites *p, int32_t i)
{
    const loom_node *nd = loom_walk_node(p->walk, i);
    const loom_op_desc *d = loom_op(nd->op);
    return p->in_plan[i] && p->into[i] < 0 && d->batches && d->batches(p->g, loom_at(i));
}

/* Input 0 of node i through views (reshape, stop_gradient): the node
 * that holds its rows. */
static int32_t rows_source(const loom_rewrites *p, int32_t i)
{
    int32_t x = loom_walk_in(p->walk, i, 0);
    while (loom_op(loom_walk_node(p->walk, x)->op)->flags & OPF_ALIAS)
        x = loom_walk_in(p->walk, x, 0);
    return x;
}

/* A candidate with what its batch must share, read once. */
typedef struct {
    int32_t node, in0, src; /* src: the batch input 0's rows come from (-1: none) */
    int32_t rows;           /* the node holding input 0's rows (through views) */
    int32_t op, n_in, in[3];
    uint64_t key;           /* hash of attributes and input 0's shape: compared first */
    loom_shape s0;
    const loom_attrs *attr;
} cand;

#define CAND_MAX_IN 3
enum { BATCH_ROWS = 2048 }; /* rows of one batch's kernel, at most (unless one member has more) */

/* Recomputed nodes batch only within a run of consecutive steps (one
 * segment: loom_backward_opts.recompute): a batch runs when its first
 * member is needed, and one spanning segments would make a later segment's
 * values early and hold them. */
static bool apart(const loom_rewrites *p, int32_t x, int32_t y)
{
    const loom_tags *a = &loom_walk_node(p->walk, x)->tags, *b = &loom_walk_node(p->walk, y)->tags;
    return a->role == LOOM_ROLE_RECOMPUTE && b->step != a->step + 1;
}

/* Candidates sort by what a batch shares (the batch its rows come from if
 * any, op, inputs 1.., attributes, input 0's shape), then by input 0's id:
 * the rows stack in the order the step inputs were made, the same for
 * every weight that reads them. */
static int cmp_batch(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->src != y->src) return x->src < y->src ? -1 : 1;
    if (x->op != y->op) return x->op < y->op ? -1 : 1;
    if (x->n_in != y->n_in) return x->n_in < y->n_in ? -1 : 1;
    for (int j = 1; j < x->n_in; j++)
        if (x->in[j] != y->in[j]) return x->in[j] < y->in[j] ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    int c = memcmp(x->attr, y->attr, sizeof *x->attr);
    if (c) return c;
    return loom_shape_eq(x->s0, y->s0) ? 0 : memcmp(&x->s0, &y->s0, sizeof x->s0);
}

static int cmp_batch_order(const void *a, const void *b)
{
    int c = cmp_batch(a, b);
    if (c) return c;
    const cand *x = a, *y = b;
    return (x->in0 > y->in0) - (x->in0 < y->in0);
}

/* Whether no member's input 0 depends on a member (then all of them can
 * run at once, after every input 0). Proved cheaply when the rows come
 * from one batch, when every input 0 was
 * made before the first member (ids) or lies at a smaller depth than every
 * member (what depends on a node lies deeper); else by a forward sweep over
 * the ids between, `dep` marking what depends on a member — only when that
 * range is short: a long one (the recurrent slices of every step) is left
 * unbatched without the cost of proving it. */
static bool independent(const loom_rewrites *p, const int32_t *m, int n, int32_t src, bool *dep, const int32_t *depth)
{
    /* rows from one batch X: an input 0 (an X member x_i) depending on a member
     * (which reads x_j) would make x_i depend on x_j, which X's own proof excludes */
    if (src >= 0) return true;
    int32_t lo = m[0], hi = 0, deep = 0, shallow = INT32_MAX;
    for (int k = 0; k < n; k++) {
        lo = m[k] < lo ? m[k] : lo;
        int32_t a = loom_walk_in(p->walk, m[k], 0);
        hi = a > hi ? a : hi;
        deep = depth[a] > deep ? depth[a] : deep;
        shallow = depth[m[k]] < shallow ? depth[m[k]] : shallow;
    }
    if (hi <= lo || deep < shallow) return true;
    if ((int64_t)(hi - lo) > 4 * (int64_t)n) return false;
    for (int k = 0; k < n; k++) dep[m[k]] = true;
    for (int32_t i = lo + 1; i <= hi; i++) {
        if (dep[i] || !p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; j < nd->n_in && !dep[i]; j++) dep[i] = dep[loom_walk_in(p->walk, i, j)];
    }
    bool ok = true;
    for (int k = 0; k < n && ok; k++) ok = !dep[loom_walk_in(p->walk, m[k], 0)];
    memset(dep + lo, 0, (size_t)(hi - lo + 1) * sizeof *dep);
    for (int k = 0; k < n; k++) dep[m[k]] = false;
    return ok;
}

static int cmp_key(const void *a, const void *b, void *ctx)
{
    const int64_t *key = ctx;
    int64_t u = key[*(const int32_t *)a], v = key[*(const int32_t *)b];
    return (u > v) - (u < v);
}


/* A batch whose rows come from another batch's outputs (a bias added to
 * the input projections, slices of them) takes that batch's member order,
 * so its inputs lie end to end as they were written; others keep the
 * order of their inputs' ids. Producers first (by their earliest member). */
static loom_status order_batches(loom_rewrites *p)
{
    int32_t nb = p->n_batches, *order = malloc(((size_t)nb + 1) * sizeof *order);
    int64_t *key = malloc((size_t)p->n_graph * sizeof *key + 1), *pos = malloc((size_t)p->n_graph * sizeof *pos + 1);
    if (!order || !key || !pos) {
        free(order), free(key), free(pos);
        return LOOM_ERR_NOMEM;
    }
    for (int32_t b = 0; b < nb; b++) { /* key[b]: the batch's earliest member (key is reused per node below) */
        order[b] = b, key[b] = INT64_MAX;
        for (int32_t k = p->batch_start[b]; k < p->batch_start[b + 1]; k++)
            key[b] = p->batch_member[k] < key[b] ? p->batch_member[k] : key[b];
    }
    qsort_r(order, (size_t)nb, sizeof *order, cmp_key, key);
    for (int32_t o = 0; o < nb; o++) {
        int32_t b = order[o], *m = p->batch_member + p->batch_start[b], n = p->batch_start[b + 1] - p->batch_start[b];
        for (int32_t k = 0; k < n; k++) {
            int32_t x = rows_source(p, m[k]);
            key[m[k]] = p->batch_of[x] >= 0 ? pos[x] : (int64_t)p->n_graph + x;
        }
        qsort_r(m, (size_t)n, sizeof *m, cmp_key, key);
        for (int32_t k = 0; k < n; k++) pos[m[k]] = k;
    }
    free(order), free(key), free(pos);
    return LOOM_OK;
}

/* Finds the batches: runs of candidates that share everything but input
 * 0, at least two, independent of one another. */
static loom_status find_batches(loom_rewrites *p)
{
    for (int32_t i = 0; i < p->n_graph; i++) p->batch_of[i] = -1;
    if (!(p->which & LOOM_REWRITE_BATCH)) return LOOM_OK;
    int32_t n = 0, n_all = 0, *m = malloc((size_t)p->n_graph * sizeof *m + 1);
    cand *c = malloc((size_t)p->n_graph * sizeof *c + 1), *all = malloc((size_t)p->n_graph * sizeof *all + 1);
    bool *dep = calloc((size_t)p->n_graph + 1, sizeof *dep);
    p->batch_member = malloc((size_t)p->n_graph * sizeof *p->batch_member + 1);
    p->batch_start = malloc(((size_t)p->n_graph / 2 + 2) * sizeof *p->batch_start);
    if (!c || !all || !m || !dep || !p->batch_member || !p->batch_start) {
        free(c), free(all), free(m), free(dep);
        return LOOM_ERR_NOMEM;
    }
    int32_t *depth = malloc((size_t)p->n_graph * sizeof *depth + 1);
    if (!depth) {
        free(c), free(all), free(m), free(dep);
        return LOOM_ERR_NOMEM;
    }
    for (int32_t i = 0; i < p->n_graph; i++) { /* ASAP depth, for the cheap independence proof */
        const loom_node *nd = loom_walk_node(p->walk, i);
        depth[i] = 0;
        for (int j = 0; p->in_plan[i] && j < nd->n_in; j++) {
            int32_t x = depth[loom_walk_in(p->walk, i, j)] + 1;
            depth[i] = x > depth[i] ? x : depth[i];
        }
    }
    for (int32_t i = 0; i < p->n_graph; i++) { /* the candidates, read once */
        const loom_node *nd = loom_walk_node(p->walk, i);
        if (nd->n_in > CAND_MAX_IN || !batchable(p, i)) continue;
        cand *k = &all[n_all++];
        k->node = i, k->in0 = loom_walk_in(p->walk, i, 0), k->rows = rows_source(p, i);
        k->op = nd->op, k->n_in = nd->n_in, k->attr = &nd->attr;
        for (int j = 0; j < nd->n_in; j++) k->in[j] = loom_walk_in(p->walk, i, j);
        k->s0 = loom_tensor_shape(p->g, loom_at(k->in0));
        k->key = XXH3_64bits(&nd->attr, sizeof nd->attr) ^ XXH3_64bits(k->s0.d, sizeof k->s0.d[0] * (size_t)k->s0.rank);
        if (nd->tags.role == LOOM_ROLE_RECOMPUTE) k->key = ~k->key; /* recomputed rows batch apart: they run late */
    }
    int32_t used = 0;
    /* Rounds: a batch found in one round sets apart, in the next, the
     * candidates whose rows it produces (slices of the batched input
     * projections, which share shape and attributes with the recurrent
     * slices but not their dependence on earlier steps); after the first
     * round only the readers of the last round's batches can form new
     * groups. */
    for (int32_t before = -1, fresh = -1; before != p->n_batches;) {
        fresh = before, before = p->n_batches;
        n = 0;
        for (int32_t a = 0; a < n_all; a++) {
            cand *k = &all[a];
            k->src = p->batch_of[k->rows];
            if (p->batch_of[k->node] < 0 && (fresh < 0 || k->src >= fresh)) c[n++] = *k;
        }
        qsort(c, (size_t)n, sizeof *c, cmp_batch_order);
        for (int32_t a = 0, b; a < n; a = b) {
            for (b = a + 1; b < n && !cmp_batch(&c[a], &c[b]) && !apart(p, c[b - 1].node, c[b].node); b++) {}
            for (int32_t k = a; k < b; k++) m[k - a] = c[k].node;
            if (b - a < 2 || !independent(p, m, b - a, c[a].src, dep, depth)) continue;
            /* at most BATCH_ROWS rows a kernel, in even chunks of steps: a long
             * sequence's projections are made and freed chunk by chunk */
            int32_t rows = c[a].s0.rank ? c[a].s0.d[0] : 1, per = BATCH_ROWS / (rows > 0 ? rows : 1);
            int32_t chunks = (b - a + (per > 2 ? per : 2) - 1) / (per > 2 ? per : 2);
            for (int32_t h = 0; h < chunks; h++) {
                int32_t k0 = a + (int32_t)((int64_t)(b - a) * h / chunks), k1 = a + (int32_t)((int64_t)(b - a) * (h + 1) / chunks);
                if (k1 - k0 < 2) continue;
                p->batch_start[p->n_batches] = used;
                for (int32_t k = k0; k < k1; k++) p->batch_member[used++] = c[k].node;
                p->n_batches++;
                p->n_batched += k1 - k0 - 1;
            }
        }
        /* members join their batches after the round: the sort keys above must not move */
        for (int32_t b = before; b < p->n_batches; b++)
            for (int32_t k = p->batch_start[b]; k < (b + 1 < p->n_batches ? p->batch_start[b + 1] : used); k++)
                p->batch_of[p->batch_member[k]] = b;
    }
    p->batch_start[p->n_batches] = used;
    free(c), free(all), free(m), free(dep), free(depth);
    return order_batches(p);
}

/* ---- fuse ---- */

enum { FUSE_SEARCH = 256 }; /* nodes one dependence search may visit before it gives up (no fusion) */

static bool fusable(const loom_rewrites *p, int32_t i)
{
    const loom_node *nd = loom_walk_node(p->walk, i);
    return p->in_plan[i] && loom_op(nd->op)->span && nd->dtype == LOOM_F32 && nd->n_in <= 2 && p->into[i] < 0 &&
           !p->folded_in[i] && p->batch_of[i] < 0;
}

/* Whether node x depends on a member of group g — while groups are being
 * found, a group is numbered by its first member, so every member's id is
 * >= g: a search back from x over ids >= g; "yes" when it would visit more
 * than FUSE_SEARCH nodes. */
static bool reaches(const loom_rewrites *p, int32_t x, int32_t g, int32_t *stack, int32_t *mark, int32_t stamp)
{
    int32_t n = 0, visits = 0;
    if (x < g) return false;
    stack[n++] = x, mark[x] = stamp;
    while (n) {
        int32_t u = stack[--n];
        if (p->fuse_of[u] == g || ++visits > FUSE_SEARCH) return true;
        const loom_node *nd = loom_walk_node(p->walk, u);
        for (int j = 0; j < nd->n_in; j++) {
            int32_t y = loom_walk_in(p->walk, u, j);
            if (y >= g && mark[y] != stamp) mark[y] = stamp, stack[n++] = y;
        }
    }
    return false;
}

/* The fuse rewrite. In id (topological) order, an elementwise node joins
 * the group of an input of its shape when it is that input's critical
 * reader (height, the longest path to the plan's end, one less: as late
 * as possible they run back to back — a value only backward needs, made
 * from forward ones, stays out of the forward step's group, or it would
 * be made early and held), unless that would close a path from the group
 * through an outside node back into it (then the group could not run as
 * one kernel); groups of one dissolve. A member read only inside its
 * group (and not an output) is a temp: its values never leave the fused
 * kernel. */
static loom_status find_groups(loom_rewrites *p)
{
    int32_t n = p->n_graph;
    p->fuse_of = malloc((size_t)n * sizeof *p->fuse_of + 1);
    p->temp = calloc((size_t)n + 1, sizeof *p->temp);
    p->fuse_start = malloc(((size_t)n + 1) * sizeof *p->fuse_start);
    p->fuse_member = malloc((size_t)n * sizeof *p->fuse_member + 1);
    int32_t *num = malloc((size_t)n * sizeof *num + 1), *size = calloc((size_t)n + 1, sizeof *size);
    int32_t *stack = malloc((size_t)n * sizeof *stack + 1), *mark = malloc((size_t)n * sizeof *mark + 1);
    int32_t *reads = calloc((size_t)n + 1, sizeof *reads), *height = calloc((size_t)n + 1, sizeof *height);
    bool ok = height && p->fuse_of && p->temp && p->fuse_start && p->fuse_member && num && size && stack && mark && reads;
    for (int32_t i = 0; ok && i < n; i++) p->fuse_of[i] = -1, mark[i] = -1;
    for (int32_t i = n - 1; ok && i >= 0; i--) {
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; p->in_plan[i] && j < nd->n_in; j++) {
            int32_t x = loom_walk_in(p->walk, i, j);
            height[x] = height[i] + 1 > height[x] ? height[i] + 1 : height[x];
        }
    }
    for (int32_t v = 0; ok && (p->which & LOOM_REWRITE_FUSE) && v < n; v++) {
        if (!fusable(p, v)) continue;
        const loom_node *nd = loom_walk_node(p->walk, v);
        int32_t join = -1;
        for (int j = 0; j < nd->n_in && join < 0; j++) {
            int32_t u = loom_walk_in(p->walk, v, j), g = p->fuse_of[u];
            if (g < 0 || size[g] >= LOOM_FUSE_MAX || height[u] != height[v] + 1 ||
                !loom_shape_eq(loom_walk_node(p->walk, u)->shape, nd->shape) ||
                (loom_walk_node(p->walk, u)->tags.role == LOOM_ROLE_RECOMPUTE) != (nd->tags.role == LOOM_ROLE_RECOMPUTE))
                continue;
            bool clear = true;
            for (int i = 0; i < nd->n_in && clear; i++) {
                int32_t x = loom_walk_in(p->walk, v, i);
                clear = p->fuse_of[x] == g || !reaches(p, x, g, stack, mark, v);
            }
            if (clear) join = g;
        }
        if (join < 0) join = v; /* a new group, numbered by its first member for now */
        p->fuse_of[v] = join, size[join]++;
    }
    /* groups of two or more, numbered in order of their first members
     * (num[first member]); the rest dissolve */
    p->n_fuse = 0;
    for (int32_t i = 0; ok && i < n; i++) {
        int32_t g = p->fuse_of[i];
        if (g < 0) continue;
        if (size[g] < 2) {
            p->fuse_of[i] = -1;
            continue;
        }
        if (g == i) num[i] = p->n_fuse++;
        p->fuse_of[i] = num[g];
    }
    for (int32_t g = 0; ok && g <= p->n_fuse; g++) p->fuse_start[g] = 0;
    for (int32_t i = 0; ok && i < n; i++)
        if (p->fuse_of[i] >= 0) p->fuse_start[p->fuse_of[i] + 1]++;
    for (int32_t g = 0; ok && g < p->n_fuse; g++) p->fuse_start[g + 1] += p->fuse_start[g], stack[g] = p->fuse_start[g];
    for (int32_t i = 0; ok && i < n; i++) /* members in id order: the last is the leader */
        if (p->fuse_of[i] >= 0) p->fuse_member[stack[p->fuse_of[i]]++] = i;
    p->n_fused = ok ? p->fuse_start[p->n_fuse] - p->n_fuse : 0;
    /* temps: every read from inside the group (mark[] counts those) */
    for (int32_t i = 0; ok && i < n; i++) mark[i] = 0;
    for (int32_t i = 0; ok && i < n; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; j < nd->n_in; j++) {
            int32_t x = loom_walk_in(p->walk, i, j);
            if (p->fuse_of[x] < 0) continue;
            reads[x]++;
            if (p->fuse_of[i] == p->fuse_of[x]) mark[x]++;
        }
    }
    for (int k = 0; ok && k < p->n_outputs; k++) reads[loom_index(p->outputs[k])]++;
    p->n_temps = 0;
    for (int32_t i = 0; ok && i < n; i++)
        if (p->fuse_of[i] >= 0 && reads[i] == mark[i]) p->temp[i] = true, p->n_temps++;
    free(num), free(size), free(stack), free(mark), free(reads), free(height);
    return ok ? LOOM_OK : LOOM_ERR_NOMEM;
}

loom_status loom_rewrites_find(loom_rewrites *r, const loom_graph *g, const bool *in_plan, const loom_tensor *outputs,
                               int n_outputs)
{
    int32_t n = loom_graph_size(g);
    r->g = g, r->walk = loom_graph_walk(g), r->n_graph = n, r->in_plan = in_plan, r->outputs = outputs, r->n_outputs = n_outputs;
    r->into = malloc((size_t)n * sizeof *r->into + 1);
    r->folded_in = calloc((size_t)n + 1, sizeof *r->folded_in);
    r->batch_of = malloc((size_t)n * sizeof *r->batch_of + 1);
    if (!r->into || !r->folded_in || !r->batch_of) return LOOM_ERR_NOMEM;
    loom_status s = fold_into_sums(r);
    if (!s) s = find_batches(r);
    return s ? s : find_groups(r);
}

void loom_rewrites_free(loom_rewrites *r)
{
    free(r->into), free(r->folded_in), free(r->batch_of), free(r->batch_start), free(r->batch_member);
    free(r->fuse_of), free(r->fuse_start), free(r->fuse_member), free(r->temp);
}

void loom_rewrites_drop_merged(loom_rewrites *r)
{
    for (int32_t i = 0; i < r->n_graph; i++) r->batch_of[i] = r->fuse_of[i] = -1, r->temp[i] = false;
    r->n_batches = r->n_batched = r->n_fuse = r->n_fused = r->n_temps = 0;
    if (r->batch_start) r->batch_start[0] = 0;
    r->fuse_start[0] = 0;
}
