/* Ordering: prune, ready sets, and which ready sets run side by side.
 *
 * Level of a node = 1 + the highest level of its inputs (sources: 0; views
 * take their input's level and run nothing). Nodes of one level only read
 * lower levels, so they may run side by side. */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

/* Marks what the outputs need (inputs precede their users in the arena). */
static void prune(loom_plan *p)
{
    for (int i = 0; i < p->n_outputs; i++) p->in_plan[loom_index(p->outputs[i])] = true;
    for (int32_t i = p->n_graph - 1; i >= 0; i--) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; j < nd->n_in; j++) p->in_plan[loom_walk_in(p->walk, i, j)] = true;
        if (nd->n_in > p->max_in) p->max_in = nd->n_in;
    }
}

/* Levels and storage roots; returns the highest level. A folded term takes
 * its inputs' level (its work happens in the sum's kernel, a level later).
 * The members of a batch or fused group all take their leader's level,
 * after every member's inputs, which merged_levels finds first. */
static int32_t level_pass(loom_plan *p, const int32_t *merged_level)
{
    const loom_graph *g = p->g;
    int32_t max_level = 0;
    p->n_views = 0;
    for (int32_t i = 0; i < p->n_graph; i++) {
        p->root[i] = i;
        p->level[i] = 0;
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        const loom_op_desc *d = loom_op(nd->op);
        if (d->flags & OPF_STORED) p->bound[i] = loom_graph_stored(g, nd->attr.i[1]);
        if (d->flags & OPF_SOURCE) continue;
        int32_t lv = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t in = loom_walk_in(p->walk, i, j);
            lv = p->level[in] > lv ? p->level[in] : lv;
        }
        if (p->rw.into[i] >= 0) {
            p->level[i] = lv;
        } else if (p->rw.batch_of[i] >= 0 || p->rw.fuse_of[i] >= 0) {
            p->level[i] = merged_level[loom_rewrites_leader(&p->rw, i)];
        } else if (d->flags & OPF_ALIAS) {
            p->level[i] = lv;
            p->root[i] = p->root[loom_walk_in(p->walk, i, 0)];
            p->n_views++;
        } else {
            p->level[i] = lv + 1;
        }
        max_level = p->level[i] > max_level ? p->level[i] : max_level;
    }
    return max_level;
}

/* The units that run as one kernel call — a node, or a batch or fused
 * group by its leader — in a topological order of the graph with each
 * group contracted to its leader (Kahn's): every unit after the units it
 * reads. NULL out of memory; *n_units less than the units when they wait
 * on each other (a cycle). */
static int32_t *unit_order(const loom_plan *p, int32_t *n_units)
{
    int32_t n = p->n_graph, *rep = malloc((size_t)n * sizeof *rep + 1), *indeg = calloc((size_t)n + 1, sizeof *indeg);
    int32_t *start = calloc((size_t)n + 2, sizeof *start), *to = NULL, *queue = malloc((size_t)n * sizeof *queue + 1);
    bool ok = rep && indeg && start && queue;
    int64_t edges = 0;
    for (int32_t i = 0; ok && i < n; i++) rep[i] = loom_rewrites_leader(&p->rw, i);
    for (int32_t i = 0; ok && i < n; i++) { /* consumer lists, CSR: rep(x) → rep(i) */
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; j < nd->n_in; j++) {
            int32_t x = rep[loom_walk_in(p->walk, i, j)];
            if (x != rep[i]) start[x + 1]++, indeg[rep[i]]++, edges++;
        }
    }
    if (ok) {
        for (int32_t i = 0; i < n; i++) start[i + 1] += start[i];
        to = malloc((size_t)edges * sizeof *to + 1);
        ok = to != NULL;
    }
    for (int32_t i = 0; ok && i < n; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        for (int j = 0; j < nd->n_in; j++) {
            int32_t x = rep[loom_walk_in(p->walk, i, j)];
            if (x != rep[i]) to[start[x]++] = rep[i];
        }
    }
    for (int32_t i = n; ok && i > 0; i--) start[i] = start[i - 1]; /* back to the lists' starts */
    if (ok) start[0] = 0;
    int32_t head = 0, tail = 0;
    for (int32_t i = 0; ok && i < n; i++)
        if (p->in_plan[i] && rep[i] == i && !indeg[i]) queue[tail++] = i;
    while (ok && head < tail) {
        int32_t u = queue[head++];
        for (int32_t e = start[u]; e < start[u + 1]; e++)
            if (--indeg[to[e]] == 0) queue[tail++] = to[e];
    }
    free(rep), free(indeg), free(start), free(to);
    if (!ok) free(queue), queue = NULL;
    *n_units = tail;
    return queue;
}

