/* A trained encoder–decoder translating (loom/seq2seq.h): the encoder runs
 * once per batch of sentences, then the one-step decoder runs under
 * loom_search, its states reordered as the hypotheses move between rows. */
#include "loom/seq2seq.h"
#include "loom/inspect.h"
#include "loom/data.h"
#include "loom/bleu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loom_translator {
    loom_graph *g;
    loom_seq2seq m;
    loom_plan *enc, *step;
    int N, K, R, S, L, H, Ts, V, W;          /* sentences, beam, rows, states, layers, hidden, steps, vocab, memory width */
    int32_t *src, *src_len, *prev, *len_in;   /* src time-major (Ts, N) */
    float *state[LOOM_CELL_MAX_STATES], *tmp; /* (L, R, H) each; tmp for reordering */
    float *memory, *keys, *context;           /* per row */
    float *attention;                         /* max_len × R × Ts of the current batch (NULL: not kept) */
    int max_len;
};

void loom_translator_free(loom_translator *t)
{
    if (!t) return;
    loom_plan_free(t->enc), loom_plan_free(t->step);
    loom_graph_free(t->g);
    for (int s = 0; s < LOOM_CELL_MAX_STATES; s++) free(t->state[s]);
    free(t->src), free(t->src_len), free(t->prev), free(t->len_in), free(t->tmp);
    free(t->memory), free(t->keys), free(t->context), free(t->attention);
    free(t);
}

