/* Generation: a one-step model sharing the trained weights by name; the
 * prefix warms its state up, then tokens are chosen greedily, sampled
 * (temperature, top-k, top-p) or searched for with a beam. */
#define _GNU_SOURCE /* qsort_r */
#include "loom/generate.h"
#include "loom/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loom_generator {
    loom_graph *g;
    loom_lm lm;
    loom_plan *p;
    int V, S;
    int64_t sn;                          /* elements of one state (layers · hidden) */
    float *state[LOOM_CELL_MAX_STATES];  /* bound as the initial states */
    int32_t tok, tgt;
};

void loom_generator_free(loom_generator *g)
{
    if (!g) return;
    for (int s = 0; s < LOOM_CELL_MAX_STATES; s++) free(g->state[s]);
    loom_plan_free(g->p);
    loom_graph_free(g->g);
    free(g);
}

loom_generator *loom_generator_new(const loom_lm_opts *model, const loom_store *weights, char *err, size_t err_len)
{
    loom_generator *g = calloc(1, sizeof *g);
    if (!g || !(g->g = loom_graph_new())) goto nomem;
    loom_lm_opts o = *model;
    o.steps = 1, o.batch = 1;
    loom_lm_build(g->g, &g->lm, &o);
    g->V = o.vocab, g->S = o.cell ? o.cell->n_states : 0;
    g->sn = (int64_t)(o.layers ? o.layers : 1) * o.hidden;
    loom_tensor outs[1 + LOOM_CELL_MAX_STATES] = {g->lm.logits};
    for (int s = 0; s < g->S; s++) outs[1 + s] = g->lm.out.final[s];
    g->p = loom_plan_new(g->g, outs, 1 + g->S, &(loom_plan_opts){.eval = true});
    if (!g->p) {
        snprintf(err, err_len, "generate: %s", loom_graph_error(g->g));
        loom_generator_free(g);
        return NULL;
    }
    char why[400];
    if (loom_store_bind_shared(weights, g->g, g->p, why, sizeof why)) {
        snprintf(err, err_len, "generate: %s", why);
        loom_generator_free(g);
        return NULL;
    }
    for (int s = 0; s < g->S; s++) {
        if (!(g->state[s] = calloc((size_t)g->sn, sizeof(float)))) goto nomem;
        loom_bind(g->p, g->lm.init[s], g->state[s]);
    }
    loom_bind(g->p, g->lm.tokens, &g->tok);
    loom_bind(g->p, g->lm.targets, &g->tgt);
    return g;
nomem:
    snprintf(err, err_len, "generate: out of memory");
    loom_generator_free(g);
    return NULL;
}

/* One step: feed tok from the states in g->state; the new states replace them. */
static bool step(loom_generator *g, int32_t tok, char *err, size_t err_len)
{
    g->tok = tok;
    if (loom_run(g->p)) {
        snprintf(err, err_len, "generate: %s", loom_plan_error(g->p));
        return false;
    }
    for (int s = 0; s < g->S; s++) memcpy(g->state[s], loom_plan_output(g->p, g->lm.out.final[s]), (size_t)g->sn * sizeof(float));
    return true;
}