/* The levels of batches and fused groups (per leader), in unit order: a
 * unit runs after every member's inputs. False when they wait on each
 * other (a cycle). */
static bool merged_levels(loom_plan *p, int32_t *merged_level, bool *ok)
{
    int32_t n = p->n_graph, n_units, reps = 0, *order = unit_order(p, &n_units), *lv = calloc((size_t)n + 1, sizeof *lv);
    *ok = order && lv;
    for (int32_t i = 0; *ok && i < n; i++) reps += p->in_plan[i] && loom_rewrites_leader(&p->rw, i) == i;
    for (int32_t k = 0; *ok && k < n_units; k++) {
        int32_t u = order[k], n_run, level = 0;
        /* u's level from its (or its members') inputs, as level_pass reckons it */
        const int32_t *run = loom_rewrites_members(&p->rw, &u, &n_run);
        bool merged = p->rw.batch_of[u] >= 0 || p->rw.fuse_of[u] >= 0;
        for (int32_t m = 0; m < n_run; m++) {
            int32_t i = run[m];
            const loom_node *nd = loom_walk_node(p->walk, i);
            unsigned flags = loom_op(nd->op)->flags;
            if (flags & OPF_SOURCE) continue;
            int32_t in = 0;
            for (int j = 0; j < nd->n_in; j++) {
                int32_t x = lv[loom_rewrites_leader(&p->rw, loom_walk_in(p->walk, i, j))];
                in = x > in ? x : in;
            }
            int32_t l = merged || !((flags & OPF_ALIAS) || p->rw.into[i] >= 0) ? in + 1 : in;
            level = l > level ? l : level;
        }
        lv[u] = merged_level[u] = level;
    }
    bool acyclic = n_units == reps;
    free(order), free(lv);
    return acyclic;
}

static int32_t assign_levels(loom_plan *p, bool *ok)
{
    int32_t *level = calloc((size_t)p->n_graph + 1, sizeof *level);
    *ok = level != NULL;
    if (*ok && (p->rw.n_batches || p->rw.n_fuse) && !merged_levels(p, level, ok) && *ok)
        loom_rewrites_drop_merged(&p->rw); /* waiting on each other: run without them */
    int32_t max_level = *ok ? level_pass(p, level) : 0;
    free(level);
    return max_level;
}

/* A step's reduction (a bias gradient's row sum, say) stays where it is:
 * moved down, it would hold inputs larger than its value — with two
 * readers (an LSTM's two bias gradients, each a Σ over the steps) it would
 * move to the end and hold every step's gate gradients. Recomputed nodes
 * move whatever their size: their inputs are recomputed late too. */
static bool shrinks(const loom_plan *p, int32_t i)
{
    const loom_node *nd = loom_walk_node(p->walk, i);
    if (nd->tags.role == LOOM_ROLE_RECOMPUTE || nd->tags.step < 0) return false;
    int64_t out = loom_shape_numel(nd->shape);
    for (int j = 0; j < nd->n_in; j++) {
        int32_t x = loom_walk_in(p->walk, i, j);
        if (!(loom_op(loom_walk_node(p->walk, p->root[x])->op)->flags & OPF_SOURCE) &&
            loom_shape_numel(loom_walk_node(p->walk, x)->shape) > out)
            return true;
    }
    return false;
}

/* Sinking: a node moves to the level just before its first reader (as
 * late as possible), so that values a late step needs (the per-step
 * slices of the decoder's gradient, say; a recomputed segment) are not all
 * made at the start and held. The last level stays the same, and so does
 * every value. One sweep over the units in reverse topological order, so
 * each unit's readers have their final levels when it moves: a batch or
 * fused group moves as one, to the bound of all its members; views and
 * folded terms pass their readers' bound on to their inputs; reads inside
 * a group bind nothing. Sources and outputs (and a unit with an output)
 * stay where they are, and so do reductions (shrinks). */