static float *floats(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

loom_translator *loom_translator_new(const loom_seq2seq_opts *model, const loom_store *weights, int beam, loom_error *err)
{
    loom_translator *t = calloc(1, sizeof *t);
    if (!t || !(t->g = loom_graph_new())) goto nomem;
    t->N = model->batch, t->K = beam < 1 ? 1 : beam, t->R = t->N * t->K;
    loom_seq2seq *m = &t->m;
    if (loom_seq2seq_build_decoder(t->g, m, model, t->R)) {
        loom_error_set(err, loom_graph_status(t->g), "translate: %s", loom_graph_error(t->g));
        loom_translator_free(t);
        return NULL;
    }
    t->S = m->S, t->L = m->o.dec_layers, t->H = m->o.hidden, t->Ts = m->o.src_steps, t->V = m->o.tgt_vocab, t->W = m->K;
    bool attn = m->o.attention != LOOM_ATTN_NONE;
    loom_tensor eo[2 + LOOM_CELL_MAX_STATES] = {attn ? m->memory : m->context, m->keys};
    loom_tensor so[2 + LOOM_CELL_MAX_STATES] = {m->log_probs, m->step_attention};
    int ne = attn ? 2 : 1, ns = attn ? 2 : 1;
    for (int s = 0; s < t->S; s++) eo[ne++] = m->init[s], so[ns++] = m->state_out[s];
    t->enc = loom_plan_new(t->g, eo, ne, &(loom_plan_opts){.eval = true});
    t->step = t->enc ? loom_plan_new(t->g, so, ns, &(loom_plan_opts){.eval = true}) : NULL;
    if (!t->step) {
        loom_error_set(err, loom_graph_status(t->g), "translate: %s", loom_graph_error(t->g));
        loom_translator_free(t);
        return NULL;
    }
    loom_error why = {0};
    if (loom_store_bind_shared(weights, t->g, t->enc, &why) || loom_store_bind_shared(weights, t->g, t->step, &why)) {
        loom_error_set(err, why.status, "translate: %s", why.msg);
        loom_translator_free(t);
        return NULL;
    }
    size_t R = (size_t)t->R, sn = (size_t)t->L * R * (size_t)t->H;
    t->src = malloc((size_t)t->Ts * (size_t)t->N * sizeof *t->src);
    t->src_len = malloc((size_t)t->N * sizeof *t->src_len);
    t->prev = malloc(R * sizeof *t->prev);
    t->len_in = malloc(R * sizeof *t->len_in);
    t->tmp = floats(sn);
    t->memory = floats(attn ? R * (size_t)t->Ts * (size_t)t->W : 0);
    t->keys = floats(attn ? R * (size_t)t->Ts * (size_t)t->H : 0);
    t->context = floats(attn ? 0 : R * (size_t)t->H);
    if (!t->src || !t->src_len || !t->prev || !t->len_in || !t->tmp || !t->memory || !t->keys || !t->context) goto nomem;
    for (int s = 0; s < t->S; s++) {
        if (!(t->state[s] = floats(sn))) goto nomem;
        loom_bind(t->step, m->state_in[s], t->state[s]);
    }
    loom_bind(t->enc, m->src, t->src), loom_bind(t->enc, m->src_len, t->src_len);
    loom_bind(t->step, m->prev, t->prev);
    if (attn) loom_bind(t->step, m->memory_in, t->memory), loom_bind(t->step, m->keys_in, t->keys), loom_bind(t->step, m->len_in, t->len_in);
    else loom_bind(t->step, m->context_in, t->context);
    return t;
nomem:
    loom_error_set(err, LOOM_ERR_NOMEM, "translate: out of memory");
    loom_translator_free(t);
    return NULL;
}

/* Copies row `from` of each (L, ·, H) block to every row it feeds. */
static void reorder(loom_translator *t, const int32_t *parent)
{
    size_t H = (size_t)t->H, R = (size_t)t->R;
    for (int s = 0; s < t->S; s++) {
        for (size_t l = 0; l < (size_t)t->L; l++)
            for (size_t r = 0; r < R; r++)
                memcpy(t->tmp + (l * R + r) * H, t->state[s] + (l * R + (size_t)parent[r]) * H, H * sizeof(float));
        float *x = t->state[s];
        t->state[s] = t->tmp, t->tmp = x;
        loom_bind(t->step, t->m.state_in[s], t->state[s]);
    }
}

static loom_status step(void *ctx, int k, const int32_t *tokens, const int32_t *parent, float *log_probs)
{
    loom_translator *t = ctx;
    if (parent) reorder(t, parent);
    memcpy(t->prev, tokens, (size_t)t->R * sizeof *t->prev);
    loom_status st = loom_run(t->step);
    if (st) return st;
    size_t R = (size_t)t->R, sn = (size_t)t->L * R * (size_t)t->H;
    memcpy(log_probs, loom_plan_output(t->step, t->m.log_probs), R * (size_t)t->V * sizeof(float));
    for (int s = 0; s < t->S; s++) memcpy(t->state[s], loom_plan_output(t->step, t->m.state_out[s]), sn * sizeof(float));
    if (t->attention && t->m.o.attention)
        memcpy(t->attention + (size_t)k * R * (size_t)t->Ts, loom_plan_output(t->step, t->m.step_attention),
               R * (size_t)t->Ts * sizeof(float));
    return LOOM_OK;
}

/* The attention of the step just run, R × Ts (the coverage penalty's). */
static const float *step_attention(void *ctx)
{
    loom_translator *t = ctx;
    return t->m.o.attention ? loom_plan_output(t->step, t->m.step_attention) : NULL;
}

/* The encoder over sentences [first, first + n) (the rest of the batch
 * repeats sentence `first`), and every row's first state and memory. */
static loom_status encode(loom_translator *t, const int32_t *src, const int32_t *src_len, int n)
{
    int N = t->N, Ts = t->Ts, K = t->K;
    for (int i = 0; i < N; i++) {
        int from = i < n ? i : 0;
        for (int j = 0; j < Ts; j++) t->src[j * N + i] = src[(size_t)from * Ts + j];
        t->src_len[i] = src_len[from];
    }
    loom_status st = loom_run(t->enc);
    if (st) return st;
    size_t H = (size_t)t->H, R = (size_t)t->R;
    for (int s = 0; s < t->S; s++) {
        const float *init = loom_plan_output(t->enc, t->m.init[s]); /* (L, N, H) */
        for (size_t l = 0; l < (size_t)t->L; l++)
            for (size_t r = 0; r < R; r++)
                memcpy(t->state[s] + (l * R + r) * H, init + (l * (size_t)N + r / (size_t)K) * H, H * sizeof(float));
    }
    size_t mem = (size_t)Ts * (size_t)t->W, keys = (size_t)Ts * H;
    for (size_t r = 0; r < R; r++) {
        size_t i = r / (size_t)K;
        t->len_in[r] = t->src_len[i];
        if (t->m.o.attention) {
            memcpy(t->memory + r * mem, loom_plan_output(t->enc, t->m.memory) + i * mem, mem * sizeof(float));
            memcpy(t->keys + r * keys, loom_plan_output(t->enc, t->m.keys) + i * keys, keys * sizeof(float));
        } else {
            memcpy(t->context + r * H, loom_plan_output(t->enc, t->m.context) + i * H, H * sizeof(float));
        }
    }
    return LOOM_OK;
}

loom_status loom_translate(loom_translator *t, const int32_t *src, const int32_t *src_len, int n,
                           const loom_search_opts *opts, int32_t *out, int32_t *len, double *score, float *attention,
                           loom_error *err)
{
    loom_search_opts o = opts ? *opts : (loom_search_opts){0};
    if (o.beam < 1) o.beam = t->K;
    if (o.max_len < 1) o.max_len = 50;
    if (o.beam != t->K) {
        return loom_error_set(err, LOOM_ERR_ARG, "translate: a beam of %d with a translator made for %d", o.beam, t->K);
    }
    if (o.coverage > 0 && !t->m.o.attention)
        return loom_error_set(err, LOOM_ERR_ARG, "translate: a coverage penalty weighs attention, and this model has none");
    if (o.coverage > 0) o.attention = step_attention, o.src_steps = t->Ts, o.src_len = t->src_len;
    for (int64_t i = 0; i < (int64_t)n * t->Ts; i++)
        if (src[i] < 0 || src[i] >= t->m.o.src_vocab) {
            return loom_error_set(err, LOOM_ERR_VALUE, "translate: token %d of sentence %lld is not in the vocabulary", src[i],
                                  (long long)(i / t->Ts) + 1);
        }
    for (int i = 0; i < n; i++)
        if (src_len[i] < 1 || src_len[i] > t->Ts) {
            return loom_error_set(err, LOOM_ERR_VALUE, "translate: sentence %d has length %d (1..%d)", i + 1, src_len[i], t->Ts);
        }
    size_t T = (size_t)o.max_len, N = (size_t)t->N;
    int32_t *bo = malloc(N * T * sizeof *bo), *bl = malloc(N * sizeof *bl), *rows = malloc(N * T * sizeof *rows);
    double *bs = malloc(N * sizeof *bs);
    t->attention = attention ? floats(T * (size_t)t->R * (size_t)t->Ts) : NULL;
    loom_status st = !bo || !bl || !rows || !bs || (attention && !t->attention) ? LOOM_ERR_NOMEM : LOOM_OK;
    for (int first = 0; !st && first < n; first += t->N) {
        int k = n - first < t->N ? n - first : t->N;
        if (t->attention) memset(t->attention, 0, T * (size_t)t->R * (size_t)t->Ts * sizeof(float));
        if ((st = encode(t, src + (size_t)first * t->Ts, src_len + first, k))) {
            loom_error_set(err, st, "translate: %s", loom_plan_error(t->enc));
            break;
        }
        if ((st = loom_search(t->N, t->V, LOOM_BOS, LOOM_EOS, &o, step, t, bo, bl, bs, rows))) break;
        for (int i = 0; i < k; i++) {
            size_t at = (size_t)(first + i);
            memcpy(out + at * T, bo + (size_t)i * T, T * sizeof *out);
            len[at] = bl[i];
            if (score) score[at] = bs[i];
            for (size_t j = 0; attention && j < T; j++) {
                float *a = attention + (at * T + j) * (size_t)t->Ts;
                int32_t row = rows[(size_t)i * T + j];
                if (row >= 0) memcpy(a, t->attention + (j * (size_t)t->R + (size_t)row) * (size_t)t->Ts, (size_t)t->Ts * sizeof(float));
                else memset(a, 0, (size_t)t->Ts * sizeof(float));
            }
        }
    }
    if (st == LOOM_ERR_NOMEM) loom_error_set(err, st, "translate: out of memory");
    else if (st) loom_error_set(err, st, "translate: %s", *loom_plan_error(t->step) ? loom_plan_error(t->step) : "the search failed");
    free(bo), free(bl), free(rows), free(bs), free(t->attention);
    t->attention = NULL;
    return st;
}

/* The reference of a target row: its tokens before <eos> (all of them
 * when it was cut). */
static int reference(const int32_t *t, int len) { return len > 0 && t[len - 1] == LOOM_EOS ? len - 1 : len; }

loom_status loom_translate_score(loom_translator *t, const loom_pairs *p, bool valid, int64_t n,
                                 const loom_search_opts *so, double *bleu, double *exact, loom_error *err)
{
    if (n < 1 || n > loom_pairs_count(p, valid) || so->max_len < 1) {
        return loom_error_set(err, LOOM_ERR_ARG, "translate_score: %lld pairs of %lld, max_len %d", (long long)n,
                              (long long)loom_pairs_count(p, valid), so->max_len);
    }
    int Ts = loom_pairs_steps(p, 0), Tt = loom_pairs_steps(p, 1), L = so->max_len;
    int32_t *src = malloc((size_t)n * (size_t)Ts * sizeof *src), *sl = malloc((size_t)n * sizeof *sl);
    int32_t *ref = malloc((size_t)n * (size_t)Tt * sizeof *ref), *rl = malloc((size_t)n * sizeof *rl);
    int32_t *out = malloc((size_t)n * (size_t)L * sizeof *out), *ol = malloc((size_t)n * sizeof *ol);
    loom_tokens *h = malloc((size_t)n * sizeof *h), *refs = malloc((size_t)n * sizeof *refs);
    const loom_tokens **rp = malloc((size_t)n * sizeof *rp);
    int *nr = malloc((size_t)n * sizeof *nr);
    loom_status st = LOOM_OK;
    if (!src || !sl || !ref || !rl || !out || !ol || !h || !refs || !rp || !nr) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    } else {
        for (int64_t i = 0; i < n; i++) loom_pairs_get(p, valid, i, src + i * Ts, &sl[i], ref + i * Tt, &rl[i]);
        st = loom_translate(t, src, sl, (int)n, so, out, ol, NULL, NULL, err);
        int64_t hits = 0;
        for (int64_t i = 0; !st && i < n; i++) {
            int k = reference(ref + i * Tt, rl[i]);
            h[i] = (loom_tokens){out + i * L, ol[i]};
            refs[i] = (loom_tokens){ref + i * Tt, k};
            rp[i] = &refs[i], nr[i] = 1;
            hits += ol[i] == k && !memcmp(out + i * L, ref + i * Tt, (size_t)k * sizeof *out);
        }
        if (!st) *bleu = loom_corpus_bleu(h, rp, nr, (int)n, 4), *exact = (double)hits / (double)n;
    }
    free(src), free(sl), free(ref), free(rl), free(out), free(ol), free(h), free(refs), free(rp), free(nr);
    return st;
}

