/* loom/layers.h — layers named as PyTorch's modules, losses, and a
 * language model any cell plugs into.
 *
 * Parameter names follow torch.nn: "<name>.weight", "<name>.bias", with
 * PyTorch's default initialisers, so a PyTorch module's state_dict loads
 * by name (loom_store_load).
 */
#ifndef LOOM_LAYERS_H
#define LOOM_LAYERS_H

#include "loom/graph.h"
#include "loom/ops.h"
#include "loom/rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* torch.nn.Embedding(vocab, dim): "<name>.weight" (vocab, dim) ~ N(0, 1);
 * ids (any shape, i32) → ids.shape + (dim). */
loom_tensor loom_embedding(loom_graph *g, const char *name, loom_tensor ids, int vocab, int dim);
/* torch.nn.Linear(in, out): "<name>.weight" (out, in) and "<name>.bias" (out)
 * ~ U(−1/√in, 1/√in); x (..., in) → x Wᵀ + b (..., out). */
loom_tensor loom_linear(loom_graph *g, const char *name, loom_tensor x, int out_features);
/* torch.nn.Linear's parameters made once, to apply in many places (each
 * step of a decoder): "<name>.weight" (out, in), and "<name>.bias" (out)
 * unless bias is false (Linear(bias=False)); loom_linear is one of each. */
typedef struct {
    loom_tensor weight, bias; /* bias LOOM_INVALID: none */
} loom_dense;
loom_dense loom_dense_new(loom_graph *g, const char *name, int in_features, int out_features, bool bias);
/* x (..., in) → x Wᵀ + b (..., out). */
loom_tensor loom_dense_apply(loom_graph *g, loom_dense d, loom_tensor x);
/* Mean squared error over every element (torch.nn.MSELoss). */
loom_tensor loom_mse(loom_graph *g, loom_tensor pred, loom_tensor target);

/* Many-to-one: one vector per sequence from a stack's run r (B, dirs·out):
 *   LOOM_POOL_LAST: the top layer's final h of each direction, [forward;
 *                   reverse] — the forward one at each sequence's last
 *                   valid step, the reverse one after reading step 0
 *                   (PyTorch's h_n[-2:] of a bidirectional layer);
 *   LOOM_POOL_MEAN: the stack's outputs averaged over each sequence's
 *                   valid steps.
 * lengths: i32 (B), the one r was unrolled with, or LOOM_INVALID (all T). */
typedef enum { LOOM_POOL_LAST = 0, LOOM_POOL_MEAN } loom_pool;
loom_tensor loom_rnn_pool(loom_graph *g, const loom_rnn *rnn, const loom_rnn_out *r, loom_tensor lengths, loom_pool pool);

/* Sampled softmax (Jean et al. 2015; TF's sampled_softmax_loss): the
 * cross-entropy of a decoder over a large vocabulary estimated from the
 * target and K classes drawn per step from the log-uniform (Zipfian)
 * distribution P(c) = log((c + 2)/(c + 1)) / log(V + 1) — for a
 * vocabulary in frequency order, about how often words occur — with
 * replacement: logits [h·w_y + b_y − log Q(y), h·w_s + b_s − log Q(s)],
 * Q the expected count K·P, samples equal to a row's target removed, the
 * target in column 0. Training only: evaluate with the full softmax.
 * The draw is inputs the trainer fills before each step
 * (loom_trainer_opts.sampled; loom_sampled_draw). */
typedef struct {
    int k, vocab, rows;
    loom_tensor sampled;      /* i32 (K) */
    loom_tensor sampled_logq; /* f32 (1, K) */
    loom_tensor target_logq;  /* f32 (N, 1) */
    loom_tensor hits;         /* f32 (N, K): −1e9 where sample k is row n's target, else 0 */
} loom_sampled;
/* The mean loss over the N rows of h (..., H) and targets (...) i32, for
 * the decoder dec (weight (V, H), bias (V) or none); s receives the inputs. */
loom_tensor loom_sampled_softmax(loom_graph *g, loom_dense dec, loom_tensor h, loom_tensor targets, int k, loom_sampled *s);
/* The draw of step `step` of a run seeded `seed` for targets (N ids) into
 * the buffers bound to s's inputs. */
void loom_sampled_draw(const loom_sampled *s, uint64_t seed, int64_t step, const int32_t *targets, int32_t *sampled,
                       float *sampled_logq, float *target_logq, float *hits);

/* A language model: tokens → one-hot (embed = 0) or embedding → recurrent
 * layers of any cell → linear decoder → mean cross-entropy over all T·B
 * positions. Names as a PyTorch module with fields `embedding`, `rnn`,
 * `decoder`: embedding.weight, rnn.weight_ih_l0, ..., decoder.weight,
 * decoder.bias. */
typedef struct {
    const loom_cell_def *cell;
    int vocab, embed, hidden, layers;
    loom_stacking stacking; /* how the layers join (loom/rnn.h) */
    /* The decoder's weight is the embedding's (Press & Wolf 2017; Inan et
     * al. 2017): logits = y Eᵀ + decoder.bias, no decoder.weight; needs
     * embed = hidden. */
    bool tie_weights;
    /* Regularisation (AWD-LSTM's, Merity et al. 2018), training plans only:
     * variational: the dropout on the embedding, between layers and before
     * the decoder draws one mask per sequence for every step; the stack's
     * state_dropout, weight_drop and zoneout (loom_rnn_opts); dropout_embed:
     * whole words dropped from the embedding matrix (a row's mask shared
     * wherever the word occurs in the batch; Gal & Ghahramani 2016). */
    bool variational;
    float state_dropout, weight_drop, zoneout, dropout_embed;
    float dropout;        /* between layers, on the embedding and before the decoder; training plans only */
    int steps, batch;
    uint64_t seed;        /* dropout; a random truncation's draw without trunc_xi */
    /* Truncated BPTT inside a window (loom_rnn_args): FIXED cuts every
     * `truncate` steps; RANDOM cuts at random, `truncate` steps apart on
     * average, reweighted so that the expected gradient is the full one,
     * with the weights in the input trunc_xi (loom_trunc_draw; the trainer
     * fills it given loom_trainer_opts.trunc_xi). */
    loom_trunc trunc;
    int truncate;
    /* Train on a sampled softmax of this many classes per step (0: the
     * full softmax); the loss stays the full one, train_loss is the
     * sampled estimate. */
    int sampled_softmax;
    bool unit_forget_bias; /* an LSTM's forget gates start at bias 1 (loom_rnn_opts) */
} loom_lm_opts;

typedef struct {
    loom_lm_opts o;
    loom_rnn rnn;
    loom_tensor tokens, targets;           /* i32 (T, B) inputs */
    loom_tensor init[LOOM_CELL_MAX_STATES]; /* (layers, B, H) initial states (inputs) */
    loom_tensor trunc_xi;                  /* f32 (T) input: random truncation's weights (else invalid) */
    loom_rnn_out out;
    loom_tensor logits;                    /* (T, B, vocab) */
    loom_tensor loss;                      /* mean cross-entropy; perplexity = exp(loss) */
    loom_tensor train_loss;                /* what training minimises: loss, or the sampled softmax's */
    loom_sampled sampled;                  /* with sampled_softmax */
} loom_lm;

/* Builds the model into g; errors go to the graph. */
loom_status loom_lm_build(loom_graph *g, loom_lm *lm, const loom_lm_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
