/* loom/seq2seq.h — encoder–decoder models for any cell: the training graph
 * (teacher forcing, optionally scheduled sampling, masked loss) and the
 * graph that decodes step by step.
 *
 * The encoder embeds the source and runs a recurrent stack over it (any
 * cell, layers, dropout between layers, one or two directions) with the
 * sources' valid lengths. The decoder starts from the encoder's final
 * states (a bidirectional encoder's two directions joined by a linear layer
 * and tanh, per state: "bridge.<s>"), and at step t reads the embedding of
 * the previous target token joined with a context vector:
 *   no attention: the encoder's top-layer final state, the same every step
 *                 (d2l's Seq2SeqDecoder);
 *   additive:     Bahdanau: score_j = w_vᵀ tanh(W_q q + W_k k_j);
 *   plain:        the plain dot product score_j = qᵀ k_j (Luong's "dot":
 *                 unscaled, no W_k; the encoder's outputs as wide as q, so
 *                 a unidirectional encoder);
 *   dot:          scaled dot product of q with the projected keys,
 *                 score_j = qᵀ W_k k_j / √H (Luong's "general" score);
 * where q is the decoder's top-layer state before the step (d2l's
 * Seq2SeqAttentionDecoder) and k_j the encoder's outputs; the weights are a
 * softmax over the source positions, padding masked out (weight exactly 0),
 * and the context is Σ_j weight_j k_j. The top layer's output goes through
 * a linear layer to the target vocabulary.
 *
 * Parameter names are those of a PyTorch module of this shape:
 * encoder.embedding.weight, encoder.rnn.weight_ih_l0, …, bridge.0.weight,
 * decoder.embedding.weight, decoder.attention.W_q.weight,
 * decoder.attention.W_k.weight, decoder.attention.w_v.weight,
 * decoder.rnn.weight_ih_l0, …, decoder.dense.weight, decoder.dense.bias.
 */
#ifndef LOOM_SEQ2SEQ_H
#define LOOM_SEQ2SEQ_H

#include "loom/layers.h"
#include "loom/search.h"
#include "loom/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOOM_ATTN_NONE = 0, LOOM_ATTN_ADDITIVE, LOOM_ATTN_DOT, LOOM_ATTN_PLAIN } loom_attention;

typedef struct {
    const loom_cell_def *cell;
    int src_vocab, tgt_vocab;
    int embed, hidden, layers;  /* hidden the same on both sides; layers the encoder's (default 1) */
    /* The decoder's layers (0: as many as the encoder's; Britz et al. 2017
     * used 2–4 and 4). Decoder layer l starts from the encoder's final state
     * of layer l − (dec_layers − layers): the top layers line up; a decoder
     * deeper than its encoder starts its extra bottom layers at zero. */
    int dec_layers;
    loom_stacking stacking;     /* how the layers of each side join (loom/rnn.h) */
    bool bidirectional;         /* the encoder */
    float dropout;              /* between recurrent layers, training plans only */
    loom_attention attention;
    int src_steps, tgt_steps;   /* padded lengths */
    int batch;                  /* sentences */
    /* Scheduled sampling: the training graph takes an input `gold`, and
     * step t > 0 reads the gold token where gold[t, b] is 1 and the
     * model's own previous choice (argmax) where it is 0. */
    bool sampled;
    uint64_t seed;              /* dropout */
} loom_seq2seq_opts;

#define LOOM_SEQ2SEQ_MAX_STEPS 1024

typedef struct {
    loom_seq2seq_opts o;
    loom_rnn enc, dec;
    int S, K;                   /* cell states; width of the encoder's outputs (dirs · hidden) */
    /* parameters other than the stacks' */
    loom_tensor src_table, tgt_table;
    loom_dense bridge[LOOM_CELL_MAX_STATES], W_q, W_k, w_v, dense;

    /* ---- the training graph (loom_seq2seq_build) ---- */
    loom_tensor src, src_len;   /* i32 (Ts, B), (B): tokens, valid lengths (1..Ts) */
    loom_tensor dec_in;         /* i32 (Tt, B): <bos> then the target shifted right (teacher forcing) */
    loom_tensor tgt, tgt_len;   /* i32 (Tt, B), (B) */
    loom_tensor gold;           /* f32 (Tt, B), `sampled` only */
    loom_tensor logits;         /* (Tt, B, tgt_vocab) */
    loom_tensor attention;      /* (Tt, B, Ts): each step's weights (attention only) */
    loom_tensor loss;           /* mean cross-entropy over the valid target positions */

    /* ---- the decoding graph (loom_seq2seq_build_decoder) ---- */
    /* the encoder over `batch` sentences (src, src_len as above): */
    loom_tensor memory;         /* (B, Ts, K) the encoder's outputs */
    loom_tensor keys;           /* (B, Ts, ·) memory projected for the attention's score */
    loom_tensor init[LOOM_CELL_MAX_STATES]; /* (dec_layers, B, H) the decoder's first states */
    loom_tensor context;        /* (B, H) no attention: the fixed context */
    /* one decoder step over `rows` rows (a row: a sentence's hypothesis): */
    loom_tensor prev;           /* i32 (R) the token each row read last */
    loom_tensor state_in[LOOM_CELL_MAX_STATES]; /* (dec_layers, R, H) */
    loom_tensor memory_in, keys_in, context_in; /* each row's sentence's memory, keys, context */
    loom_tensor len_in;         /* i32 (R) each row's source length */
    loom_tensor log_probs;      /* (R, tgt_vocab) of the next token */
    loom_tensor state_out[LOOM_CELL_MAX_STATES]; /* (dec_layers, R, H) */
    loom_tensor step_attention; /* (R, Ts) */
} loom_seq2seq;

