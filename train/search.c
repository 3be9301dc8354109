/* Decoding a sequence token by token (loom/seq2seq.h: loom_search):
 * greedy, sampling and beam search over n sentences at once. The search
 * only sees log-probabilities; the decoder behind the step function keeps
 * its states per row and reorders them by `parent`. */
#include "loom/search.h"

#include "loom/random.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double score; /* log p */
    int32_t row, token;
} cand;

typedef struct {
    double norm;  /* the score that ranks finished hypotheses */
    double score;
    int t, row;   /* the step that ended it and the row that made that step */
    int len;      /* tokens, <eos> included */
    bool eos;     /* ended by <eos> (else: out of steps) */
    int node;     /* its last node in the tree (sentence 0), or −1 */
} finished;

typedef struct {
    double p;
    int v;
} weighted;

/* Likeliest first; ties: the lower token first. */
static int by_weight(const void *a, const void *b)
{
    const weighted *x = a, *y = b;
    return x->p > y->p ? -1 : x->p < y->p ? 1 : (x->v > y->v) - (x->v < y->v);
}

typedef struct {
    const loom_search_opts *o;
    int n, K, V, R;
    int32_t eos;
    double *live;        /* R: the log p of the hypothesis in each row (−∞: none) */
    int32_t *from, *tok; /* max_len × R: row r after step t came from row from[t][r] and emitted tok[t][r] */
    finished *done;      /* n × K: each sentence's best finished hypotheses, best first */
    int *n_done;
    bool *over;          /* the sentence needs no more steps */
    cand *top;           /* 2K candidates */
    double *p;           /* V: sampling's weights */
    weighted *order;     /* V: sampling's tokens, likeliest first */
    uint64_t rng;
    loom_search_tree *tree;
    int *node_of;        /* K: the tree node each of sentence 0's rows holds (−1: <bos>) */
    float *cov, *cov_next; /* coverage: R × S, the attention each row's hypothesis has paid to each source position */
    const float *attn;     /* coverage: the step's attention, R × S */
} search;

/* The coverage penalty of the hypothesis row r holds, with the attention of
 * the step just run when `with_step`: β Σ_i log min(c_i, 1) over sentence
 * i's valid source positions. */
static double coverage(const search *s, int r, bool with_step)
{
    if (!s->cov) return 0;
    int S = s->o->src_steps, len = s->o->src_len ? s->o->src_len[r / s->K] : S;
    double sum = 0;
    for (int i = 0; i < len && i < S; i++) {
        double c = s->cov[(size_t)r * S + i] + (with_step ? s->attn[(size_t)r * S + i] : 0);
        sum += log(c < 1 ? c : 1);
    }
    return s->o->coverage * sum;
}

/* A node of sentence 0's tree (its index, counted past the room too). */
static int add_node(search *s, int t, int row, int32_t token, double score, loom_cand_fate fate)
{
    loom_search_tree *tr = s->tree;
    if (tr->n < tr->cap) tr->nodes[tr->n] = (loom_search_node){t, t ? s->node_of[row] : -1, token, score, fate};
    return tr->n++;
}

static double normalised(const search *s, double score, int len)
{
    return s->o->length_norm > 0 ? score / pow((double)len, s->o->length_norm) : score;
}

/* Keeps the K best finished hypotheses of sentence i, best first. */
static void finish(search *s, int i, double score, int t, int row, int len, bool eos, int node, double penalty)
{
    finished f = {normalised(s, score, len) + penalty, score, t, row, len, eos, node}, *d = s->done + (size_t)i * s->K;
    int k = s->n_done[i] < s->K ? s->n_done[i]++ : s->K;
    if (k == s->K && f.norm <= d[k - 1].norm) return;
    if (k == s->K) k--;
    for (; k > 0 && d[k - 1].norm < f.norm; k--) d[k] = d[k - 1];
    d[k] = f;
}

int loom_search_exhaustive_beam(int V, int max_len)
{
    double rows = max_len > 1 ? pow(V - 1, max_len - 1) : 1;
    return V < 2 || max_len < 1 || rows > 1024 ? -1 : (int)rows;
}

/* The 2K best (row, token) continuations of sentence i's live rows, best
 * first (exhaustive: every one). */
static int best_candidates(search *s, int i, const float *lp)
{
    int m = 0, cap = s->o->exhaustive ? s->K * s->V : 2 * s->K;
    for (int k = 0; k < s->K; k++) {
        int r = i * s->K + k;
        if (!isfinite(s->live[r])) continue;
        for (int v = 0; v < s->V; v++) {
            double sc = s->live[r] + lp[(size_t)r * s->V + v];
            if (!(sc > -INFINITY) || (m == cap && sc <= s->top[m - 1].score)) continue;
            int j = m < cap ? m++ : cap - 1;
            for (; j > 0 && s->top[j - 1].score < sc; j--) s->top[j] = s->top[j - 1];
            s->top[j] = (cand){sc, r, v};
        }
    }
    return m;
}

/* One token drawn from softmax(log p / T) of row r (sampling), among the
 * top_k likeliest and the nucleus of mass top_p. */