loom_status loom_seq2seq_perplexity(const loom_seq2seq_opts *model, const loom_store *weights, const loom_pairs *p, bool valid,
                                    double *ppl, loom_error *err)
{
    enum { B = 64 };
    loom_seq2seq m;
    loom_seq2seq_opts o = *model;
    o.sampled = false, o.dropout = 0, o.batch = B; /* the teacher-forced model */
    int Ts = o.src_steps, Tt = o.tgt_steps, V = o.tgt_vocab;
    int64_t n = loom_pairs_count(p, valid);
    if (n < 1 || loom_pairs_steps(p, 0) != Ts || loom_pairs_steps(p, 1) != Tt)
        return loom_error_set(err, LOOM_ERR_ARG, "perplexity: %lld pairs of %d and %d steps for a model of %d and %d",
                              (long long)n, loom_pairs_steps(p, 0), loom_pairs_steps(p, 1), Ts, Tt);
    loom_graph *g = loom_graph_new();
    loom_plan *plan = NULL;
    int32_t *buf = malloc(((size_t)(Ts + 2 * Tt) * B + 2 * (size_t)B) * sizeof *buf);
    int32_t *row = malloc((size_t)(Ts + Tt) * sizeof *row);
    loom_status st = LOOM_OK;
    if (!g || !buf || !row) st = loom_error_set(err, LOOM_ERR_NOMEM, "perplexity: out of memory");
    else if (loom_seq2seq_build(g, &m, &o) || !(plan = loom_plan_new(g, &m.logits, 1, &(loom_plan_opts){.eval = true})))
        st = loom_error_set(err, loom_graph_status(g), "perplexity: %s", loom_graph_error(g));
    else
        st = loom_store_bind_shared(weights, g, plan, err);
    int32_t *src = buf, *din = src + Ts * B, *tgt = din + Tt * B, *sl = tgt + Tt * B, *tl = sl + B, *t = row + Ts;
    if (!st) loom_bind(plan, m.src, src), loom_bind(plan, m.src_len, sl), loom_bind(plan, m.dec_in, din);
    if (!st) loom_bind(plan, m.tgt, tgt), loom_bind(plan, m.tgt_len, tl);
    double nll = 0, tokens = 0;
    for (int64_t first = 0; !st && first < n; first += B) {
        for (int b = 0; b < B; b++) { /* the last batch wraps around; its extra rows are not counted */
            loom_pairs_get(p, valid, (first + b) % n, row, &sl[b], t, &tl[b]);
            for (int j = 0; j < Ts; j++) src[j * B + b] = row[j];
            for (int j = 0; j < Tt; j++) tgt[j * B + b] = t[j], din[j * B + b] = j ? t[j - 1] : LOOM_BOS;
        }
        if ((st = loom_run(plan))) {
            loom_error_set(err, st, "perplexity: %s", loom_plan_error(plan));
            break;
        }
        const float *lg = loom_plan_output(plan, m.logits);
        for (int b = 0; b < B && first + b < n; b++)
            for (int j = 0; j < tl[b]; j++) { /* − log softmax of the target token */
                const float *x = lg + ((size_t)j * B + b) * V;
                double mx = x[0], z = 0;
                for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
                for (int v = 0; v < V; v++) z += exp(x[v] - mx);
                nll += mx + log(z) - x[tgt[j * B + b]], tokens++;
            }
    }
    if (!st) *ppl = exp(nll / tokens);
    free(buf), free(row);
    loom_plan_free(plan);
    loom_graph_free(g);
    return st;
}

