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
    int32_t until;
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

/* last[r]: the last level that reads root r. */
static void last_reads(const loom_plan *p, int32_t *last)
{
    const loom_graph *g = p->g;
    for (int32_t i = 0; i < p->n_graph; i++) last[i] = -1;
    for (int32_t i = 0; i < p->n_graph; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        if (loom_op(nd->op)->flags & OPF_ALIAS) continue;
        int32_t lv = p->level[p->into[i] >= 0 ? p->into[i] : i]; /* a folded term reads in its sum's kernel */
        for (int j = 0; j < nd->n_in; j++) {
            int32_t r = p->root[loom_index(loom_node_input(g, loom_at(i), j))];
            last[r] = lv > last[r] ? lv : last[r];
        }
    }
    for (int i = 0; i < p->n_outputs; i++) last[p->root[loom_index(p->outputs[i])]] = p->n_levels + 1;
}

loom_status loom_plan_place(loom_plan *p)
{
    int32_t *last = malloc((size_t)p->n_graph * sizeof *last + 1);
    heap live = {malloc(((size_t)p->n_exec + 1) * sizeof *live.v), 0};
    free_list fl = {malloc(16 * sizeof *fl.v), 1, 16};
    bool ok = last && live.v && fl.v;
    if (ok) {
        fl.v[0] = (span){0, INT64_MAX};
        last_reads(p, last);
        for (int32_t i = 0; i < p->n_graph; i++) p->offset[i] = -1;
    }
    size_t high = 0;
    for (int32_t l = 1; ok && l <= p->n_levels; l++) {
        while (ok && live.n && live.v[0].until < l) {
            live_buf b = heap_pop(&live);
            ok = give_back(&fl, b.off, b.size);
        }
        for (int32_t e = p->level_start[l - 1]; ok && e < p->level_start[l]; e++) {
            int32_t id = p->exec[e];
            int64_t size = (int64_t)round_up(loom_tensor_numel(p->g, loom_at(id)));
            p->naive_floats += (size_t)size;
            /* a buffer nobody reads still needs a place while its kernel runs */
            p->offset[id] = take(&fl, size, &high);
            heap_push(&live, (live_buf){p->offset[id], size, last[id] < l ? l : last[id]});
        }
    }
    free(last), free(live.v), free(fl.v);
    if (!ok) return LOOM_ERR_NOMEM;
    p->arena_floats = high;
    p->arena = high ? aligned_alloc(ALIGN_FLOATS * sizeof(float), high * sizeof(float)) : NULL;
    return high && !p->arena ? LOOM_ERR_NOMEM : LOOM_OK;
}
