/* Generation: a one-step model sharing the trained weights by name, over
 * as many rows as the search keeps hypotheses; the prefix warms the state
 * up, then loom_search — the one decoder, the translations' too — chooses
 * the tokens: greedily, by sampling (temperature, top-k, top-p) or by beam
 * search. A language model has no end token: every hypothesis runs to the
 * length asked for. */
#include "loom/generate.h"
#include "loom/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loom_generator {
    loom_lm_opts model;
    const loom_store *weights;
    /* the one-step model over `rows` rows, built for the widest beam asked for so far */
    loom_graph *g;
    loom_lm lm;
    loom_tensor log_probs; /* log softmax of the logits: what the search reads */
    loom_plan *p;
    int rows, V, S;
    int64_t sn;                          /* elements of one row's state (layers · hidden) */
    float *state[LOOM_CELL_MAX_STATES];  /* bound as the initial states: layer-major, rows × hidden */
    float *tmp;                          /* a state reordered */
    int32_t *tok, *tgt;
    loom_error *err;
};

static void drop_model(loom_generator *g)
{
    for (int s = 0; s < LOOM_CELL_MAX_STATES; s++) free(g->state[s]), g->state[s] = NULL;
    free(g->tmp), free(g->tok), free(g->tgt);
    g->tmp = NULL, g->tok = g->tgt = NULL;
    loom_plan_free(g->p), g->p = NULL;
    loom_graph_free(g->g), g->g = NULL;
    g->rows = 0;
}

void loom_generator_free(loom_generator *g)
{
    if (!g) return;
    drop_model(g);
    free(g);
}

/* The one-step model over `rows` rows. */
static bool build(loom_generator *g, int rows, loom_error *err)
{
    drop_model(g);
    loom_lm_opts o = g->model;
    o.steps = 1, o.batch = rows, o.dropout = 0, o.trunc = LOOM_TRUNC_NONE, o.truncate = 0;
    if (!(g->g = loom_graph_new())) goto nomem;
    loom_lm_build(g->g, &g->lm, &o);
    g->rows = rows, g->V = o.vocab, g->S = o.cell ? o.cell->n_states : 0;
    int L = o.layers ? o.layers : 1;
    g->sn = (int64_t)L * o.hidden;
    g->log_probs = loom_log_softmax(g->g, g->lm.logits);
    loom_tensor outs[1 + LOOM_CELL_MAX_STATES] = {g->log_probs};
    for (int s = 0; s < g->S; s++) outs[1 + s] = g->lm.out.final[s];
    g->p = loom_plan_new(g->g, outs, 1 + g->S, &(loom_plan_opts){.eval = true});
    if (!g->p) return loom_error_set(err, loom_graph_status(g->g), "generate: %s", loom_graph_error(g->g)), false;
    loom_error why = {0};
    if (loom_store_bind_shared(g->weights, g->g, g->p, &why)) return loom_error_set(err, why.status, "generate: %s", why.msg), false;
    for (int s = 0; s < g->S; s++) {
        if (!(g->state[s] = calloc((size_t)(g->sn * rows), sizeof(float)))) goto nomem;
        loom_bind(g->p, g->lm.init[s], g->state[s]);
    }
    if (!(g->tmp = malloc((size_t)(g->sn * rows) * sizeof *g->tmp)) || !(g->tok = calloc((size_t)rows, sizeof *g->tok)) ||
        !(g->tgt = calloc((size_t)rows, sizeof *g->tgt)))
        goto nomem;
    loom_bind(g->p, g->lm.tokens, g->tok);
    loom_bind(g->p, g->lm.targets, g->tgt);
    return true;
nomem:
    loom_error_set(err, LOOM_ERR_NOMEM, "generate: out of memory");
    return false;
}

loom_generator *loom_generator_new(const loom_lm_opts *model, const loom_store *weights, loom_error *err)
{
    loom_generator *g = calloc(1, sizeof *g);
    if (!g) return loom_error_set(err, LOOM_ERR_NOMEM, "generate: out of memory"), NULL;
    g->model = *model, g->weights = weights;
    if (!build(g, 1, err)) {
        loom_generator_free(g);
        return NULL;
    }
    return g;
}

/* One step of every row: the new states replace the old ones. */
static bool run(loom_generator *g)
{
    loom_status st = loom_run(g->p);
    if (st) return loom_error_set(g->err, st, "generate: %s", loom_plan_error(g->p)), false;
    for (int s = 0; s < g->S; s++)
        memcpy(g->state[s], loom_plan_output(g->p, g->lm.out.final[s]), (size_t)(g->sn * g->rows) * sizeof(float));
    return true;
}

/* The search's step: rows take their parents' states (layer by layer) and
 * read their tokens; step 0 is the prefix's last step, already run. */
static loom_status step(void *ctx, int t, const int32_t *tokens, const int32_t *parent, float *log_probs)
{
    loom_generator *g = ctx;
    int R = g->rows, H = g->model.hidden, L = (int)(g->sn / H);
    if (t > 0) {
        for (int s = 0; s < g->S; s++) {
            for (int l = 0; l < L; l++)
                for (int r = 0; r < R; r++)
                    memcpy(g->tmp + ((size_t)l * R + r) * H, g->state[s] + ((size_t)l * R + parent[r]) * H, (size_t)H * sizeof(float));
            memcpy(g->state[s], g->tmp, (size_t)(g->sn * R) * sizeof(float));
        }
        for (int r = 0; r < R; r++) g->tok[r] = tokens[r] >= 0 && tokens[r] < g->V ? tokens[r] : 0; /* idle rows read 0 */
        if (!run(g)) return LOOM_ERR_STATE;
    }
    memcpy(log_probs, loom_plan_output(g->p, g->log_probs), (size_t)R * (size_t)g->V * sizeof *log_probs);
    return LOOM_OK;
}

int64_t loom_generate(loom_generator *g, const int32_t *prefix, int64_t n, int64_t length, const loom_search_opts *o,
                      int32_t *out, loom_error *err)
{
    loom_search_opts so = o ? *o : (loom_search_opts){0};
    loom_error local = {0};
    err = err ? err : &local;
    if (n < 1 || length < 0 || length > (1 << 30))
        return loom_error_set(err, LOOM_ERR_ARG, "generate: needs a prefix of at least one token and a length in [0, 2^30]"), -1;
    if (so.beam < 1) so.beam = 1;
    if (so.beam > 1024) return loom_error_set(err, LOOM_ERR_ARG, "generate: a beam of %d is wider than 1024", so.beam), -1;
    if (length == 0) return 0;
    if (so.beam != g->rows && !build(g, so.beam, err)) return -1;
    g->err = err;
    for (int s = 0; s < g->S; s++) memset(g->state[s], 0, (size_t)(g->sn * g->rows) * sizeof(float));
    for (int64_t i = 0; i < n; i++) { /* every row reads the prefix */
        for (int r = 0; r < g->rows; r++) g->tok[r] = prefix[i];
        if (!run(g)) return -1;
    }
    so.max_len = (int)length;
    int32_t len;
    /* no end token: −1 is never chosen */
    loom_status st = loom_search(1, g->V, prefix[n - 1], -1, &so, step, g, out, &len, NULL, NULL);
    if (st) loom_error_set(err, st, "generate: %s", st == LOOM_ERR_NOMEM ? "out of memory" : "the search failed");
    return st ? -1 : len;
}