void loom_seq2seq_probe_close(loom_seq2seq_probe *p)
{
    loom_graph_free(p->g);
    free(p->buf), free(p->own);
    memset(p, 0, sizeof *p);
}

loom_status loom_seq2seq_probe_open(loom_seq2seq_probe *p, const loom_seq2seq_opts *model, const loom_store *weights,
                                    const int32_t *src, int src_len, loom_error *err)
{
    memset(p, 0, sizeof *p);
    if (!model || !weights || !src) return loom_error_set(err, LOOM_ERR_ARG, "probe: no model, weights or sentence");
    loom_seq2seq_opts o = *model;
    o.sampled = false, o.dropout = 0, o.batch = 1;
    int Ts = o.src_steps, Tt = o.tgt_steps;
    if (src_len < 1 || src_len > Ts)
        return loom_error_set(err, LOOM_ERR_ARG, "probe: a sentence of %d tokens for a model of %d source steps", src_len, Ts);
    for (int j = 0; j < Ts; j++)
        if (src[j] < 0 || src[j] >= o.src_vocab)
            return loom_error_set(err, LOOM_ERR_ARG, "probe: token %d of the sentence (%d) is not in the model's %d", j + 1,
                                  src[j], o.src_vocab);
    /* the translation: greedy, at most tgt_steps tokens */
    loom_error why = {0};
    loom_translator *tr = loom_translator_new(&o, weights, 1, &why);
    int32_t sl = src_len, ol = 0;
    int32_t *buf = p->buf = calloc((size_t)Ts + 3 * (size_t)Tt + 2, sizeof *buf);
    if (!tr || !buf) {
        loom_translator_free(tr);
        loom_seq2seq_probe_close(p);
        return tr ? loom_error_set(err, LOOM_ERR_NOMEM, "probe: out of memory") : loom_error_set(err, why.status, "%s", why.msg);
    }
    int32_t *s = buf, *out = s + Ts, *din = out + Tt, *tgt = din + Tt, *lens = tgt + Tt;
    memcpy(s, src, (size_t)Ts * sizeof *s);
    loom_status st = loom_translate(tr, s, &sl, 1, &(loom_search_opts){.beam = 1, .max_len = Tt}, out, &ol, NULL, NULL, err);
    loom_translator_free(tr);
    if (st) return loom_seq2seq_probe_close(p), st;
    /* the target: the translation, then <eos> where it fits; the decoder reads <bos> then the target */
    p->tgt_len = ol < Tt ? ol + 1 : Tt;
    for (int j = 0; j < Tt; j++) {
        tgt[j] = j < ol ? out[j] : j == ol ? LOOM_EOS : LOOM_PAD;
        din[j] = j ? tgt[j - 1] : LOOM_BOS;
    }
    lens[0] = src_len, lens[1] = p->tgt_len;
    p->src = s, p->tgt = tgt, p->src_len = src_len;
    if (!(p->g = loom_graph_new())) return loom_seq2seq_probe_close(p), loom_error_set(err, LOOM_ERR_NOMEM, "probe: out of memory");
    if (loom_seq2seq_build(p->g, &p->m, &o)) {
        st = loom_error_set(err, loom_graph_status(p->g), "probe: %s", loom_graph_error(p->g));
        return loom_seq2seq_probe_close(p), st;
    }
    int np = loom_graph_params(p->g, NULL, 0), nb = 0;
    loom_binding *b = p->own = malloc(((size_t)np + 5) * sizeof *b);
    loom_tensor *params = malloc(((size_t)np + 1) * sizeof *params);
    if (!b || !params) {
        free(params);
        loom_seq2seq_probe_close(p);
        return loom_error_set(err, LOOM_ERR_NOMEM, "probe: out of memory");
    }
    loom_graph_params(p->g, params, np);
    for (int i = 0; !st && i < np; i++) {
        const char *name = loom_tensor_name(p->g, params[i]);
        float *data = loom_store_data_by_name(weights, name);
        if (!data) st = loom_error_set(err, LOOM_ERR_ARG, "probe: the weights have no parameter %s", name);
        b[nb++] = (loom_binding){params[i], data};
    }
    free(params);
    if (st) return loom_seq2seq_probe_close(p), st;
    b[nb++] = (loom_binding){p->m.src, s};
    b[nb++] = (loom_binding){p->m.src_len, &lens[0]};
    b[nb++] = (loom_binding){p->m.dec_in, din};
    b[nb++] = (loom_binding){p->m.tgt, tgt};
    b[nb++] = (loom_binding){p->m.tgt_len, &lens[1]};
    p->binds = b, p->n_binds = nb;
    return LOOM_OK;
}

