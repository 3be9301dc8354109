/* loom/embed.h — word embeddings: word2vec (skip-gram and CBOW with
 * negative sampling, Mikolov et al. 2013) as a loom graph trained by the
 * trainer, nearest neighbours and analogies by cosine, t-SNE pictures, and
 * the word2vec text format.
 *
 * Training data is drawn from (seed, step) alone, as the synthetic tasks'
 * is, so a run resumes bit for bit: each batch picks B centre positions
 * of the text at random, keeps a word of frequency f with Mikolov's
 * subsampling probability min(1, (√(f/t) + 1)·t/f), shrinks the window to
 * b ~ U{1..window} as word2vec does, and draws `negatives` noise words per
 * example from the unigram distribution raised to 0.75 (never the word to
 * predict).
 *   skip-gram: the centre word's vector predicts one context word at
 *              distance ≤ b;
 *   CBOW:      the mean of the context words' vectors (up to 2·window of
 *              them, those within b) predicts the centre word;
 * loss = mean over the batch of −log σ(u_o·v) − Σ_k log σ(−u_k·v), v the
 * input vector, u_o the output vector of the word to predict, u_k the noise
 * words'. Parameters: embedding.weight (V, E), U(−0.5/E, 0.5/E), the word
 * vectors; output.weight (V, E), zeros (word2vec's syn0 and syn1neg).
 */
#ifndef LOOM_EMBED_H
#define LOOM_EMBED_H

#include "loom/data.h"
#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOOM_W2V_SKIPGRAM = 0, LOOM_W2V_CBOW } loom_w2v_kind;

typedef struct {
    loom_w2v_kind kind;
    int vocab, dim;   /* words (the vocabulary's size, <unk> included) and vector size */
    int window;       /* the widest context: distance ≤ window (default 5) */
    int negatives;    /* noise words per example (default 5) */
    int batch;        /* examples per step (default 256) */
    double subsample; /* t (default 1e-3; 0: every word kept) */
} loom_w2v_opts;

/* The model: inputs and loss. skip-gram: in i32 (B) the centre words;
 * CBOW: in i32 (B, 2·window) the context words and in_mask f32 (B,
 * 2·window), 1 where a slot holds one; out i32 (B, 1 + negatives): the
 * word to predict, then the noise words. */
typedef struct {
    loom_w2v_opts o;
    loom_tensor in, in_mask, out;
    loom_tensor embedding, output; /* the parameters */
    loom_tensor loss;
} loom_w2v;

/* Builds the model into g; errors go to the graph. */
loom_status loom_w2v_build(loom_graph *g, loom_w2v *m, const loom_w2v_opts *o);

/* The text as word2vec trains on it: the ids of a tokenised text without
 * the words its vocabulary maps to <unk> (rarer than min_freq), and the
 * tables its batches are drawn from. NULL when out of memory or when fewer
 * than 2 words are left (err says which). */
typedef struct loom_w2v_data loom_w2v_data;
loom_w2v_data *loom_w2v_data_new(const int32_t *ids, int64_t n, const loom_vocab *v, const loom_w2v_opts *o, loom_error *err);
void loom_w2v_data_free(loom_w2v_data *d);
/* Words the batches draw from (the text less <unk>). */
int64_t loom_w2v_data_words(const loom_w2v_data *d);
/* The batch of step `step` of a run seeded `seed`, into the buffers bound
 * to m's inputs: in (B or B × 2·window i32), in_mask (CBOW: B × 2·window
 * f32; else may be NULL), out (B × (1 + negatives) i32). */
void loom_w2v_batch(const loom_w2v_data *d, const loom_w2v_opts *o, uint64_t seed, int64_t step, int32_t *in, float *in_mask,
                    int32_t *out);

/* ---- using embeddings: any (V, E) matrix of word vectors ---- */

/* The k words whose vectors are nearest to q (E floats) by cosine,
 * likeliest first, skipping the ids in skip[0..n_skip) and <unk>: ids
 * and similarities (each k long; fewer when V is small — the count is
 * returned). */
int loom_embed_nearest(const float *vectors, int V, int E, const float *q, int k, const int32_t *skip, int n_skip, int32_t *ids,
                       float *sims);
/* The analogy a : b :: c : ? (Mikolov's 3CosAdd): the words nearest to
 * b − a + c (each unit-normalised first), a, b and c excluded; returns the
 * count written. */
int loom_embed_analogy(const float *vectors, int V, int E, int32_t a, int32_t b, int32_t c, int k, int32_t *ids, float *sims);
/* The word vectors of a checkpoint (or safetensors file): its
 * "embedding.weight" (V, E) and the vocabulary naming its rows (loom.vocab,
 * else loom.src_vocab) — a word2vec model's, a language model's, a
 * classifier's. *v and *vectors are the caller's to free
 * (loom_vocab_free, free). */
loom_status loom_embed_load(const char *path, loom_vocab **v, float **vectors, int *V, int *E, loom_error *err);
/* The word2vec text format: "V E", then per word "word v1 … vE" (words
 * with a space inside written with '_' for it; <unk> and the other
 * specials left out). Written atomically. */
loom_status loom_embed_save_word2vec(const char *path, const loom_vocab *v, const float *vectors, int V, int E, loom_error *err);

/* ---- t-SNE (van der Maaten & Hinton 2008), exact, for n ≤ LOOM_TSNE_MAX points ---- */

#define LOOM_TSNE_MAX 5000
typedef struct {
    double perplexity; /* default 30 (less when n is small: at most (n − 1)/3) */
    int iterations;    /* default 1000 */
    double learning_rate; /* default max(n / 12 / 4, 50) as openTSNE/sklearn's "auto" */
    uint64_t seed;
} loom_tsne_opts;
/* Y (n × 2) from X (n × d): Gaussian affinities matched to the perplexity
 * by bisection, symmetrised; Student-t similarities in the map; gradient
 * descent with momentum 0.5 then 0.8, early exaggeration 12 for the first
 * 250 iterations, per-parameter gains. LOOM_ERR_ARG for n < 2 or n >
 * LOOM_TSNE_MAX; *kl (may be NULL): the final KL(P‖Q). */
loom_status loom_tsne(const float *X, int n, int d, const loom_tsne_opts *o, float *Y, double *kl);

/* A t-SNE map of the `words` most frequent words of v (past its specials;
 * fewer when it has fewer) drawn with labels into path (.svg or .png;
 * loom_plot_points), titled "TITLE: t-SNE of the N most frequent words";
 * *mapped (may be NULL) the N, *kl (may be NULL) the map's KL(P‖Q). */
loom_status loom_embed_plot_tsne(const float *vectors, const loom_vocab *v, int E, int words, double perplexity, const char *title,
                                 const char *path, int *mapped, double *kl, loom_error *err);

#ifdef __cplusplus
}
#endif
#endif
