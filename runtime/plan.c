/* Plans: pruning, ready sets, buffer placement, OpenMP execution.
 *
 * Level of a node = 1 + the highest level of its inputs (sources: 0; views
 * take their input's level and run nothing). Nodes of one level only read
 * lower levels, so they may run side by side. A buffer lives from the level
 * that writes it to the last level that reads it (through any views of it);
 * two buffers share memory only when their level ranges do not meet, which
 * stays correct when a level runs in parallel. */
#include "loom/runtime.h"
#include "ops/op.h"

#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#define ALIGN_FLOATS 16 /* 64-byte alignment for every buffer */

struct loom_plan {
    loom_graph *g;
    int32_t n_graph;       /* graph size when planned */
    int32_t n_exec;        /* nodes with kernels, in level order */
    int32_t *exec;         /* their ids */
    int32_t n_levels;
    int32_t *level_start;  /* exec[level_start[l] .. level_start[l+1]) is ready set l+1 */
    int32_t *root;         /* per graph node: node owning its storage (self, or a view's source) */
    int64_t *offset;       /* per root with a kernel: arena offset in floats; -1 otherwise */
    const void **bound;    /* per source node: caller data */
    bool *in_plan;
    loom_tensor *outputs;
    int n_outputs;
    float *arena;
    size_t arena_floats, naive_floats;
    int32_t n_views;
    int32_t side_by_side; /* of the last run */
    bool *wide;            /* per ready set: worth running its nodes side by side */
    const float **in_pool; /* scratch for kernel input pointers */
    const loom_node **node_pool;
    int32_t max_in;
    bool eval;
    uint64_t seed, runs;
    char error[512];
};

bool loom_blas_enabled(void) { return loom_gemm_uses_blas(); }

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

static void plan_fail(loom_graph *g, const char *msg) { loom_graph_fail(g, LOOM_ERR_NOMEM, "plan: %s", msg); }

