/* loom/generate.h — text from a trained language model after a prefix
 * that warms the state up, chosen by loom_search (loom/search.h): greedy,
 * sampling with temperature, top-k and top-p (nucleus), or beam search. */
#ifndef LOOM_GENERATE_H
#define LOOM_GENERATE_H

#include "loom/layers.h"
#include "loom/search.h"
#include "loom/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_generator loom_generator;

/* A one-step model of the same shape as `model` (steps and batch are set
 * to 1), reading the weights of `weights` by name (the store must outlive
 * the generator). NULL with the reason in err (which may be NULL). */
loom_generator *loom_generator_new(const loom_lm_opts *model, const loom_store *weights, loom_error *err);
void loom_generator_free(loom_generator *g);
/* Feeds the n prefix tokens (n ≥ 1), then produces `length` tokens into out
 * (which holds length) as opts say (NULL: greedy; its max_len is length);
 * returns how many were written, or −1 (message in err). */
int64_t loom_generate(loom_generator *g, const int32_t *prefix, int64_t n, int64_t length, const loom_search_opts *opts,
                      int32_t *out, loom_error *err);

#ifdef __cplusplus
}
#endif
#endif
