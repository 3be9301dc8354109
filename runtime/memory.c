/* Memory placement: every buffer a kernel writes gets a place in one arena.
 *
 * A buffer lives from the level that writes it to the last level that reads
 * it (through any views of it); outputs live to the end. Two buffers share
 * memory only when their level ranges do not meet, which stays correct when
 * a level runs in parallel. Placement is first fit, level by level. */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

static size_t round_up(int64_t n) { return (size_t)((n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS); }

typedef struct {
    int64_t off, size;
    int32_t until; /* last level that reads it */
} live_buf;

/* First fit among live buffers sorted by offset. */
static int64_t place(live_buf *live, int *n_live, int64_t size, int32_t until, size_t *high)
{
    int64_t off = 0;
    int at = 0;
    for (; at < *n_live; at++) {
        if (live[at].off - off >= size) break;
        off = live[at].off + live[at].size;
    }
    memmove(live + at + 1, live + at, (size_t)(*n_live - at) * sizeof *live);
    live[at] = (live_buf){off, size, until};
    (*n_live)++;
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
        for (int j = 0; j < nd->n_in; j++) {
            int32_t r = p->root[loom_index(loom_node_input(g, loom_at(i), j))];
            last[r] = p->level[i] > last[r] ? p->level[i] : last[r];
        }
    }
    for (int i = 0; i < p->n_outputs; i++) last[p->root[loom_index(p->outputs[i])]] = p->n_levels + 1;
}

loom_status loom_plan_place(loom_plan *p)
{
    int32_t *last = malloc((size_t)p->n_graph * sizeof *last);
    live_buf *live = malloc(((size_t)p->n_exec + 1) * sizeof *live);
    if (!last || !live) {
        free(last), free(live);
        return LOOM_ERR_NOMEM;
    }
    last_reads(p, last);
    for (int32_t i = 0; i < p->n_graph; i++) p->offset[i] = -1;
    int n_live = 0;
    size_t high = 0;
    for (int32_t l = 1; l <= p->n_levels; l++) {
        int k = 0;
        for (int m = 0; m < n_live; m++)
            if (live[m].until >= l) live[k++] = live[m];
        n_live = k;
        for (int32_t e = p->level_start[l - 1]; e < p->level_start[l]; e++) {
            int32_t id = p->exec[e];
            int64_t size = (int64_t)round_up(loom_tensor_numel(p->g, loom_at(id)));
            p->naive_floats += (size_t)size;
            /* a buffer nobody reads still needs a place while its kernel runs */
            p->offset[id] = place(live, &n_live, size, last[id] < l ? l : last[id], &high);
        }
    }
    free(last), free(live);
    p->arena_floats = high;
    p->arena = high ? aligned_alloc(ALIGN_FLOATS * sizeof(float), high * sizeof(float)) : NULL;
    return high && !p->arena ? LOOM_ERR_NOMEM : LOOM_OK;
}