loom_plan *loom_plan_new(loom_graph *g, const loom_tensor *outputs, int n, const loom_plan_opts *opts)
{
    if (!g || loom_graph_failed(g)) return NULL;
    if (n < 1 || !outputs) {
        loom_graph_fail(g, LOOM_ERR_ARG, "plan: needs at least one output");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!loom_graph_has(g, outputs[i])) {
            loom_graph_fail(g, LOOM_ERR_ARG, "plan: output %d is not a tensor of this graph (id %d)", i, outputs[i].id);
            return NULL;
        }
    int32_t N = loom_graph_size(g);
    loom_plan *p = calloc(1, sizeof *p);
    int32_t *level = malloc((size_t)N * sizeof *level), *last = malloc((size_t)N * sizeof *last);
    int32_t *count = NULL;
    live_buf *live = NULL;
    if (!p || !level || !last) goto oom;
    p->g = g;
    p->n_graph = N;
    p->eval = opts && opts->eval;
    p->seed = opts ? opts->seed : 0;
    p->root = malloc((size_t)N * sizeof *p->root);
    p->offset = malloc((size_t)N * sizeof *p->offset);
    p->bound = calloc((size_t)N, sizeof *p->bound);
    p->in_plan = calloc((size_t)N, sizeof *p->in_plan);
    p->outputs = malloc((size_t)n * sizeof *p->outputs);
    p->exec = malloc((size_t)N * sizeof *p->exec);
    if (!p->root || !p->offset || !p->bound || !p->in_plan || !p->outputs || !p->exec) goto oom;
    memcpy(p->outputs, outputs, (size_t)n * sizeof *outputs);
    p->n_outputs = n;

    /* prune: what the outputs need */
    for (int i = 0; i < n; i++) p->in_plan[loom_index(outputs[i])] = true;
    for (int32_t i = N - 1; i >= 0; i--) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in; j++) p->in_plan[loom_index(loom_node_input(g, loom_at(i), j))] = true;
        if (nd->n_in > p->max_in) p->max_in = nd->n_in;
    }

    /* levels, roots, constants */
    int32_t max_level = 0;
    for (int32_t i = 0; i < N; i++) {
        p->offset[i] = -1;
        p->root[i] = i;
        level[i] = 0;
        last[i] = -1;
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        const loom_op_desc *d = loom_op(nd->op);
        if (d->flags & OPF_STORED) p->bound[i] = loom_graph_stored(g, nd->attr.i[1]);
        if (d->flags & OPF_SOURCE) continue;
        int32_t lv = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t in = loom_index(loom_node_input(g, loom_at(i), j));
            lv = level[in] > lv ? level[in] : lv;
        }
        if (d->flags & OPF_ALIAS) {
            level[i] = lv;
            p->root[i] = p->root[loom_index(loom_node_input(g, loom_at(i), 0))];
            p->n_views++;
        } else {
            level[i] = lv + 1;
        }
        max_level = level[i] > max_level ? level[i] : max_level;
    }
    /* last reader level of each root; outputs live to the end */
    for (int32_t i = 0; i < N; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        if (loom_op(nd->op)->flags & OPF_ALIAS) continue;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t r = p->root[loom_index(loom_node_input(g, loom_at(i), j))];
            last[r] = level[i] > last[r] ? level[i] : last[r];
        }
    }
    for (int i = 0; i < n; i++) last[p->root[loom_index(outputs[i])]] = max_level + 1;

    /* bucket executed nodes by level (counting sort keeps id order inside a level) */
    p->n_levels = max_level;
    count = calloc((size_t)max_level + 2, sizeof *count);
    p->level_start = calloc((size_t)max_level + 2, sizeof *p->level_start);
    if (!count || !p->level_start) goto oom;
    for (int32_t i = 0; i < N; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        if (loom_op(nd->op)->flags & (OPF_SOURCE | OPF_ALIAS)) continue;
        count[level[i]]++;
        p->n_exec++;
    }
    for (int32_t l = 1; l <= max_level; l++) p->level_start[l] = p->level_start[l - 1] + count[l];
    memset(count, 0, ((size_t)max_level + 2) * sizeof *count);
    for (int32_t i = 0; i < N; i++) {
        if (!p->in_plan[i]) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        if (loom_op(nd->op)->flags & (OPF_SOURCE | OPF_ALIAS)) continue;
        int32_t l = level[i];
        p->exec[p->level_start[l - 1] + count[l]++] = i;
    }

    /* Side by side only when a level is worth a parallel region and no node
     * in it is big enough to use every thread by itself. */
    p->wide = calloc((size_t)max_level + 1, sizeof *p->wide);
    if (!p->wide) goto oom;
    for (int32_t l = 0; l < max_level; l++) {
        int32_t b = p->level_start[l], e = p->level_start[l + 1];
        bool wide = e - b > 1;
        int64_t total = 0;
        for (int32_t k = b; wide && k < e; k++) {
            int64_t w = loom_op_cost(g, loom_at(p->exec[k]));
            total += w;
            wide = w <= LOOM_PAR_MIN;
        }
        p->wide[l] = wide && total >= LOOM_PAR_MIN;
    }

    /* place buffers, level by level */
    live = malloc(((size_t)p->n_exec + 1) * sizeof *live);
    if (!live) goto oom;
    int n_live = 0;
    size_t high = 0;
    for (int32_t l = 1; l <= max_level; l++) {
        int k = 0;
        for (int m = 0; m < n_live; m++)
            if (live[m].until >= l) live[k++] = live[m];
        n_live = k;
        for (int32_t e = p->level_start[l - 1]; e < p->level_start[l]; e++) {
            int32_t id = p->exec[e];
            int64_t size = (int64_t)round_up(loom_tensor_numel(g, loom_at(id)));
            p->naive_floats += (size_t)size;
            /* a buffer nobody reads still needs a place while its kernel runs */
            p->offset[id] = place(live, &n_live, size, last[id] < l ? l : last[id], &high);
        }
    }
    p->arena_floats = high;
    p->arena = high ? aligned_alloc(ALIGN_FLOATS * sizeof(float), high * sizeof(float)) : NULL;
    p->in_pool = malloc(((size_t)p->max_in + 1) * (size_t)(omp_get_max_threads() + 1) * sizeof *p->in_pool);
    p->node_pool = malloc(((size_t)p->max_in + 1) * (size_t)(omp_get_max_threads() + 1) * sizeof *p->node_pool);
    if ((high && !p->arena) || !p->in_pool || !p->node_pool) goto oom;
    free(level);
    free(last);
    free(count);
    free(live);
    return p;
oom:
    plan_fail(g, "out of memory");
    free(level);
    free(last);
    free(count);
    free(live);
    loom_plan_free(p);
    return NULL;
}

void loom_plan_free(loom_plan *p)
{
    if (!p) return;
    free(p->exec);
    free(p->level_start);
    free(p->wide);
    free(p->root);
    free(p->offset);
    free(p->bound);
    free(p->in_plan);
    free(p->outputs);
    free(p->arena);
    free(p->in_pool);
    free(p->node_pool);
    free(p);
}

const char *loom_plan_error(const loom_plan *p) { return p ? p->error : "no plan"; }