static int by_prob(const void *a, const void *b, void *probs)
{
    const double *p = probs;
    double x = p[*(const int *)a], y = p[*(const int *)b];
    return x > y ? -1 : x < y ? 1 : (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static double uniform(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* softmax(logits / T), then keep the top k and the nucleus of mass p. */
static int32_t choose(const float *logits, int V, const loom_sample_opts *o, uint64_t *rng, double *probs, int *order)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (o->temperature <= 0) return best;
    double total = 0;
    for (int v = 0; v < V; v++) total += probs[v] = exp((logits[v] - logits[best]) / o->temperature);
    for (int v = 0; v < V; v++) order[v] = v, probs[v] /= total;
    qsort_r(order, (size_t)V, sizeof *order, by_prob, probs);
    int keep = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    if (o->top_p > 0 && o->top_p < 1) {
        double mass = 0;
        for (int k = 0; k < keep; k++)
            if ((mass += probs[order[k]]) >= o->top_p) {
                keep = k + 1;
                break;
            }
    }
    double kept = 0;
    for (int k = 0; k < keep; k++) kept += probs[order[k]];
    double u = uniform(rng) * kept;
    for (int k = 0; k < keep; k++)
        if ((u -= probs[order[k]]) <= 0) return order[k];
    return order[keep - 1];
}

typedef struct {
    double logp;
    int32_t *toks;
    float *state[LOOM_CELL_MAX_STATES];
    float *logits;
} hypothesis;

static int by_score(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] > y[0] ? -1 : x[0] < y[0] ? 1 : 0;
}

static void free_hyps(hypothesis *h, int n, int S)
{
    for (int i = 0; h && i < n; i++) {
        free(h[i].toks), free(h[i].logits);
        for (int s = 0; s < S; s++) free(h[i].state[s]);
    }
    free(h);
}

static hypothesis *new_hyps(int n, int64_t length, int V, int S, int64_t sn)
{
    hypothesis *h = calloc((size_t)n, sizeof *h);
    bool ok = h != NULL;
    for (int i = 0; ok && i < n; i++) {
        ok = (h[i].toks = calloc((size_t)length + 1, sizeof *h[i].toks)) && (h[i].logits = calloc((size_t)V, sizeof(float)));
        for (int s = 0; ok && s < S; s++) ok = (h[i].state[s] = malloc((size_t)sn * sizeof(float))) != NULL;
    }
    if (!ok) free_hyps(h, n, S), h = NULL;
    return h;
}

/* log softmax(l)[v] */
static double log_prob(const float *l, int V, int v)
{
    float mx = l[0];
    for (int u = 1; u < V; u++) mx = l[u] > mx ? l[u] : mx;
    double z = 0;
    for (int u = 0; u < V; u++) z += exp(l[u] - mx);
    return (l[v] - mx) - log(z);
}

/* Beam search: W hypotheses, each extended by every token; the W best by
 * log-probability (divided by length^α with length normalisation) go on. */
static int64_t beam_search(loom_generator *g, int64_t length, const loom_sample_opts *o, int32_t *out, char *err,
                           size_t err_len)
{
    int W = o->beam, V = g->V, S = g->S;
    hypothesis *cur = new_hyps(W, length, V, S, g->sn), *nxt = new_hyps(W, length, V, S, g->sn);
    double *cand = malloc((size_t)W * V * 4 * sizeof *cand); /* (score, log p, hypothesis, token) */
    bool ok = cur && nxt && cand;
    if (!ok) snprintf(err, err_len, "generate: out of memory");
    int live = 1;
    if (ok) { /* one hypothesis: the state and logits after the prefix */
        for (int s = 0; s < S; s++) memcpy(cur[0].state[s], g->state[s], (size_t)g->sn * sizeof(float));
        memcpy(cur[0].logits, loom_plan_output(g->p, g->lm.logits), (size_t)V * sizeof(float));
    }
    for (int64_t t = 0; ok && t < length; t++) {
        int nc = 0;
        for (int i = 0; i < live; i++)
            for (int v = 0; v < V; v++, nc++) {
                double lp = cur[i].logp + log_prob(cur[i].logits, V, v);
                cand[4 * nc] = o->length_norm > 0 ? lp / pow((double)(t + 1), o->length_norm) : lp;
                cand[4 * nc + 1] = lp, cand[4 * nc + 2] = i, cand[4 * nc + 3] = v;
            }
        qsort(cand, (size_t)nc, 4 * sizeof *cand, by_score);
        int kept = nc < W ? nc : W;
        for (int k = 0; ok && k < kept; k++) {
            const hypothesis *from = &cur[(int)cand[4 * k + 2]];
            int32_t v = (int32_t)cand[4 * k + 3];
            memcpy(nxt[k].toks, from->toks, (size_t)t * sizeof *from->toks);
            nxt[k].toks[t] = v;
            nxt[k].logp = cand[4 * k + 1];
            if (t + 1 == length) continue;
            for (int s = 0; s < S; s++) memcpy(g->state[s], from->state[s], (size_t)g->sn * sizeof(float));
            ok = step(g, v, err, err_len);
            for (int s = 0; ok && s < S; s++) memcpy(nxt[k].state[s], g->state[s], (size_t)g->sn * sizeof(float));
            if (ok) memcpy(nxt[k].logits, loom_plan_output(g->p, g->lm.logits), (size_t)V * sizeof(float));
        }
        hypothesis *tmp = cur;
        cur = nxt, nxt = tmp, live = kept;
    }
    if (ok) memcpy(out, cur[0].toks, (size_t)length * sizeof *out);
    free_hyps(cur, W, S), free_hyps(nxt, W, S), free(cand);
    return ok ? length : -1;
}

int64_t loom_generate(loom_generator *g, const int32_t *prefix, int64_t n, int64_t length, const loom_sample_opts *o,
                      int32_t *out, char *err, size_t err_len)
{
    static const loom_sample_opts greedy = {0};
    if (!o) o = &greedy;
    if (n < 1 || length < 0) {
        snprintf(err, err_len, "generate: needs a prefix of at least one token");
        return -1;
    }
    for (int s = 0; s < g->S; s++) memset(g->state[s], 0, (size_t)g->sn * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        if (!step(g, prefix[i], err, err_len)) return -1;
    if (o->beam > 1) return beam_search(g, length, o, out, err, err_len);
    double *probs = malloc((size_t)g->V * sizeof *probs);
    int *order = malloc((size_t)g->V * sizeof *order);
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    int64_t k = 0;
    for (; probs && order && k < length; k++) {
        out[k] = choose(loom_plan_output(g->p, g->lm.logits), g->V, o, &rng, probs, order);
        if (k + 1 < length && !step(g, out[k], err, err_len)) {
            k = -1;
            break;
        }
    }
    if (!probs || !order) snprintf(err, err_len, "generate: out of memory"), k = -1;
    free(probs), free(order);
    return k;
}
