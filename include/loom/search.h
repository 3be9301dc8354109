/* loom/search.h — decoding a sequence token by token, the one decoder
 * behind an encoder–decoder's translations (loom_translate) and a
 * language model's text (loom_generate): greedy, sampling (temperature,
 * top-k, top-p) and beam search (length normalisation). */
#ifndef LOOM_SEARCH_H
#define LOOM_SEARCH_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The first sentence's search as a tree (a picture of beam search, d2l
 * 9.8): at each step, the continuations it weighed — the 2·beam likeliest of
 * its live hypotheses' — and what became of each: kept for the next step,
 * finished (its <eos>), or pruned. */
typedef enum { LOOM_CAND_KEPT = 0, LOOM_CAND_FINISHED, LOOM_CAND_PRUNED } loom_cand_fate;
typedef struct {
    int step;      /* the token's position: 0, 1, … */
    int parent;    /* the node it continues (an index into nodes), −1: it follows <bos> */
    int32_t token;
    double score;  /* log p of the hypothesis up to and with this token */
    loom_cand_fate fate;
} loom_search_node;
typedef struct {
    loom_search_node *nodes; /* the caller's, room for cap */
    int cap;
    int n;                   /* nodes the search made (written up to cap) */
    int best;                /* the winning hypothesis' last node (its <eos>, or its last token); −1: none */
} loom_search_tree;

typedef struct {
    int beam;            /* hypotheses kept per sentence (default 1: greedy, or sampling) */
    double temperature;  /* beam 1: 0 picks the likeliest token; > 0 samples from softmax(log p / T) */
    int top_k;           /* sampling: among the k likeliest tokens only (0: all) */
    double top_p;        /* sampling: among the fewest likeliest tokens whose probability reaches p (0 or 1: all) */
    double length_norm;  /* a finished hypothesis scores log p / length^α, α = length_norm (0: none) */
    int max_len;         /* tokens at most, <eos> included (default 50; loom_generate: its length) */
    uint64_t seed;       /* sampling */
    loom_search_tree *tree; /* the first sentence's tree (may be NULL) */
    /* Beam search's coverage penalty (Wu et al. 2016, GNMT): a finished
     * hypothesis also scores β Σ_i log min(Σ_t a_ti, 1) over the valid
     * positions i of its source, a_ti the attention step t paid to i — a
     * translation that leaves source words unattended loses. β = coverage
     * (0: none); the attention comes from `attention` (ctx's, R × src_steps
     * weights of the step just run), src_len the n sentences' valid lengths. */
    double coverage;
    const float *(*attention)(void *ctx);
    int src_steps;
    const int32_t *src_len;
    /* Exhaustive search (d2l 9.8.2): every sequence of up to max_len
     * tokens is scored and the likeliest wins — beam search with nothing
     * pruned, so beam must hold every unfinished hypothesis of the last
     * step, (V − 1)^(max_len − 1) (loom_search_exhaustive_beam); the cost
     * grows as V^max_len. */
    bool exhaustive;
} loom_search_opts;

/* The beam an exhaustive search over V tokens (<eos> among them) and
 * max_len steps needs, or −1 past 1024 rows. */
int loom_search_exhaustive_beam(int V, int max_len);

/* A decoder the search drives: step t (0, 1, …) of n·beam rows, row
 * r = sentence·beam + k. Row r continues the hypothesis that row parent[r]
 * held at the previous step (parent is NULL at step 0, where every row
 * starts from its sentence's first state) and reads token tokens[r]; the
 * step writes the log-probabilities of the next token, rows × V. A
 * non-zero status stops the search. */
typedef loom_status (*loom_search_step)(void *ctx, int t, const int32_t *tokens, const int32_t *parent, float *log_probs);

/* Greedy decoding, sampling, or beam search for n sentences at once, from
 * `bos` until `eos` or max_len tokens. Beam search keeps the beam likeliest
 * unfinished hypotheses; a hypothesis whose <eos> ranks among the beam best
 * continuations is finished, and a sentence is done when none can still
 * beat the best finished one (without length normalisation), or when beam
 * hypotheses are finished and the worst of them scores above the best
 * unfinished one. The best finished hypothesis wins (by its normalised
 * score). out: n × max_len
 * tokens (<eos> not included), len: n lengths, score: n normalised log
 * probabilities (may be NULL), rows: n × max_len, the row whose step made
 * each token, <eos> included, −1 past it (may be NULL; to follow a
 * hypothesis' attention). */
loom_status loom_search(int n, int vocab, int32_t bos, int32_t eos, const loom_search_opts *opts, loom_search_step step,
                        void *ctx, int32_t *out, int32_t *len, double *score, int32_t *rows);

#ifdef __cplusplus
}
#endif
#endif