loom_status loom_seq2seq_attention_weights(loom_graph *g, const loom_seq2seq *m, const loom_binding *binds, int n_binds, int b,
                                           int rows, int cols, float *out)
{
    int Ts = m->o.src_steps, Tt = m->o.tgt_steps, B = m->o.batch;
    if (!loom_valid(m->attention) || b < 0 || b >= B || rows < 1 || rows > Tt || cols < 1 || cols > Ts || !out)
        return loom_graph_fail(g, LOOM_ERR_ARG, "attention weights: sentence %d, %d × %d of a model of batch %d, %d × %d%s", b,
                               rows, cols, B, Tt, Ts, loom_valid(m->attention) ? "" : " (it has no attention)"),
               LOOM_ERR_ARG;
    float *all = malloc((size_t)Tt * B * Ts * sizeof *all);
    if (!all) return loom_graph_fail(g, LOOM_ERR_NOMEM, "attention weights: out of memory"), LOOM_ERR_NOMEM;
    loom_status st = loom_node_values(g, m->attention, binds, n_binds, all, (size_t)Tt * B * Ts);
    for (int i = 0; !st && i < rows; i++) /* (Tt, B, Ts): sentence b's rows */
        memcpy(out + (size_t)i * cols, all + ((size_t)i * B + b) * Ts, (size_t)cols * sizeof *out);
    free(all);
    return st;
}