static int sample_candidate(search *s, int r, const float *lp)
{
    const float *x = lp + (size_t)r * s->V;
    double mx = -INFINITY, z = 0, T = s->o->temperature;
    for (int v = 0; v < s->V; v++) mx = x[v] > mx ? x[v] : mx;
    for (int v = 0; v < s->V; v++) z += s->p[v] = exp((x[v] - mx) / T);
    int keep = s->V;
    if ((s->o->top_k > 0 && s->o->top_k < s->V) || (s->o->top_p > 0 && s->o->top_p < 1)) {
        for (int v = 0; v < s->V; v++) s->order[v] = (weighted){s->p[v], v};
        qsort(s->order, (size_t)s->V, sizeof *s->order, by_weight);
        if (s->o->top_k > 0 && s->o->top_k < keep) keep = s->o->top_k;
        if (s->o->top_p > 0 && s->o->top_p < 1) {
            double mass = 0;
            for (int k = 0; k < keep; k++)
                if ((mass += s->order[k].p / z) >= s->o->top_p) {
                    keep = k + 1;
                    break;
                }
        }
        z = 0;
        for (int k = 0; k < keep; k++) z += s->order[k].p;
    }
    double u = loom_uniform(&s->rng) * z, acc = 0;
    int v = keep < s->V ? s->order[keep - 1].v : s->V - 1;
    for (int k = 0; k < keep; k++) {
        int w = keep < s->V ? s->order[k].v : k;
        if ((acc += s->p[w]) > u) {
            v = w;
            break;
        }
    }
    s->top[0] = (cand){s->live[r] + x[v], r, v};
    return 1;
}

/* Step t's choices for sentence i: finished hypotheses, and the rows of the
 * next step (from[t], tok[t], live). */
static void choose(search *s, int t, int i, const float *lp)
{
    int K = s->K, m = s->o->temperature > 0 && K == 1 ? sample_candidate(s, i, lp) : best_candidates(s, i, lp);
    int32_t *from = s->from + (size_t)t * s->R, *tok = s->tok + (size_t)t * s->R;
    double next[1024];
    int kept = 0, node[1024], c = 0;
    bool drawn = s->tree && i == 0;
    for (; c < m && kept < K; c++) {
        const cand *x = &s->top[c];
        if (x->token == s->eos) {
            /* an ending counts when it ranks among the beam best continuations: a
             * poor early one would fill the finished list and end the search
             * (exhaustive: every ending counts) */
            bool counts = c < K || s->o->exhaustive;
            int nd = drawn ? add_node(s, t, x->row, x->token, x->score, counts ? LOOM_CAND_FINISHED : LOOM_CAND_PRUNED) : -1;
            if (counts) finish(s, i, x->score, t, x->row, t + 1, true, nd, coverage(s, x->row, true));
            continue;
        }
        int r = i * K + kept;
        node[kept] = drawn ? add_node(s, t, x->row, x->token, x->score, LOOM_CAND_KEPT) : -1;
        from[r] = x->row, tok[r] = x->token, next[kept++] = x->score;
    }
    for (; drawn && c < m; c++) add_node(s, t, s->top[c].row, s->top[c].token, s->top[c].score, LOOM_CAND_PRUNED);
    for (int k = 0; drawn && k < kept; k++) s->node_of[k] = node[k];
    for (int k = 0; k < K; k++) {
        int r = i * K + k;
        s->live[r] = k < kept ? next[k] : -INFINITY;
        if (k >= kept) from[r] = r, tok[r] = s->eos;
    }
    const finished *d = s->done + (size_t)i * K;
    /* done: no hypothesis left; or (scores only fall without length
     * normalisation) none that can beat the best finished; or beam finished
     * ones, the worst of them ahead of the best live one had it ended now */
    s->over[i] = kept == 0 || (s->o->length_norm <= 0 && s->n_done[i] > 0 && d[0].norm >= next[0]) ||
                 (s->n_done[i] >= K && d[K - 1].norm >= normalised(s, next[0], t + 2));
}

/* The tokens (and rows) of the hypothesis that row `row` held after step t. */
static int trace(const search *s, int t, int row, int32_t *out, int32_t *rows)
{
    for (int k = t; k >= 0; k--) {
        out[k] = s->tok[(size_t)k * s->R + row];
        row = s->from[(size_t)k * s->R + row];
        if (rows) rows[k] = row;
    }
    return t + 1;
}

