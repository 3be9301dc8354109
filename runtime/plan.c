/* Plans: made once per (graph, outputs) — schedule (schedule.c), then
 * memory placement (memory.c) — and run many times (execute.c). */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

bool loom_blas_enabled(void) { return loom_gemm_uses_blas(); }
bool loom_dnnl_enabled(void) { return loom_gemm_uses_dnnl(); }

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

/* What BPTT must keep: the forward values in the arena that backward nodes
 * read (through views), each counted once; with recomputation, those the
 * recomputed copies read (the checkpoints) and backward still reads. */
static void count_kept(loom_plan *p)
{
    bool *kept = calloc((size_t)p->n_graph + 1, sizeof *kept);
    if (!kept) return;
    for (int32_t i = 0; i < p->n_graph; i++) {
        const loom_node *nd = loom_walk_node(p->walk, i);
        if (!p->in_plan[i] || (nd->tags.role != LOOM_ROLE_BACKWARD && nd->tags.role != LOOM_ROLE_RECOMPUTE)) continue;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t r = p->root[loom_walk_in(p->walk, i, j)];
            if (kept[r] || p->offset[r] < 0 || loom_walk_node(p->walk, r)->tags.role != LOOM_ROLE_FORWARD) continue;
            kept[r] = true;
            p->kept_floats += (size_t)loom_tensor_numel(p->g, loom_at(r));
        }
    }
    free(kept);
}

loom_plan *loom_plan_new(loom_graph *g, const loom_tensor *outputs, int n, const loom_plan_opts *opts)
{
    if (!check_outputs(g, outputs, n)) return NULL;
    unsigned rewrites;
    loom_error why = {0};
    if (loom_plan_rewrites(opts, &rewrites, &why)) {
        loom_graph_fail(g, LOOM_ERR_ARG, "plan: %s", why.msg);
        return NULL;
    }
    loom_precision prec = opts ? opts->precision : LOOM_PRECISION_F32;
    if (prec != LOOM_PRECISION_F32 && prec != LOOM_PRECISION_BF16) {
        loom_graph_fail(g, LOOM_ERR_ARG, "plan: unknown precision %d", (int)prec);
        return NULL;
    }
    if (prec == LOOM_PRECISION_BF16 && !loom_bf16_available()) {
        const char *cap = getenv("DNNL_MAX_CPU_ISA") ? getenv("DNNL_MAX_CPU_ISA") : getenv("ONEDNN_MAX_CPU_ISA");
        if (!loom_dnnl_enabled())
            loom_graph_fail(g, LOOM_ERR_ARG, "plan: bf16 products need loom built with oneDNN (libdnnl-dev); this build has none");
        else if (cap)
            loom_graph_fail(g, LOOM_ERR_ARG, "plan: bf16 products need AVX512_BF16 or AMX, and the environment's "
                            "DNNL_MAX_CPU_ISA=%s keeps oneDNN from them", cap);
        else
            loom_graph_fail(g, LOOM_ERR_ARG, "plan: bf16 products need a CPU with AVX512_BF16 or AMX; this one has neither");
        return NULL;
    }
    int32_t N = loom_graph_size(g);
    loom_plan *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->g = g;
    p->walk = loom_graph_walk(g);
    p->n_graph = N;
    p->eval = opts && opts->eval;
    p->seed = opts ? opts->seed : 0;
    p->rw.which = rewrites;
    /* oneDNN's products: every one in bf16; in f32, those a packed weight speeds up (without
     * oneDNN, or should its engine fail, CBLAS runs them) */
    p->mm = loom_dnnl_enabled() ? loom_mm_new(prec == LOOM_PRECISION_BF16) : NULL;
    if (prec == LOOM_PRECISION_BF16 && !p->mm) goto oom;
    const char *team = getenv("LOOM_TEAM"); /* auto (default), team, alone */
    p->team_use.use = team && !strcmp(team, "team") ? LOOM_TEAM_TEAM : team && !strcmp(team, "alone") ? LOOM_TEAM_ALONE : LOOM_TEAM_AUTO;
    p->in_plan = calloc((size_t)N, sizeof *p->in_plan);
    p->level = malloc((size_t)N * sizeof *p->level);
    p->root = malloc((size_t)N * sizeof *p->root);
    p->offset = malloc((size_t)N * sizeof *p->offset);
    p->bound = calloc((size_t)N, sizeof *p->bound);
    p->exec = malloc((size_t)N * sizeof *p->exec);
    p->outputs = malloc((size_t)n * sizeof *p->outputs);
    if (!p->in_plan || !p->level || !p->root || !p->offset || !p->bound || !p->exec || !p->outputs) goto oom;
    memcpy(p->outputs, outputs, (size_t)n * sizeof *outputs);
    p->n_outputs = n;
    if (loom_plan_schedule(p) || loom_plan_place(p)) goto oom;
    for (int32_t i = 0; i < N; i++)
        if (p->in_plan[i] && (loom_op(loom_walk_node(p->walk, i)->op)->flags & OPF_MATMUL)) p->flops += 2 * loom_op_cost(g, loom_at(i));
    count_kept(p);
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
    loom_rewrites_free(&p->rw);
    free(p->level);
    free(p->root);
    free(p->offset);
    free(p->bound);
    free(p->exec);
    free(p->outputs);
    free(p->level_start);
    free(p->wide);
    free(p->piece_sum), free(p->piece_lo), free(p->piece_hi), free(p->piece_level), free(p->piece_first), free(p->piece_of), free(p->has_pieces);
    free(p->split);
    free(p->team.part);
    free(p->prof_s), free(p->prof_n);
    free(p->watch_pos), free(p->watch_idx);
    loom_mm_free(p->mm);
    free(p->arena);
    free(p->in_pool);
    free(p->node_pool);
    free(p);
}