static bool sink(loom_plan *p)
{
    int32_t n_units, *order = unit_order(p, &n_units);
    int32_t *bound = malloc((size_t)p->n_graph * sizeof *bound + 1);
    bool *output = calloc((size_t)p->n_graph + 1, sizeof *output);
    if (!order || !bound || !output) {
        free(order), free(bound), free(output);
        return false;
    }
    for (int i = 0; i < p->n_outputs; i++) output[loom_index(p->outputs[i])] = true;
    for (int32_t i = 0; i < p->n_graph; i++) bound[i] = INT32_MAX;
    for (int32_t k = n_units - 1; k >= 0; k--) {
        int32_t u = order[k], n_run, g = p->rw.fuse_of[u];
        const int32_t *m = loom_rewrites_members(&p->rw, &u, &n_run);
        if (p->rw.batch_of[u] >= 0 || g >= 0) { /* a unit: every member's bound */
            int32_t b = INT32_MAX;
            for (int32_t r = 0; r < n_run; r++) b = output[m[r]] ? -1 : bound[m[r]] < b ? bound[m[r]] : b;
            if (b != INT32_MAX && b > p->level[u])
                for (int32_t r = 0; r < n_run; r++) p->level[m[r]] = b;
        } else {
            unsigned flags = loom_op(loom_walk_node(p->walk, u)->op)->flags;
            bool pass = (flags & OPF_ALIAS) || p->rw.into[u] >= 0; /* runs no kernel of its own */
            if (!(flags & OPF_SOURCE) && !output[u] && bound[u] != INT32_MAX && (pass || !shrinks(p, u)))
                p->level[u] = pass ? bound[u] : bound[u] > p->level[u] ? bound[u] : p->level[u];
        }
        for (int32_t r = 0; r < n_run; r++) {
            int32_t i = m[r];
            const loom_node *nd = loom_walk_node(p->walk, i);
            bool pass = (loom_op(nd->op)->flags & OPF_ALIAS) || p->rw.into[i] >= 0;
            int32_t lim = pass ? p->level[i] : p->level[i] - 1;
            for (int j = 0; j < nd->n_in; j++) {
                int32_t x = loom_walk_in(p->walk, i, j);
                if (g < 0 || p->rw.fuse_of[x] != g) bound[x] = lim < bound[x] ? lim : bound[x]; /* not a read inside the group */
            }
        }
    }
    free(order), free(bound), free(output);
    return true;
}

static bool runs_kernel(const loom_plan *p, int32_t i)
{
    return p->in_plan[i] && loom_rewrites_runs(&p->rw, i) &&
           !(loom_op(loom_walk_node(p->walk, i)->op)->flags & (OPF_SOURCE | OPF_ALIAS));
}

/* Pieces of the sums whose folded terms stack (a BPTT weight gradient
 * Σ_t δ_tᵀ·a_t): chunks of at least PIECE_ROWS stacked rows, in term order,
 * each run at the level after its terms' operands are ready unless that
 * is the sum's own level (the last chunk, usually); pieces of one sum
 * ready at one level merge. Only where the operands outweigh the sum:
 * its buffer is then taken at the first piece instead of at the end
 * (a big decoder-sized weight over a short sequence gains nothing). */
enum { PIECE_ROWS = 512 };

static bool add_piece(loom_plan *p, int32_t s, int32_t lo, int32_t hi, int32_t level, int32_t *cap)
{
    if (p->n_pieces == *cap) {
        int32_t c = *cap ? 2 * *cap : 64;
        int32_t *a = realloc(p->piece_sum, (size_t)c * sizeof *a);
        if (a) p->piece_sum = a;
        int32_t *b = a ? realloc(p->piece_lo, (size_t)c * sizeof *b) : NULL;
        if (b) p->piece_lo = b;
        int32_t *d = b ? realloc(p->piece_hi, (size_t)c * sizeof *d) : NULL;
        if (d) p->piece_hi = d;
        int32_t *e = d ? realloc(p->piece_level, (size_t)c * sizeof *e) : NULL;
        if (e) p->piece_level = e;
        bool *f = e ? realloc(p->piece_first, (size_t)c * sizeof *f) : NULL;
        if (f) p->piece_first = f;
        if (!f) return false;
        *cap = c;
    }
    int32_t k = p->n_pieces++;
    p->piece_sum[k] = s, p->piece_lo[k] = lo, p->piece_hi[k] = hi, p->piece_level[k] = level, p->piece_first[k] = false;
    return true;
}

