/* BLEU (loom/bleu.h). N-grams are compared as token runs, never hashed:
 * each sentence's n-gram starts are sorted lexicographically, and every
 * distinct hypothesis n-gram is counted in each reference by binary
 * search — O(L log L) per sentence and order. */
#define _GNU_SOURCE /* qsort_r */
#include "loom/bleu.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

static int cmp_run(const int32_t *x, const int32_t *y, int n)
{
    for (int i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

typedef struct {
    const int32_t *tok;
    int n;
} gram_ctx;

static int cmp_gram(const void *a, const void *b, void *ctx)
{
    const gram_ctx *c = ctx;
    return cmp_run(c->tok + *(const int *)a, c->tok + *(const int *)b, c->n);
}

/* The starts of s's n-grams into idx, sorted; their count. */
static int sorted_grams(loom_tokens s, int n, int *idx)
{
    int m = s.len - n + 1;
    if (m <= 0) return 0;
    for (int i = 0; i < m; i++) idx[i] = i;
    qsort_r(idx, (size_t)m, sizeof *idx, cmp_gram, &(gram_ctx){s.tok, n});
    return m;
}

/* Occurrences of the n-gram g among the m sorted n-grams idx of s. */
static int occurrences(loom_tokens s, const int *idx, int m, const int32_t *g, int n)
{
    int lo = 0, hi = m;
    while (lo < hi) { /* the first not below g */
        int mid = lo + (hi - lo) / 2;
        if (cmp_run(s.tok + idx[mid], g, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    int k = lo;
    while (k < m && !cmp_run(s.tok + idx[k], g, n)) k++;
    return k - lo;
}

/* Σ over the distinct n-grams of h of min(count in h, the most in one
 * reference): the clipped matches. scratch holds (1 + n_refs) rows of
 * `row` ints, row ≥ every sentence's length. */
static int64_t clipped(loom_tokens h, const loom_tokens *refs, int n_refs, int n, int *scratch, int row)
{
    int *hi = scratch, m = sorted_grams(h, n, hi);
    for (int r = 0; r < n_refs; r++) sorted_grams(refs[r], n, scratch + (size_t)(r + 1) * row);
    int64_t total = 0;
    for (int a = 0, b; a < m; a = b) {
        const int32_t *g = h.tok + hi[a];
        for (b = a + 1; b < m && !cmp_run(h.tok + hi[b], g, n); b++) {}
        int most = 0;
        for (int r = 0; r < n_refs && most < b - a; r++) {
            int rm = refs[r].len - n + 1 > 0 ? refs[r].len - n + 1 : 0;
            int c = occurrences(refs[r], scratch + (size_t)(r + 1) * row, rm, g, n);
            most = c > most ? c : most;
        }
        total += b - a < most ? b - a : most;
    }
    return total;
}

double loom_corpus_bleu(const loom_tokens *hyps, const loom_tokens *const *refs, const int *n_refs, int n, int max_n)
{
    if (!hyps || !refs || !n_refs || n < 1 || max_n < 1) return 0.0;
    int longest = 0, most_refs = 0;
    for (int i = 0; i < n; i++) {
        if (hyps[i].len < 0 || n_refs[i] < 1 || !refs[i] || (hyps[i].len && !hyps[i].tok)) return 0.0;
        longest = hyps[i].len > longest ? hyps[i].len : longest;
        most_refs = n_refs[i] > most_refs ? n_refs[i] : most_refs;
        for (int r = 0; r < n_refs[i]; r++) {
            if (refs[i][r].len < 0 || (refs[i][r].len && !refs[i][r].tok)) return 0.0;
            longest = refs[i][r].len > longest ? refs[i][r].len : longest;
        }
    }
    int row = longest + 1, *scratch = malloc(((size_t)most_refs + 1) * (size_t)row * sizeof *scratch);
    int64_t *match = calloc((size_t)max_n, sizeof *match), *count = calloc((size_t)max_n, sizeof *count);
    if (!scratch || !match || !count) {
        free(scratch), free(match), free(count);
        return NAN;
    }
    int64_t c = 0, r = 0;
    for (int i = 0; i < n; i++) {
        loom_tokens h = hyps[i];
        int closest = refs[i][0].len; /* the closest reference length, the shorter on a tie */
        for (int k = 1; k < n_refs[i]; k++) {
            int d = abs(refs[i][k].len - h.len), e = abs(closest - h.len);
            if (d < e || (d == e && refs[i][k].len < closest)) closest = refs[i][k].len;
        }
        c += h.len, r += closest;
        for (int g = 1; g <= max_n; g++) {
            match[g - 1] += clipped(h, refs[i], n_refs[i], g, scratch, row);
            count[g - 1] += h.len - g + 1 > 1 ? h.len - g + 1 : 1; /* as NLTK: at least one per sentence */
        }
    }
    double log_sum = 0.0;
    bool zero = c == 0;
    for (int g = 0; g < max_n && !zero; g++) {
        zero = match[g] == 0;
        if (!zero) log_sum += log((double)match[g] / (double)count[g]) / max_n;
    }
    free(scratch), free(match), free(count);
    if (zero) return 0.0;
    double bp = c > r ? 1.0 : exp(1.0 - (double)r / (double)c);
    return bp * exp(log_sum);
}

double loom_sentence_bleu(loom_tokens hyp, const loom_tokens *refs, int n_refs, int max_n)
{
    return loom_corpus_bleu(&hyp, &refs, &n_refs, 1, max_n);
}

double loom_bleu_d2l(loom_tokens pred, loom_tokens label, int k)
{
    if (pred.len <= 0 || label.len < 0 || k < 1 || !pred.tok || (label.len && !label.tok)) return 0.0;
    int row = (pred.len > label.len ? pred.len : label.len) + 1, *scratch = malloc(2 * (size_t)row * sizeof *scratch);
    if (!scratch) return NAN;
    double score = exp(fmin(0.0, 1.0 - (double)label.len / pred.len));
    for (int n = 1; n <= k && n <= pred.len; n++)
        score *= pow((double)clipped(pred, &label, 1, n, scratch, row) / (pred.len - n + 1), pow(0.5, n));
    free(scratch);
    return score;
}
