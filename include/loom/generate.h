/* loom/generate.h — text from a trained language model: greedy, sampling
 * with temperature, top-k and top-p (nucleus), and beam search, after a
 * prefix that warms the state up. */
#ifndef LOOM_GENERATE_H
#define LOOM_GENERATE_H

#include "loom/layers.h"
#include "loom/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double temperature;   /* 0: greedy (argmax); else sample from softmax(logits / T) */
    int top_k;            /* sample among the k most likely tokens only (0: all) */
    double top_p;         /* ... among the smallest set whose probability reaches p (0 or 1: all) */
    int beam;             /* > 1: beam search of this width (temperature, top-k/p unused) */
    double length_norm;   /* beam search: scores are log p / length^α (α = length_norm; 0: none) */
    uint64_t seed;
} loom_sample_opts;

typedef struct loom_generator loom_generator;

/* A one-step model of the same shape as `model` (steps and batch are set
 * to 1), reading the weights of `weights` by name (the store must outlive
 * the generator). NULL with a message in *err (static text, or the graph's). */
loom_generator *loom_generator_new(const loom_lm_opts *model, const loom_store *weights, char *err, size_t err_len);
void loom_generator_free(loom_generator *g);
/* Feeds the n prefix tokens (n ≥ 1), then produces `length` tokens into out
 * (which holds length); returns how many were written, or −1 (message in
 * err). */
int64_t loom_generate(loom_generator *g, const int32_t *prefix, int64_t n, int64_t length, const loom_sample_opts *o,
                      int32_t *out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