static bool find_pieces(loom_plan *p)
{
    p->piece_of = malloc((size_t)p->n_graph * sizeof *p->piece_of + 1);
    p->has_pieces = calloc((size_t)p->n_graph + 1, sizeof *p->has_pieces);
    if (!p->piece_of || !p->has_pieces) return false;
    for (int32_t i = 0; i < p->n_graph; i++) p->piece_of[i] = -1;
    int32_t cap = 0;
    for (int32_t s = 0; s < p->n_graph; s++) {
        if (!p->in_plan[s] || p->rw.folded_in[s] < 4) continue;
        const loom_node *nd = loom_walk_node(p->walk, s);
        int64_t operands = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t x = loom_walk_in(p->walk, s, j);
            const loom_node *xn = loom_walk_node(p->walk, x);
            for (int i = 0; p->rw.into[x] == s && i < xn->n_in; i++) operands += loom_tensor_numel(p->g, loom_node_input(p->g, loom_at(x), i));
        }
        if (operands <= 2 * loom_shape_numel(nd->shape)) continue;
        int32_t per = 0, in_chunk = 0, lo = -1, level = 0, first = p->n_pieces;
        for (int j = 0; j <= nd->n_in; j++) {
            int32_t x = j < nd->n_in ? loom_walk_in(p->walk, s, j) : -1;
            const loom_node *xn = x >= 0 ? loom_walk_node(p->walk, x) : NULL;
            bool term = x >= 0 && loom_plan_stacking_term(p, s, x);
            if (term && !per) { /* terms per chunk, from the first term's rows */
                loom_shape a = loom_tensor_shape(p->g, loom_at(loom_walk_in(p->walk, x, 0)));
                int64_t rows = a.rank ? a.d[0] : 1;
                per = (int32_t)(PIECE_ROWS / (rows > 0 ? rows : 1));
                per = per < 2 ? 2 : per;
            }
            if (term) {
                if (!in_chunk) lo = j;
                for (int i = 0; i < xn->n_in; i++) {
                    int32_t l = p->level[p->root[loom_walk_in(p->walk, x, i)]] + 1; /* a view: when its buffer is ready */
                    level = l > level ? l : level;
                }
                in_chunk++;
            }
            if (in_chunk && (in_chunk == per || x < 0)) { /* a chunk ends: j + 1 or the end */
                int32_t hi = x < 0 ? nd->n_in : j + 1, k = first;
                if (level < p->level[s]) { /* one piece per level: two at once would race */
                    while (k < p->n_pieces && p->piece_level[k] != level) k++;
                    if (k < p->n_pieces) p->piece_hi[k] = hi;
                    else if (!add_piece(p, s, lo, hi, level, &cap)) return false;
                    for (int i = lo; i < hi; i++) {
                        int32_t t = loom_walk_in(p->walk, s, i);
                        if (loom_plan_stacking_term(p, s, t)) p->piece_of[t] = k;
                    }
                }
                in_chunk = 0, level = 0;
            }
        }
        int32_t low = first; /* the sum's first piece to run: the lowest level */
        for (int32_t k = first; k < p->n_pieces; k++) low = p->piece_level[k] < p->piece_level[low] ? k : low;
        if (low < p->n_pieces) p->piece_first[low] = p->has_pieces[s] = true;
    }
    return true;
}

/* Buckets the kernel calls by level (a counting sort keeps id order
 * inside a level; pieces after nodes). */