loom_plan_stats loom_plan_get_stats(const loom_plan *p)
{
    loom_plan_stats s = {p->n_exec - p->n_pieces, p->n_views, p->n_levels, p->arena_floats * sizeof(float),
                         p->naive_floats * sizeof(float), p->side_by_side, p->rw.n_folded, p->stacked, p->rw.n_batched, p->batched_run,
                       p->n_in_place, p->rw.n_fused, p->rw.n_temps, p->n_pieces, p->rw.which, p->flops, p->kept_floats * sizeof(float), loom_mm_packed(p->mm),
                         loom_mm_bytes(p->mm)};
    return s;
}

int32_t loom_plan_ranks(const loom_plan *p, int32_t *rank, int32_t n)
{
    if (!p || !rank || n < p->n_graph) return -1;
    for (int32_t i = 0; i < n; i++) rank[i] = -1;
    int32_t *piece_at = malloc(((size_t)p->n_pieces + 1) * sizeof *piece_at);
    if (!piece_at) return -1;
    for (int32_t k = 0; k < p->n_exec; k++) {
        int32_t id = p->exec[k];
        if (id >= p->n_graph) { /* a piece of a sum's terms */
            piece_at[id - p->n_graph] = k;
            continue;
        }
        int32_t m;
        const int32_t *members = loom_rewrites_members(&p->rw, &id, &m);
        for (int32_t j = 0; j < m; j++) rank[members[j]] = k;
    }
    for (int32_t i = 0; i < p->n_graph; i++) /* terms run by a piece, or by their sum's kernel */
        if (rank[i] < 0 && p->in_plan[i] && p->piece_of[i] >= 0) rank[i] = piece_at[p->piece_of[i]];
    for (int32_t i = 0; i < p->n_graph; i++)
        if (rank[i] < 0 && p->in_plan[i] && p->rw.into[i] >= 0) rank[i] = rank[p->rw.into[i]];
    for (int32_t i = 0; i < p->n_graph; i++) /* a view: when its source is */
        if (rank[i] < 0 && p->in_plan[i] && p->root[i] != i && p->root[i] >= 0) rank[i] = rank[p->root[i]];
    free(piece_at);
    return p->n_exec;
}

loom_status loom_plan_watch(loom_plan *p, const loom_tensor *ts, int n, loom_ready_fn ready, void *ctx, int *order)
{
    if (!p) return LOOM_ERR_ARG;
    loom_error_clear(&p->err);
    free(p->watch_pos), free(p->watch_idx);
    p->watch_pos = p->watch_idx = NULL, p->n_watch = 0, p->watch_fn = NULL;
    if (n <= 0) return LOOM_OK;
    if (!ts || !ready) return plan_err(p, LOOM_ERR_ARG, "watch: no tensors or no function");
    for (int i = 0; i < n; i++) {
        bool out = false;
        for (int j = 0; j < p->n_outputs && !out; j++) out = p->outputs[j].id == ts[i].id;
        if (!out) return plan_err(p, LOOM_ERR_ARG, "watch: tensor id %d is not an output of the plan", ts[i].id);
    }
    int32_t *rank = malloc((size_t)p->n_graph * sizeof *rank);
    p->watch_pos = malloc((size_t)n * sizeof *p->watch_pos), p->watch_idx = malloc((size_t)n * sizeof *p->watch_idx);
    if (!rank || !p->watch_pos || !p->watch_idx || loom_plan_ranks(p, rank, p->n_graph) < 0) {
        free(rank), free(p->watch_pos), free(p->watch_idx);
        p->watch_pos = p->watch_idx = NULL;
        return plan_err(p, LOOM_ERR_NOMEM, "watch: out of memory");
    }
    /* the last call that reads each buffer: an output is the caller's once
     * it is computed and nothing later in the run reads it (a gradient
     * another gradient's copy is made from: the caller may write it) */
    int32_t *last_read = malloc((size_t)p->n_graph * sizeof *last_read);
    if (!last_read) {
        free(rank), free(p->watch_pos), free(p->watch_idx);
        p->watch_pos = p->watch_idx = NULL;
        return plan_err(p, LOOM_ERR_NOMEM, "watch: out of memory");
    }
    for (int32_t u = 0; u < p->n_graph; u++) last_read[u] = -1;
    for (int32_t u = 0; u < p->n_graph; u++) {
        if (rank[u] < 0) continue;
        const loom_node *nd = loom_graph_node(p->g, loom_at(u)); /* (the walk's arrays are planning's) */
        for (int j = 0; j < nd->n_in; j++) {
            int32_t r = p->root[loom_index(loom_node_input(p->g, loom_at(u), j))];
            if (r >= 0 && last_read[r] < rank[u]) last_read[r] = rank[u];
        }
    }
    for (int i = 0; i < n; i++) { /* by position, then by index: an insertion sort (a handful of outputs) */
        int32_t id = loom_index(ts[i]), r = p->root[id], pos = rank[id], k = i;
        if (r >= 0 && last_read[r] > pos) pos = last_read[r];
        for (; k > 0 && p->watch_pos[k - 1] > pos; k--) p->watch_pos[k] = p->watch_pos[k - 1], p->watch_idx[k] = p->watch_idx[k - 1];
        p->watch_pos[k] = pos, p->watch_idx[k] = i;
    }
    free(rank), free(last_read);
    if (order)
        for (int i = 0; i < n; i++) order[i] = p->watch_idx[i];
    p->n_watch = n, p->watch_fn = ready, p->watch_ctx = ctx;
    return LOOM_OK;
}