static loom_status plan_err(loom_plan *p, loom_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static loom_status plan_err(loom_plan *p, loom_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    return s;
}

loom_status loom_bind(loom_plan *p, loom_tensor t, const void *data)
{
    if (!p) return LOOM_ERR_ARG;
    if (loom_index(t) < 0 || loom_index(t) >= p->n_graph)
        return plan_err(p, LOOM_ERR_ARG, "bind: tensor id %d is not in the planned graph", t.id);
    const loom_node *nd = loom_graph_node(p->g, t);
    if (!(loom_op(nd->op)->flags & OPF_BOUND))
        return plan_err(p, LOOM_ERR_ARG, "bind: %s is a %s, not an input or parameter", TSTR(p->g, t),
                        loom_op_name(nd->op));
    if (!data) return plan_err(p, LOOM_ERR_ARG, "bind: NULL data for %s", TSTR(p->g, t));
    p->bound[loom_index(t)] = data;
    return LOOM_OK;
}

loom_status loom_bind_all(loom_plan *p, const loom_binding *b, int n)
{
    for (int i = 0; i < n; i++) {
        loom_status s = loom_bind(p, b[i].t, b[i].data);
        if (s) return s;
    }
    return LOOM_OK;
}

void loom_plan_set_seed(loom_plan *p, uint64_t seed)
{
    p->seed = seed;
    p->runs = 0;
}

void loom_plan_set_eval(loom_plan *p, bool eval) { p->eval = eval; }

static float *storage(const loom_plan *p, int32_t id)
{
    int32_t r = p->root[id];
    return p->offset[r] >= 0 ? p->arena + p->offset[r] : (float *)(uintptr_t)p->bound[r];
}

static loom_status exec_node(loom_plan *p, int32_t id, bool parallel, int slot, char *err, size_t err_len)
{
    const loom_node *nd = loom_graph_node(p->g, loom_at(id));
    const float **in = p->in_pool + (size_t)slot * ((size_t)p->max_in + 1);
    const loom_node **in_node = p->node_pool + (size_t)slot * ((size_t)p->max_in + 1);
    for (int j = 0; j < nd->n_in; j++) {
        loom_tensor x = loom_node_input(p->g, loom_at(id), j);
        in[j] = storage(p, loom_index(x));
        in_node[j] = loom_graph_node(p->g, x);
    }
    loom_kargs a = {p->g, nd, storage(p, id), in, in_node, p->seed * 0x2545F4914F6CDD1Dull + p->runs,
                    !p->eval, parallel, err, err_len};
    return loom_op(nd->op)->forward(&a);
}

loom_status loom_run(loom_plan *p)
{
    if (!p) return LOOM_ERR_ARG;
    p->error[0] = 0;
    if (loom_graph_size(p->g) < p->n_graph)
        return plan_err(p, LOOM_ERR_STATE, "run: the graph changed under the plan");
    for (int32_t i = 0; i < p->n_graph; i++) {
        if (!p->in_plan[i] || p->bound[i]) continue;
        const loom_node *nd = loom_graph_node(p->g, loom_at(i));
        if (loom_op(nd->op)->flags & OPF_BOUND)
            return plan_err(p, LOOM_ERR_STATE, "run: %s %s is not bound", loom_op(nd->op)->role == LOOM_ROLE_INPUT ? "input" : "parameter",
                            TSTR(p->g, loom_at(i)));
    }
    loom_status st = LOOM_OK;
    int threads = omp_get_max_threads();
    p->side_by_side = 0;
    for (int32_t l = 0; l < p->n_levels && !st; l++) {
        int32_t b = p->level_start[l], e = p->level_start[l + 1];
        if (!p->wide[l] || threads < 2) {
            for (int32_t k = b; k < e && !st; k++) st = exec_node(p, p->exec[k], true, 0, p->error, sizeof p->error);
            continue;
        }
        p->side_by_side++;
        #pragma omp parallel for schedule(dynamic)
        for (int32_t k = b; k < e; k++) {
            char err[512] = "";
            loom_status s = exec_node(p, p->exec[k], false, omp_get_thread_num() + 1, err, sizeof err);
            if (s) {
                #pragma omp critical(loom_run_error)
                if (!st) {
                    st = s;
                    memcpy(p->error, err, sizeof err);
                }
            }
        }
    }
    p->runs++;
    return st;
}

const float *loom_plan_output(const loom_plan *p, loom_tensor t)
{
    if (!p) return NULL;
    for (int i = 0; i < p->n_outputs; i++)
        if (p->outputs[i].id == t.id) return storage(p, loom_index(t));
    return NULL;
}

loom_status loom_plan_read(const loom_plan *p, loom_tensor t, float *dst, size_t n)
{
    const float *v = loom_plan_output(p, t);
    if (!v) return LOOM_ERR_ARG;
    if ((int64_t)n < loom_tensor_numel(p->g, t)) return LOOM_ERR_ARG;
    memcpy(dst, v, (size_t)loom_tensor_numel(p->g, t) * sizeof(float));
    return LOOM_OK;
}

loom_plan_stats loom_plan_get_stats(const loom_plan *p)
{
    loom_plan_stats s = {p->n_exec, p->n_views, p->n_levels, p->arena_floats * sizeof(float),
                         p->naive_floats * sizeof(float), p->side_by_side};
    return s;
}