static loom_status bucket(loom_plan *p)
{
    int32_t L = p->n_levels, *count = calloc((size_t)L + 2, sizeof *count);
    p->level_start = calloc((size_t)L + 2, sizeof *p->level_start);
    int32_t *exec = realloc(p->exec, ((size_t)p->n_graph + (size_t)p->n_pieces + 1) * sizeof *exec);
    if (exec) p->exec = exec;
    if (!count || !p->level_start || !exec) {
        free(count);
        return LOOM_ERR_NOMEM;
    }
    for (int32_t i = 0; i < p->n_graph + p->n_pieces; i++) {
        int32_t l = i < p->n_graph ? (runs_kernel(p, i) ? p->level[i] : -1) : p->piece_level[i - p->n_graph];
        if (l >= 0) count[l]++, p->n_exec++;
    }
    for (int32_t l = 1; l <= L; l++) p->level_start[l] = p->level_start[l - 1] + count[l];
    memset(count, 0, ((size_t)L + 2) * sizeof *count);
    for (int32_t i = 0; i < p->n_graph + p->n_pieces; i++) {
        int32_t l = i < p->n_graph ? (runs_kernel(p, i) ? p->level[i] : -1) : p->piece_level[i - p->n_graph];
        if (l >= 0) p->exec[p->level_start[l - 1] + count[l]++] = i;
    }
    free(count);
    return LOOM_OK;
}

/* Work of node id's kernel call, in element operations: its own, times
 * the members it runs (a batch, a fused group), plus its folded terms'.
 * *splits: every kernel in it splits its work across a team. */
static int64_t kernel_work(const loom_plan *p, int32_t id, bool *splits)
{
    if (id >= p->n_graph) { /* a piece: its terms */
        int32_t k = id - p->n_graph, s = p->piece_sum[k];
        int64_t work = 0;
        *splits = true;
        for (int32_t j = p->piece_lo[k]; j < p->piece_hi[k]; j++) {
            int32_t x = loom_walk_in(p->walk, s, j);
            if (p->piece_of[x] != k) continue;
            *splits = *splits && (loom_op(loom_walk_node(p->walk, x)->op)->flags & OPF_SPLITS);
            work += loom_op_cost(p->g, loom_at(x));
        }
        return work;
    }
    const loom_node *nd = loom_walk_node(p->walk, id);
    int32_t n_run;
    loom_rewrites_members(&p->rw, &id, &n_run);
    int64_t work = loom_op_cost(p->g, loom_at(id)) * n_run;
    *splits = loom_op(nd->op)->flags & OPF_SPLITS;
    for (int j = 0; p->rw.folded_in[id] && j < nd->n_in; j++) {
        int32_t x = loom_walk_in(p->walk, id, j);
        if (p->rw.into[x] != id) continue;
        *splits = *splits && (loom_op(loom_walk_node(p->walk, x)->op)->flags & OPF_SPLITS);
        work += loom_op_cost(p->g, loom_at(x));
    }
    return work;
}

/* How each ready set runs on several threads: a node worth a team (its
 * kernels split, more than LOOM_PAR_MIN operations) runs on all of them;
 * the others run alone — side by side when the set has several, together
 * worth it, and no node worth a team (`wide`), else one after another on
 * the first thread. (Running two big nodes side by side instead of each
 * split — the two directions of a layer, layer l at step t beside layer
 * l+1 at step t − 1 — measured the same as splitting each.) */
static loom_status choose_wide(loom_plan *p)
{
    p->wide = calloc((size_t)p->n_levels + 1, sizeof *p->wide);
    p->split = calloc((size_t)p->n_exec + 1, sizeof *p->split);
    if (!p->wide || !p->split) return LOOM_ERR_NOMEM;
    for (int32_t l = 0; l < p->n_levels; l++) {
        int32_t b = p->level_start[l], e = p->level_start[l + 1];
        int64_t total = 0, most = 0;
        for (int32_t k = b; k < e; k++) {
            bool splits;
            int64_t w = kernel_work(p, p->exec[k], &splits);
            p->split[k] = splits && w > LOOM_PAR_MIN;
            total += w;
            most = w > most ? w : most;
        }
        p->wide[l] = e - b > 1 && total >= LOOM_PAR_MIN && most <= LOOM_PAR_MIN;
    }
    return LOOM_OK;
}

loom_status loom_plan_schedule(loom_plan *p)
{
    prune(p);
    loom_status s = loom_rewrites_find(&p->rw, p->g, p->in_plan, p->outputs, p->n_outputs);
    if (s) return s;
    bool ok;
    p->n_levels = assign_levels(p, &ok);
    if (!ok || ((p->rw.which & LOOM_REWRITE_SINK) && !sink(p)) || !find_pieces(p)) return LOOM_ERR_NOMEM;
    s = bucket(p);
    return s ? s : choose_wide(p);
}
