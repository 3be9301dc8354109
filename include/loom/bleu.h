/* loom/bleu.h — BLEU over token sequences (ids from a vocabulary, or any
 * int32 codes): corpus BLEU as Papineni et al. (2002) and NLTK's
 * corpus_bleu define it, sentence BLEU, and the variant the d2l book uses
 * for its translation examples. */
#ifndef LOOM_BLEU_H
#define LOOM_BLEU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const int32_t *tok;
    int len;
} loom_tokens;

/* Corpus BLEU-N of n hypotheses, hypothesis i against its n_refs[i]
 * references refs[i][0..n_refs[i]): modified n-gram precisions for
 * n = 1..max_n (each hypothesis n-gram counts at most as often as it
 * occurs in one reference), numerators and denominators summed over the
 * corpus (as NLTK counts them: a hypothesis shorter than n adds one
 * n-gram that matches nothing); their geometric mean with uniform weights 1/max_n; times the
 * brevity penalty exp(1 − r/c) when the hypotheses' total length c is not
 * above r, the sum of each hypothesis's closest reference length (the
 * shorter on a tie). In [0, 1]; 0 when any precision is 0 (no smoothing),
 * when there is nothing to score, or for bad arguments (n < 1, max_n < 1,
 * a negative length, a hypothesis without references); NaN when out of
 * memory. */
double loom_corpus_bleu(const loom_tokens *hyps, const loom_tokens *const *refs, const int *n_refs, int n, int max_n);

/* BLEU-N of one hypothesis (the corpus of one sentence). */
double loom_sentence_bleu(loom_tokens hyp, const loom_tokens *refs, int n_refs, int max_n);

/* d2l's BLEU of a prediction against one label:
 * exp(min(0, 1 − len_label/len_pred)) · Π_{n=1..min(k, len_pred)} p_n^(1/2^n),
 * p_n the clipped n-gram matches over len_pred − n + 1 (longer n-grams
 * weigh more). 0 for an empty prediction; NaN when out of memory. */
double loom_bleu_d2l(loom_tokens pred, loom_tokens label, int k);

#ifdef __cplusplus
}
#endif

#endif