/* Builds the training graph into g (errors go to the graph). */
loom_status loom_seq2seq_build(loom_graph *g, loom_seq2seq *m, const loom_seq2seq_opts *opts);
/* Builds the encoder over opts->batch sentences and one decoder step over
 * `rows` rows into g (tgt_steps and sampled are not used). */
loom_status loom_seq2seq_build_decoder(loom_graph *g, loom_seq2seq *m, const loom_seq2seq_opts *opts, int rows);

/* A trained model translating: its decoding graph (the encoder over a batch
 * of sentences, one decoder step over batch · beam rows) reading the weights
 * of `weights` by name (the store must outlive it). NULL with the reason in
 * err (which may be NULL). */
typedef struct loom_translator loom_translator;
loom_translator *loom_translator_new(const loom_seq2seq_opts *model, const loom_store *weights, int beam, loom_error *err);
void loom_translator_free(loom_translator *t);
/* Translates n sentences (from <bos> to <eos>: loom_pairs' LOOM_BOS and
 * LOOM_EOS), src n × src_steps tokens (each padded with <pad>
 * after its <eos>) and their lengths; out, len, score as loom_search's;
 * attention (may be NULL): n × max_len × src_steps, the weights of each
 * output token and of the <eos> that ended the output (attention models;
 * zeros elsewhere). opts->beam must not
 * exceed the translator's. */
loom_status loom_translate(loom_translator *t, const int32_t *src, const int32_t *src_len, int n,
                           const loom_search_opts *opts, int32_t *out, int32_t *len, double *score, float *attention,
                           loom_error *err);

struct loom_pairs;
/* The first n pairs of a part of p (pairs read with the model's
 * vocabularies), translated with opts: corpus BLEU-4 against each pair's
 * target (its tokens before <eos>; all of them when it was cut) and the
 * share translated exactly. The reason in err otherwise. */
loom_status loom_translate_score(loom_translator *t, const struct loom_pairs *p, bool valid, int64_t n,
                                 const loom_search_opts *opts, double *bleu, double *exact, loom_error *err);
/* The teacher-forced model's perplexity per target token over every pair
 * of a part of p (exp of the mean − log p of each target token, <eos>
 * included), with the weights of `weights` by name. */
loom_status loom_seq2seq_perplexity(const loom_seq2seq_opts *model, const loom_store *weights, const struct loom_pairs *p,
                                    bool valid, double *ppl, loom_error *err);

/* A trained model on one sentence, to look inside (the page of `loom dot
 * --load` of an encoder–decoder): the sentence translated greedily, then the
 * training graph over it (batch 1, teacher forcing, no dropout) with the
 * model's own translation and <eos> as its target — the decoder reads what
 * it chose, so the graph's attention weights are the translation's — and
 * every input and parameter bound (the weights by name from `weights`,
 * which must outlive the probe). src: src_steps ids, its valid length
 * src_len (<eos> included, as loom_pairs_encode gives). */
typedef struct {
    loom_graph *g;
    loom_seq2seq m;            /* its inputs, loss and attention (tgt_steps, 1, src_steps) */
    const loom_binding *binds; /* every input and parameter */
    int n_binds;
    int src_len, tgt_len;      /* the valid lengths: the sentence's, the target's (≤ tgt_steps) */
    const int32_t *src, *tgt;  /* src_steps and tgt_steps ids: the sentence, the translation then <eos> */
    int32_t *buf;
    loom_binding *own;
} loom_seq2seq_probe;
loom_status loom_seq2seq_probe_open(loom_seq2seq_probe *p, const loom_seq2seq_opts *model, const loom_store *weights,
                                    const int32_t *src, int src_len, loom_error *err);
void loom_seq2seq_probe_close(loom_seq2seq_probe *p);
/* Sentence b's attention weights on one run of a training graph (its
 * attention (tgt_steps, batch, src_steps); binds as loom_node_values takes
 * them): out[i · cols + j], the weight of decoder step i on source position
 * j, for the first rows steps and cols positions. Errors also go to the graph. */
loom_status loom_seq2seq_attention_weights(loom_graph *g, const loom_seq2seq *m, const loom_binding *binds, int n_binds, int b,
                                           int rows, int cols, float *out);

#ifdef __cplusplus
}
#endif
#endif
