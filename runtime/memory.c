/* Memory placement: every buffer a kernel writes gets a place in one arena.
 *
 * A buffer lives from the level that writes it to the last level that reads
 * it (through any views of it); outputs live to the end. Two buffers share
 * memory only when their level ranges do not meet, which stays correct when
 * a level runs in parallel. Placement is first fit, level by level, over a
 * coalesced free list (O(log n) per buffer to expire, a scan of the few
 * holes to place). */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

static size_t round_up(int64_t n) { return (size_t)((n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS); }

/* Free spans of the arena, sorted by offset and coalesced; the last one
 * runs to "infinity" (INT64_MAX), so first fit always finds a place and the
 * arena's size is the highest end ever used. Few spans are free at a time
 * (the holes between live buffers), so a scan is cheap. */
typedef struct {
    int64_t off, end;
} span;

typedef struct {
    span *v;
    int n, cap;
} free_list;

/* Live buffers by the last level that reads them (a min-heap): at each
 * level the expired ones return to the free list in O(log n) each. */
typedef struct {
    int64_t off, size;
    int32_t until, owner; /* owner: the node whose buffer it is (-1: a block) */
} live_buf;

typedef struct {
    live_buf *v;
    int n;
} heap;

static void heap_push(heap *h, live_buf b)
{
    int i = h->n++;
    for (; i > 0 && h->v[(i - 1) / 2].until > b.until; i = (i - 1) / 2) h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = b;
}

static live_buf heap_pop(heap *h)
{
    live_buf top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1].until < h->v[c].until) c++;
        if (h->v[c].until >= last.until) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Returns [off, off + size) to the free list, merging with its neighbours. */
