/* Plans: made once per (graph, outputs) — schedule (schedule.c), then
 * memory placement (memory.c) — and run many times (execute.c). */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

bool loom_blas_enabled(void) { return loom_gemm_uses_blas(); }

static bool check_outputs(loom_graph *g, const loom_tensor *outputs, int n)
{
    if (!g || loom_graph_failed(g)) return false;
    if (n < 1 || !outputs) return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "plan: needs at least one output"));
    for (int i = 0; i < n; i++)
        if (!loom_graph_has(g, outputs[i]))
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "plan: output %d is not a tensor of this graph (id %d)",
                                               i, outputs[i].id));
    return true;
}

static const struct {
    const char *name;
    unsigned bit;
} rewrite_names[] = {{"accumulate", LOOM_REWRITE_ACCUMULATE}, {"batch", LOOM_REWRITE_BATCH}};
#define N_REWRITES (int)(sizeof rewrite_names / sizeof *rewrite_names)

/* LOOM_REWRITES: none, all, or names separated by commas. */
loom_status loom_plan_rewrites(const loom_plan_opts *opts, unsigned *rewrites, const char **err)
{
    static _Thread_local char msg[256];
    const char *env = getenv("LOOM_REWRITES");
    unsigned on = LOOM_REWRITE_ALL;
    if (env && strcmp(env, "all") != 0) {
        on = 0;
        for (const char *s = env; strcmp(env, "none") != 0 && *s;) {
            size_t len = strcspn(s, ",");
            int k = 0;
            while (k < N_REWRITES && (strlen(rewrite_names[k].name) != len || strncmp(s, rewrite_names[k].name, len)))
                k++;
            if (k == N_REWRITES) {
                snprintf(msg, sizeof msg, "LOOM_REWRITES='%s': unknown rewrite '%.*s' (none, all, or of: accumulate, batch)",
                         env, (int)len, s);
                if (err) *err = msg;
                return LOOM_ERR_ARG;
            }
            on |= rewrite_names[k].bit;
            s += len + (s[len] == ',');
        }
    }
    *rewrites = on & ~(opts ? opts->no_rewrites : 0u);
    return LOOM_OK;
}

loom_plan *loom_plan_new(loom_graph *g, const loom_tensor *outputs, int n, const loom_plan_opts *opts)
{
    if (!check_outputs(g, outputs, n)) return NULL;
    unsigned rewrites;
    const char *why;
    if (loom_plan_rewrites(opts, &rewrites, &why)) {
        loom_graph_fail(g, LOOM_ERR_ARG, "plan: %s", why);
        return NULL;
    }
    int32_t N = loom_graph_size(g);
    loom_plan *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->g = g;
    p->n_graph = N;
    p->eval = opts && opts->eval;
    p->seed = opts ? opts->seed : 0;
    p->rewrites = rewrites;
    p->into = malloc((size_t)N * sizeof *p->into);
    p->folded_in = calloc((size_t)N, sizeof *p->folded_in);
    p->batch_of = malloc((size_t)N * sizeof *p->batch_of);
    p->in_plan = calloc((size_t)N, sizeof *p->in_plan);
    p->level = malloc((size_t)N * sizeof *p->level);
    p->root = malloc((size_t)N * sizeof *p->root);
    p->offset = malloc((size_t)N * sizeof *p->offset);
    p->bound = calloc((size_t)N, sizeof *p->bound);
    p->exec = malloc((size_t)N * sizeof *p->exec);
    p->outputs = malloc((size_t)n * sizeof *p->outputs);
    if (!p->in_plan || !p->into || !p->folded_in || !p->batch_of || !p->level || !p->root || !p->offset || !p->bound || !p->exec || !p->outputs) goto oom;
    memcpy(p->outputs, outputs, (size_t)n * sizeof *outputs);
    p->n_outputs = n;
    if (loom_plan_schedule(p) || loom_plan_place(p)) goto oom;
    for (int32_t i = 0; i < N; i++)
        if (p->in_plan[i] && loom_op(loom_graph_node(g, loom_at(i))->op)->cost) p->flops += 2 * loom_op_cost(g, loom_at(i));
    return p;
oom:
    loom_graph_fail(g, LOOM_ERR_NOMEM, "plan: out of memory");
    loom_plan_free(p);
    return NULL;
}

void loom_plan_free(loom_plan *p)
{
    if (!p) return;
    free(p->in_plan);
    free(p->into);
    free(p->folded_in);
    free(p->batch_of);
    free(p->batch_start);
    free(p->batch_member);
    free(p->level);
    free(p->root);
    free(p->offset);
    free(p->bound);
    free(p->exec);
    free(p->outputs);
    free(p->level_start);
    free(p->wide);
    free(p->arena);
    free(p->in_pool);
    free(p->node_pool);
    free(p);
}

loom_plan_stats loom_plan_get_stats(const loom_plan *p)
{
    loom_plan_stats s = {p->n_exec, p->n_views, p->n_levels, p->arena_floats * sizeof(float),
                         p->naive_floats * sizeof(float), p->side_by_side, p->n_folded, p->stacked, p->n_batched, p->batched_run, p->rewrites,
                       p->flops};
    return s;
}
