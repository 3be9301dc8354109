/* loom/ngram.h — n-gram statistics of a token stream (d2l 8.3): how often
 * every k-gram occurs up to an order, the most frequent ones, Zipf's law
 * fitted to them, and the n-gram language model with Laplace smoothing —
 * the perplexity a recurrent language model must beat.
 *
 * Laplace smoothing as d2l writes it, with a prior of the next shorter
 * context (m: the vocabulary's size, N: the number of tokens):
 *   P(x)                = (n(x) + ε/m) / (N + ε)
 *   P(x | c₁ … c_{k−1}) = (n(c₁ … c_{k−1} x) + ε · P(x | c₂ … c_{k−1})) / (Σ_y n(c₁ … c_{k−1} y) + ε)
 * Each is a distribution over the vocabulary (it sums to 1), and no token
 * has probability 0: an unseen context falls back to its prior. */
#ifndef LOOM_NGRAM_H
#define LOOM_NGRAM_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_NGRAM_MAX_ORDER 8

typedef struct loom_ngrams loom_ngrams;

/* Counts every k-gram, k = 1 … order, of ids[0..n) (ids in [0, vocab)).
 * NULL with the reason in err (bad arguments, out of memory). */
loom_ngrams *loom_ngrams_new(const int32_t *ids, int64_t n, int order, int vocab, loom_error *err);
void loom_ngrams_free(loom_ngrams *g);
int loom_ngrams_order(const loom_ngrams *g);
int loom_ngrams_vocab(const loom_ngrams *g);
/* The k-grams of the text (n − k + 1, or 0) and how many are distinct. */
int64_t loom_ngrams_total(const loom_ngrams *g, int k);
int64_t loom_ngrams_distinct(const loom_ngrams *g, int k);
/* How often gram[0..k) occurs (0 for k outside 1 … order). */
int64_t loom_ngrams_count(const loom_ngrams *g, const int32_t *gram, int k);
/* The k-grams by count, most frequent first (ties: the first to occur
 * first): up to max of them, the i-th at grams[i·k …] with its count
 * counts[i] (either may be NULL). Returns how many were written. */
int64_t loom_ngrams_top(const loom_ngrams *g, int k, int64_t max, int32_t *grams, int64_t *counts);
/* Zipf's law for the k-grams: log₁₀ count ≈ log₁₀ c − s · log₁₀ rank,
 * fitted by least squares over the ranks lo … hi (1-based; hi 0 or past
 * the distinct k-grams: all of them). LOOM_ERR_ARG with fewer than 2
 * ranks. */
loom_status loom_ngrams_zipf(const loom_ngrams *g, int k, int64_t lo, int64_t hi, double *s, double *c);
/* P(x | context[0..k)) of the order-(k + 1) model (k < order), smoothed
 * with eps > 0. */
double loom_ngrams_prob(const loom_ngrams *g, const int32_t *context, int k, int32_t x, double eps);
/* The order-k model's perplexity per token over ids[0..n) (each token
 * predicted from up to k − 1 tokens before it, the first ones from what
 * there is): exp of the mean −log P. NaN for bad arguments. */
double loom_ngrams_perplexity(const loom_ngrams *g, int k, double eps, const int32_t *ids, int64_t n);
/* The ε of 10⁻³, 10⁻², …, 10⁵ under which the order-k model counted on the
 * first nine tenths of ids[0..n) has the lowest perplexity on the last
 * tenth: a choice made on the text the model is counted on, never on the
 * text it is scored on. NaN with the reason in err (fewer than 10 tokens,
 * bad arguments, out of memory). */
double loom_ngrams_choose_eps(const int32_t *ids, int64_t n, int k, int vocab, loom_error *err);
/* The n-gram baseline: the models of order 1 … order counted on
 * train[0..n_train), each scored on ids[0..n): ppl[k − 1] the order-k
 * model's perplexity, eps_used[k − 1] its ε — eps when > 0, else chosen by
 * loom_ngrams_choose_eps on the counted text (never on the scored one). The
 * reason of a failure in err. */
loom_status loom_ngrams_baseline(const int32_t *train, int64_t n_train, int vocab, int order, double eps, const int32_t *ids,
                                 int64_t n, double *ppl, double *eps_used, loom_error *err);

#ifdef __cplusplus
}
#endif
#endif
