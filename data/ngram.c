/* n-gram counts and the Laplace-smoothed n-gram model (see loom/ngram.h). */
#include "loom/ngram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* The k-grams: open addressing over keys of k ids; count 0 marks a free slot. */
typedef struct {
    int k;
    int32_t *key;   /* cap × k */
    int64_t *count;
    int64_t *first; /* where it first occurs (ties of loom_ngrams_top) */
    int64_t cap, n;
} table;

struct loom_ngrams {
    int order, vocab;
    int64_t N;
    int32_t tail[LOOM_NGRAM_MAX_ORDER]; /* the text's last order − 1 tokens */
    int n_tail;
    table t[LOOM_NGRAM_MAX_ORDER + 1]; /* t[k]: the k-grams */
};

static uint64_t key_hash(const int32_t *key, int k) { return XXH3_64bits(key, (size_t)k * sizeof *key); }

static int64_t find(const table *t, const int32_t *key)
{
    for (int64_t i = (int64_t)(key_hash(key, t->k) & (uint64_t)(t->cap - 1));; i = (i + 1) & (t->cap - 1))
        if (!t->count[i] || !memcmp(t->key + i * t->k, key, (size_t)t->k * sizeof *key)) return i;
}

static bool alloc(table *t, int k, int64_t cap)
{
    *t = (table){.k = k, .cap = cap};
    t->key = malloc((size_t)cap * (size_t)k * sizeof *t->key);
    t->count = calloc((size_t)cap, sizeof *t->count);
    t->first = malloc((size_t)cap * sizeof *t->first);
    return t->key && t->count && t->first;
}

static void release(table *t)
{
    free(t->key), free(t->count), free(t->first);
    *t = (table){0};
}

static bool add(table *t, const int32_t *key, int64_t at)
{
    if (2 * (t->n + 1) > t->cap) { /* at most half full */
        table bigger;
        if (!alloc(&bigger, t->k, 2 * t->cap)) return release(&bigger), false;
        for (int64_t i = 0; i < t->cap; i++)
            if (t->count[i]) {
                int64_t j = find(&bigger, t->key + i * t->k);
                memcpy(bigger.key + j * t->k, t->key + i * t->k, (size_t)t->k * sizeof *key);
                bigger.count[j] = t->count[i], bigger.first[j] = t->first[i];
            }
        bigger.n = t->n;
        release(t);
        *t = bigger;
    }
    int64_t i = find(t, key);
    if (!t->count[i]) {
        memcpy(t->key + i * t->k, key, (size_t)t->k * sizeof *key);
        t->first[i] = at, t->n++;
    }
    t->count[i]++;
    return true;
}

void loom_ngrams_free(loom_ngrams *g)
{
    if (!g) return;
    for (int k = 1; k <= g->order; k++) release(&g->t[k]);
    free(g);
}

loom_ngrams *loom_ngrams_new(const int32_t *ids, int64_t n, int order, int vocab, loom_error *err)
{
    if (order < 1 || order > LOOM_NGRAM_MAX_ORDER || vocab < 1 || n < 1 || !ids) {
        loom_error_set(err, LOOM_ERR_ARG, "n-grams: an order in 1 … %d, a vocabulary and at least one token (got order %d, "
                                          "vocabulary %d, %lld tokens)", LOOM_NGRAM_MAX_ORDER, order, vocab, (long long)n);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            loom_error_set(err, LOOM_ERR_VALUE, "n-grams: token %lld is %d, not in the vocabulary of %d", (long long)i, ids[i],
                           vocab);
            return NULL;
        }
    loom_ngrams *g = calloc(1, sizeof *g);
    bool ok = g != NULL;
    if (g) g->order = order, g->vocab = vocab, g->N = n;
    for (int k = 1; ok && k <= order; k++) {
        ok = alloc(&g->t[k], k, 1024);
        for (int64_t i = 0; ok && i + k <= n; i++) ok = add(&g->t[k], ids + i, i);
    }
    if (!ok) {
        loom_ngrams_free(g);
        loom_error_set(err, LOOM_ERR_NOMEM, "n-grams: out of memory");
        return NULL;
    }
    g->n_tail = (int)(order - 1 < n ? order - 1 : n);
    memcpy(g->tail, ids + n - g->n_tail, (size_t)g->n_tail * sizeof *ids);
    return g;
}

int loom_ngrams_order(const loom_ngrams *g) { return g ? g->order : 0; }
int loom_ngrams_vocab(const loom_ngrams *g) { return g ? g->vocab : 0; }

int64_t loom_ngrams_total(const loom_ngrams *g, int k)
{
    return g && k >= 1 && k <= g->order && g->N >= k ? g->N - k + 1 : 0;
}

int64_t loom_ngrams_distinct(const loom_ngrams *g, int k) { return g && k >= 1 && k <= g->order ? g->t[k].n : 0; }

int64_t loom_ngrams_count(const loom_ngrams *g, const int32_t *gram, int k)
{
    if (!g || !gram || k < 1 || k > g->order) return 0;
    const table *t = &g->t[k];
    return t->count[find(t, gram)];
}

/* Σ_y n(context y): the k-gram context's count, less one where the text ends with it (nothing follows). */
static int64_t followed(const loom_ngrams *g, const int32_t *context, int k)
{
    if (k == 0) return g->N;
    int64_t c = loom_ngrams_count(g, context, k);
    if (c && k <= g->n_tail && !memcmp(g->tail + g->n_tail - k, context, (size_t)k * sizeof *context)) c--;
    return c;
}