loom_status loom_search(int n, int V, int32_t bos, int32_t eos, const loom_search_opts *opts, loom_search_step step,
                        void *ctx, int32_t *out, int32_t *len, double *score, int32_t *rows)
{
    loom_search_opts o = opts ? *opts : (loom_search_opts){0};
    if (o.beam < 1) o.beam = 1;
    if (o.max_len < 1) o.max_len = 50;
    if (n < 1 || V < 1 || o.beam > 1024 || !step || !out || !len) return LOOM_ERR_ARG;
    if (o.exhaustive && (o.temperature > 0 || o.length_norm > 0 || loom_search_exhaustive_beam(V, o.max_len) < 0 ||
                         o.beam < loom_search_exhaustive_beam(V, o.max_len)))
        return LOOM_ERR_ARG;
    bool cover = o.coverage > 0;
    if (cover && (!o.attention || o.src_steps < 1)) return LOOM_ERR_ARG;
    search s = {.o = &o, .n = n, .K = o.beam, .V = V, .R = n * o.beam, .eos = eos, .rng = o.seed * 0xD1B54A32D192ED03ull,
                .tree = o.tree};
    if (s.tree && (s.tree->cap < 0 || (s.tree->cap && !s.tree->nodes))) return LOOM_ERR_ARG;
    if (s.tree) s.tree->n = 0, s.tree->best = -1;
    size_t R = (size_t)s.R, T = (size_t)o.max_len;
    s.live = malloc(R * sizeof *s.live);
    s.from = malloc(T * R * sizeof *s.from);
    s.tok = malloc(T * R * sizeof *s.tok);
    s.done = malloc(R * sizeof *s.done);
    s.n_done = calloc((size_t)n, sizeof *s.n_done);
    s.over = calloc((size_t)n, sizeof *s.over);
    s.top = malloc((o.exhaustive ? (size_t)V : 2) * (size_t)s.K * sizeof *s.top);
    s.p = malloc((size_t)V * sizeof *s.p), s.order = malloc((size_t)V * sizeof *s.order);
    float *lp = malloc(R * (size_t)V * sizeof *lp);
    s.node_of = malloc((size_t)s.K * sizeof *s.node_of);
    int32_t *in = malloc(R * sizeof *in);
    if (cover) s.cov = calloc(R * (size_t)o.src_steps, sizeof *s.cov), s.cov_next = calloc(R * (size_t)o.src_steps, sizeof *s.cov);
    loom_status st = LOOM_OK;
    if (!s.live || !s.from || !s.tok || !s.done || !s.n_done || !s.over || !s.top || !s.p || !s.order || !lp || !in || !s.node_of ||
        (cover && (!s.cov || !s.cov_next)))
        st = LOOM_ERR_NOMEM;
    for (size_t r = 0; !st && r < R; r++) s.live[r] = r % (size_t)s.K ? -INFINITY : 0, in[r] = bos;
    int t = 0;
    for (; !st && t < o.max_len; t++) {
        if ((st = step(ctx, t, in, t ? s.from + (size_t)(t - 1) * R : NULL, lp))) break;
        if (cover && !(s.attn = o.attention(ctx))) {
            st = LOOM_ERR_STATE;
            break;
        }
        bool all = true;
        for (int i = 0; i < n; i++) {
            if (!s.over[i]) choose(&s, t, i, lp);
            else /* a done sentence's rows idle on <eos> */
                for (int k = 0; k < s.K; k++) {
                    int r = i * s.K + k;
                    s.from[(size_t)t * R + r] = r, s.tok[(size_t)t * R + r] = eos, s.live[r] = -INFINITY;
                }
            all = all && s.over[i];
        }
        memcpy(in, s.tok + (size_t)t * R, R * sizeof *in);
        if (cover) { /* each row's coverage: its parent's, and what the parent's step attended to */
            size_t S = (size_t)o.src_steps;
            for (size_t r = 0; r < R; r++) {
                size_t from = (size_t)s.from[(size_t)t * R + r];
                for (size_t i = 0; i < S; i++) s.cov_next[r * S + i] = s.cov[from * S + i] + s.attn[from * S + i];
            }
            float *x = s.cov;
            s.cov = s.cov_next, s.cov_next = x;
        }
        if (all) break;
    }
    for (int i = 0; !st && i < n; i++) {
        /* out of steps: what is unfinished ends here */
        for (int k = 0; !s.over[i] && k < s.K; k++)
            if (isfinite(s.live[i * s.K + k]))
                finish(&s, i, s.live[i * s.K + k], o.max_len - 1, i * s.K + k, o.max_len, false, i == 0 && s.tree ? s.node_of[k] : -1,
                       coverage(&s, i * s.K + k, false));
        int32_t *oi = out + (size_t)i * T, *ri = rows ? rows + (size_t)i * T : NULL;
        const finished *f = s.done + (size_t)i * s.K;
        len[i] = 0;
        for (size_t k = 0; ri && k < T; k++) ri[k] = -1;
        if (score) score[i] = s.n_done[i] ? f->norm : -INFINITY;
        if (i == 0 && s.tree) s.tree->best = s.n_done[i] ? f->node : -1;
        if (!s.n_done[i]) continue;
        if (f->eos) { /* ended by <eos> at step f->t, made by row f->row */
            if (f->t > 0) trace(&s, f->t - 1, f->row, oi, ri);
            if (ri) ri[f->t] = f->row;
            len[i] = f->t;
        } else { /* ran out: the row held it after the last step */
            len[i] = trace(&s, f->t, f->row, oi, ri);
        }
    }
    free(s.live), free(s.from), free(s.tok), free(s.done), free(s.n_done), free(s.over), free(s.top), free(s.p), free(s.order), free(lp), free(in);
    free(s.node_of), free(s.cov), free(s.cov_next);
    return st;
}