static bool give_back(free_list *fl, int64_t off, int64_t size)
{
    int lo = 0, hi = fl->n; /* first span after off */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (fl->v[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    int64_t end = off + size;
    bool join_prev = lo > 0 && fl->v[lo - 1].end == off, join_next = lo < fl->n && fl->v[lo].off == end;
    if (join_prev && join_next) {
        fl->v[lo - 1].end = fl->v[lo].end;
        memmove(fl->v + lo, fl->v + lo + 1, (size_t)(fl->n - lo - 1) * sizeof *fl->v);
        fl->n--;
    } else if (join_prev) {
        fl->v[lo - 1].end = end;
    } else if (join_next) {
        fl->v[lo].off = off;
    } else {
        if (fl->n == fl->cap) {
            int cap = fl->cap * 2;
            span *v = realloc(fl->v, (size_t)cap * sizeof *v);
            if (!v) return false;
            fl->v = v, fl->cap = cap;
        }
        memmove(fl->v + lo + 1, fl->v + lo, (size_t)(fl->n - lo) * sizeof *fl->v);
        fl->v[lo] = (span){off, end};
        fl->n++;
    }
    return true;
}

/* First fit: the lowest free offset with room for size. */
static int64_t take(free_list *fl, int64_t size, size_t *high)
{
    int i = 0;
    while (fl->v[i].end - fl->v[i].off < size) i++; /* the last span never ends */
    int64_t off = fl->v[i].off;
    fl->v[i].off += size;
    if (fl->v[i].off == fl->v[i].end) {
        memmove(fl->v + i, fl->v + i + 1, (size_t)(fl->n - i - 1) * sizeof *fl->v);
        fl->n--;
    }
    if ((size_t)(off + size) > *high) *high = (size_t)(off + size);
    return off;
}

/* last[r]: the last level that reads root r (outputs: past the end);
 * readers[r]: the nodes that read it at that level, each once (a folded
 * term reads in its sum's kernel or its piece's, which count for it).
 * seen[r]: the reader last counted for r (scratch). */
static void last_reads(const loom_plan *p, int32_t *last, int32_t *readers, int32_t *seen)
{
    for (int32_t i = 0; i < p->n_graph; i++) last[i] = -1, readers[i] = 0, seen[i] = -1;
    for (int32_t i = 0; i < p->n_graph; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_walk_node(p->walk, i);
        if (loom_op(nd->op)->flags & OPF_ALIAS) continue;
        int32_t k = p->piece_of[i], reader = k >= 0 ? p->n_graph + k : p->rw.into[i] >= 0 ? p->rw.into[i] : i;
        int32_t lv = k >= 0 ? p->piece_level[k] : p->level[reader];
        for (int j = 0; j < nd->n_in; j++) {
            int32_t r = p->root[loom_walk_in(p->walk, i, j)];
            if (lv > last[r]) last[r] = lv, readers[r] = 0, seen[r] = -1;
            if (lv == last[r] && seen[r] != reader) seen[r] = reader, readers[r]++;
        }
    }
    for (int i = 0; i < p->n_outputs; i++) last[p->root[loom_index(p->outputs[i])]] = p->n_levels + 1;
}

/* Operand groups. The terms a sum runs in its kernel (the accumulate
 * rewrite) run as one kernel when their operands lie end to end (op
 * `stacks`: Σ_t δ_tᵀ·a_t = [δ_1; …; δ_T]ᵀ[a_1; …; a_T], one GEMM with
 * K = T·B). So input j of every such term of a sum goes into one block, in
 * term order, taken when the first member is written and kept until the
 * last member's last read; a member placed elsewhere (a binding, a view, a
 * member of another group) only breaks the run there. */
typedef struct {
    int64_t off, member, n; /* block offset (-1 until taken), member size, members */
    int32_t until;
} group;

typedef struct {
    group *v;
    int32_t n, cap;
    int32_t *of, *index; /* per node: its group (-1: none) and place in it */
} groups;

static bool own_buffer(const loom_plan *p, int32_t i)
{
    return p->in_plan[i] && p->rw.into[i] < 0 && p->rw.batch_of[i] < 0 && !p->rw.temp[i] &&
           !(loom_op(loom_walk_node(p->walk, i)->op)->flags & (OPF_SOURCE | OPF_ALIAS));
}

static bool grow(groups *gs)
{
    if (gs->n < gs->cap) return true;
    int32_t cap = gs->cap ? 2 * gs->cap : 64;
    group *v = realloc(gs->v, (size_t)cap * sizeof *v);
    if (!v) return false;
    gs->v = v, gs->cap = cap;
    return true;
}

/* Appends node r to group gr (a member size and lifetime like the others'). */
static void join(groups *gs, group *gr, int32_t r, const loom_plan *p, const int32_t *last)
{
    int64_t size = loom_tensor_numel(p->g, loom_at(r));
    if (!own_buffer(p, r) || gs->of[r] >= 0 || (gr->member >= 0 && size != gr->member)) return;
    gr->member = size;
    gs->of[r] = (int32_t)(gr - gs->v);
    gs->index[r] = (int32_t)gr->n++;
    gr->until = last[r] > gr->until ? last[r] : gr->until;
}

/* A batch's input rows, end to end in member order (the outputs get their
 * block when the batch runs). */
static bool batch_group(groups *gs, const loom_plan *p, int32_t b, const int32_t *last)
{
    if (!grow(gs)) return false;
    group *gr = &gs->v[gs->n++];
    *gr = (group){-1, -1, 0, -1};
    for (int32_t k = p->rw.batch_start[b]; k < p->rw.batch_start[b + 1]; k++)
        join(gs, gr, p->root[loom_walk_in(p->walk, p->rw.batch_member[k], 0)], p, last);
    return true;
}

/* Inputs of sum s's first stacking term (stacking terms of one sum have
 * the same op, so the same inputs), or 0. */
static int term_inputs(const loom_plan *p, int32_t s)
{
    const loom_node *nd = loom_walk_node(p->walk, s);
    for (int k = 0; k < nd->n_in; k++) {
        int32_t t = loom_walk_in(p->walk, s, k);
        if (loom_plan_stacking_term(p, s, t)) return loom_walk_node(p->walk, t)->n_in;
    }
    return 0;
}

/* Input j of sum s's k-th stacking term (its storage root), or -1. */
static int32_t operand(const loom_plan *p, int32_t s, int k, int j)
{
    int32_t t = loom_walk_in(p->walk, s, k);
    if (!loom_plan_stacking_term(p, s, t) || j >= loom_walk_node(p->walk, t)->n_in) return -1;
    return p->root[loom_walk_in(p->walk, t, j)];
}

/* Members get places in term order, or in reverse when reverse is set; a
 * block per piece of the sum (each dies when its piece has run). */
static bool add_group(groups *gs, const loom_plan *p, int32_t s, int j, bool reverse, const int32_t *last)
{
    int n_in = loom_walk_node(p->walk, s)->n_in;
    int32_t piece = -2;
    group *gr = NULL;
    for (int k = 0; k < n_in; k++) {
        int q = reverse ? n_in - 1 - k : k;
        int32_t r = operand(p, s, q, j), t = loom_walk_in(p->walk, s, q);
        if (r < 0) continue;
        if (!gr || p->piece_of[t] != piece) {
            if (!grow(gs)) return false;
            gr = &gs->v[gs->n++];
            *gr = (group){-1, -1, 0, -1};
            piece = p->piece_of[t];
        }
        join(gs, gr, r, p, last);
    }
    return true;
}

/* Whether sum s's terms meet an operand already in a group (another sum's:
 * the gate gradients the input and hidden weights share, the input slices
 * both directions share): *falling tells whether in falling order. */
static bool constrained(const groups *gs, const loom_plan *p, int32_t s, bool *falling)
{
    int n_in = loom_walk_node(p->walk, s)->n_in, m = term_inputs(p, s);
    for (int j = 0; j < m; j++) {
        int32_t prev = -1;
        for (int k = 0; k < n_in; k++) {
            int32_t r = operand(p, s, k, j);
            if (r < 0 || gs->of[r] < 0) continue;
            if (prev >= 0 && gs->of[prev] == gs->of[r]) {
                *falling = gs->index[r] < gs->index[prev];
                return true;
            }
            prev = r;
        }
    }
    return false;
}

/* Sums whose operands are already in groups go first, in the order those
 * groups set, so every operand of a sum runs the same way; then the next
 * free one in term order, and again. */
static bool find_groups(groups *gs, const loom_plan *p, const int32_t *last)
{
    for (int32_t i = 0; i < p->n_graph; i++) gs->of[i] = -1;
    for (int32_t b = 0; b < p->rw.n_batches; b++) /* first: the sums then follow their order */
        if (!batch_group(gs, p, b, last)) return false;
    int32_t n = 0, *sums = malloc((size_t)p->n_graph * sizeof *sums + 1);
    if (!sums) return false;
    for (int32_t s = 0; s < p->n_graph; s++) {
        int stacking = 0, n_in = p->rw.folded_in[s] >= 2 ? loom_walk_node(p->walk, s)->n_in : 0;
        for (int k = 0; k < n_in && stacking < 2; k++) stacking += operand(p, s, k, 0) >= 0;
        if (stacking >= 2) sums[n++] = s;
    }
    bool ok = true;
    while (ok && n) {
        int32_t pick = 0;
        bool reverse = false;
        for (int32_t i = 0; i < n; i++)
            if (constrained(gs, p, sums[i], &reverse)) {
                pick = i;
                break;
            }
        int32_t s = sums[pick];
        memmove(sums + pick, sums + pick + 1, (size_t)(--n - pick) * sizeof *sums);
        for (int j = 0, m = term_inputs(p, s); ok && j < m; j++) ok = add_group(gs, p, s, j, reverse, last);
    }
    free(sums);
    return ok;
}

/* In place: node id (an OPF_INPLACE op running its own kernel at level l)
 * may write over an input of its size whose buffer dies at l with id its
 * only reader there (so nothing beside it reads the input while it is
 * overwritten); the input's buffer must be a plain one (not in a block).
 * Returns that input's root, or -1. */
static int32_t in_place(const loom_plan *p, const groups *gs, int32_t id, int32_t l, const int32_t *last,
                        const int32_t *readers, const bool *handed)
{
    const loom_node *nd = loom_walk_node(p->walk, id);
    if (!(p->rw.which & LOOM_REWRITE_IN_PLACE) || !(loom_op(nd->op)->flags & OPF_INPLACE) || p->rw.folded_in[id] ||
        p->rw.fuse_of[id] >= 0)
        return -1;
    for (int j = 0; j < nd->n_in; j++) {
        loom_tensor x = loom_node_input(p->g, loom_at(id), j);
        int32_t r = p->root[loom_index(x)];
        if (p->offset[r] < 0 || handed[r] || !own_buffer(p, r) || gs->of[r] >= 0 || last[r] != l || readers[r] != 1 ||
            loom_tensor_numel(p->g, x) != loom_shape_numel(nd->shape) || loom_walk_node(p->walk, r)->dtype != nd->dtype)
            continue;
        return r;
    }
    return -1;
}

loom_status loom_plan_place(loom_plan *p)
{
    int32_t *last = malloc((size_t)p->n_graph * sizeof *last + 1);
    /* a push per buffer placed: each node at most once (a fused group's or a batch's
     * members too, when they are outputs) and each group's block */
    heap live = {malloc(((size_t)p->n_graph + (size_t)p->n_exec + 1) * sizeof *live.v), 0};
    free_list fl = {malloc(16 * sizeof *fl.v), 1, 16};
    groups gs = {NULL, 0, 0, malloc((size_t)p->n_graph * sizeof(int32_t) + 1),
                 malloc((size_t)p->n_graph * sizeof(int32_t) + 1)};
    int32_t *readers = malloc((size_t)p->n_graph * sizeof *readers + 1), *seen = malloc((size_t)p->n_graph * sizeof *seen + 1);
    bool *handed = calloc((size_t)p->n_graph + 1, sizeof *handed);
    bool ok = last && live.v && fl.v && gs.of && gs.index && readers && seen && handed;
    if (ok) {
        fl.v[0] = (span){0, INT64_MAX};
        last_reads(p, last, readers, seen);
        for (int32_t i = 0; i < p->n_graph; i++) p->offset[i] = -1;
        ok = find_groups(&gs, p, last);
    }
    size_t high = 0;
    for (int32_t l = 1; ok && l <= p->n_levels; l++) {
        while (ok && live.n && live.v[0].until < l) {
            live_buf b = heap_pop(&live);
            if (b.owner < 0 || !handed[b.owner]) ok = give_back(&fl, b.off, b.size);
        }
        for (int32_t e = p->level_start[l - 1]; ok && e < p->level_start[l]; e++) {
            int32_t lead = p->exec[e], n_run = 1, *batch = NULL;
            const int32_t *run = lead >= p->n_graph ? &p->piece_sum[lead - p->n_graph] /* a piece writes its sum */
                                                    : loom_rewrites_members(&p->rw, &p->exec[e], &n_run);
            if (lead < p->n_graph && p->rw.batch_of[lead] >= 0) batch = (int32_t *)run;
            for (int32_t k = 0; ok && k < (batch ? 1 : n_run); k++) {
                int32_t id = run[k];
                if (p->offset[id] >= 0) continue; /* a sum its first piece placed */
                int64_t numel = loom_tensor_numel(p->g, loom_at(id)), size = (int64_t)round_up(numel);
                p->naive_floats += (size_t)size;
                if (p->rw.temp[id]) continue; /* lives inside its fused kernel */
                group *gr = gs.of[id] >= 0 ? &gs.v[gs.of[id]] : NULL;
                if (gr) { /* the block of its group, taken by the first member written */
                    if (gr->off < 0) {
                        int64_t block = (int64_t)round_up(gr->n * gr->member);
                        gr->off = take(&fl, block, &high);
                        heap_push(&live, (live_buf){gr->off, block, gr->until < l ? l : gr->until, -1});
                    }
                    p->offset[id] = gr->off + gs.index[id] * gr->member;
                    continue;
                }
                if (batch) { /* the batch's outputs, end to end in member order */
                    int32_t until = l;
                    for (int32_t j = 0; j < n_run; j++) until = last[batch[j]] > until ? last[batch[j]] : until;
                    int64_t off = take(&fl, (int64_t)round_up(n_run * numel), &high);
                    heap_push(&live, (live_buf){off, (int64_t)round_up(n_run * numel), until, -1});
                    for (int32_t j = 0; j < n_run; j++) p->offset[batch[j]] = off + j * numel;
                    p->naive_floats += (size_t)(n_run - 1) * (size_t)size;
                    continue;
                }
                int32_t over = in_place(p, &gs, id, l, last, readers, handed);
                if (over >= 0) { /* the input's buffer passes to the output */
                    handed[over] = true;
                    p->offset[id] = p->offset[over];
                    p->n_in_place++;
                } else { /* a buffer nobody reads still needs a place while its kernel runs */
                    p->offset[id] = take(&fl, size, &high);
                }
                heap_push(&live, (live_buf){p->offset[id], size, last[id] < l ? l : last[id], id});
            }
        }
    }
    free(last), free(live.v), free(fl.v), free(gs.v), free(gs.of), free(gs.index), free(readers), free(seen), free(handed);
    if (!ok) return LOOM_ERR_NOMEM;
    p->arena_floats = high;
    p->arena = high ? aligned_alloc(ALIGN_FLOATS * sizeof(float), high * sizeof(float)) : NULL;
    return high && !p->arena ? LOOM_ERR_NOMEM : LOOM_OK;
}