double loom_ngrams_prob(const loom_ngrams *g, const int32_t *context, int k, int32_t x, double eps)
{
    if (!g || k < 0 || k >= g->order || (k && !context) || x < 0 || x >= g->vocab || !(eps > 0)) return NAN;
    double p = ((double)loom_ngrams_count(g, &x, 1) + eps / g->vocab) / ((double)g->N + eps);
    int32_t gram[LOOM_NGRAM_MAX_ORDER];
    for (int j = 1; j <= k; j++) { /* the last j tokens of the context, then x */
        memcpy(gram, context + k - j, (size_t)j * sizeof *gram);
        gram[j] = x;
        p = ((double)loom_ngrams_count(g, gram, j + 1) + eps * p) / ((double)followed(g, gram, j) + eps);
    }
    return p;
}

double loom_ngrams_perplexity(const loom_ngrams *g, int k, double eps, const int32_t *ids, int64_t n)
{
    if (!g || k < 1 || k > g->order || !ids || n < 1 || !(eps > 0)) return NAN;
    double nll = 0;
    for (int64_t t = 0; t < n; t++) {
        int c = (int)(t < k - 1 ? t : k - 1);
        double p = loom_ngrams_prob(g, ids + t - c, c, ids[t], eps);
        if (!(p > 0)) return NAN; /* a token outside the vocabulary */
        nll -= log(p);
    }
    return exp(nll / (double)n);
}

double loom_ngrams_choose_eps(const int32_t *ids, int64_t n, int k, int vocab, loom_error *err)
{
    if (n < 10) return loom_error_set(err, LOOM_ERR_ARG, "n-grams: %lld tokens are too few to choose ε on", (long long)n), NAN;
    int64_t part = n - n / 10;
    loom_ngrams *g = loom_ngrams_new(ids, part, k, vocab, err);
    if (!g) return NAN;
    double best = NAN, best_ppl = INFINITY;
    for (int e = -3; e <= 5; e++) {
        double eps = pow(10, e), ppl = loom_ngrams_perplexity(g, k, eps, ids + part, n - part);
        if (ppl < best_ppl) best_ppl = ppl, best = eps;
    }
    loom_ngrams_free(g);
    return best;
}

loom_status loom_ngrams_baseline(const int32_t *train, int64_t n_train, int vocab, int order, double eps, const int32_t *ids,
                                 int64_t n, double *ppl, double *eps_used, loom_error *err)
{
    if (!ppl || !eps_used || !ids || n < 1) return loom_error_set(err, LOOM_ERR_ARG, "n-grams: no tokens to score");
    loom_ngrams *g = loom_ngrams_new(train, n_train, order, vocab, err);
    if (!g) return err ? err->status : LOOM_ERR_ARG;
    loom_status st = LOOM_OK;
    for (int k = 1; !st && k <= order; k++) {
        eps_used[k - 1] = eps > 0 ? eps : loom_ngrams_choose_eps(train, n_train, k, vocab, err);
        ppl[k - 1] = isnan(eps_used[k - 1]) ? NAN : loom_ngrams_perplexity(g, k, eps_used[k - 1], ids, n);
        if (isnan(eps_used[k - 1])) st = err && err->status ? err->status : LOOM_ERR_ARG;
        else if (isnan(ppl[k - 1])) st = loom_error_set(err, LOOM_ERR_VALUE, "n-grams: a scored token is not in the vocabulary of %d", vocab);
    }
    loom_ngrams_free(g);
    return st;
}

typedef struct {
    int64_t count, first, slot;
} entry;

static int by_count(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->first > y->first) - (x->first < y->first);
}

/* The slots of table k by count, most frequent first (malloc'd; *m of them), or NULL. */
static entry *ranked(const loom_ngrams *g, int k, int64_t *m)
{
    const table *t = &g->t[k];
    entry *e = malloc(((size_t)t->n + 1) * sizeof *e);
    if (!e) return NULL;
    *m = 0;
    for (int64_t i = 0; i < t->cap; i++)
        if (t->count[i]) e[(*m)++] = (entry){t->count[i], t->first[i], i};
    qsort(e, (size_t)*m, sizeof *e, by_count);
    return e;
}

int64_t loom_ngrams_top(const loom_ngrams *g, int k, int64_t max, int32_t *grams, int64_t *counts)
{
    if (!g || k < 1 || k > g->order || max < 1) return 0;
    int64_t m;
    entry *e = ranked(g, k, &m);
    if (!e) return 0;
    int64_t w = m < max ? m : max;
    for (int64_t r = 0; r < w; r++) {
        if (grams) memcpy(grams + r * k, g->t[k].key + e[r].slot * k, (size_t)k * sizeof *grams);
        if (counts) counts[r] = e[r].count;
    }
    free(e);
    return w;
}

loom_status loom_ngrams_zipf(const loom_ngrams *g, int k, int64_t lo, int64_t hi, double *s, double *c)
{
    if (!g || k < 1 || k > g->order || !s || !c) return LOOM_ERR_ARG;
    int64_t m;
    entry *e = ranked(g, k, &m);
    if (!e) return LOOM_ERR_NOMEM;
    if (lo < 1) lo = 1;
    if (hi < 1 || hi > m) hi = m;
    loom_status st = hi - lo + 1 < 2 ? LOOM_ERR_ARG : LOOM_OK;
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = (double)(hi - lo + 1);
    for (int64_t r = lo; !st && r <= hi; r++) {
        double x = log10((double)r), y = log10((double)e[r - 1].count);
        sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    free(e);
    if (st) return st;
    double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    *s = -slope, *c = pow(10, (sy - slope * sx) / n);
    return LOOM_OK;
}
