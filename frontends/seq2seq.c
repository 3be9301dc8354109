/* Encoder–decoder graphs (loom/seq2seq.h): the parameters, the encoder,
 * the attention, one decoder step, and the two graphs built from them. */
#include "loom/seq2seq.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Tags of the decoder's nodes: its steps follow the encoder's (a drawing
 * shows the source, then the target, left to right); layer −1 is a step's
 * input row (embedding, attention), `layers` the output layer above the stack. */
static loom_tags dec_tags(loom_graph *g, const loom_seq2seq *m, int t, int layer, const char *label)
{
    return (loom_tags){m->o.src_steps + t, (int16_t)layer, 0, LOOM_ROLE_FORWARD, 0, loom_graph_label(g, label), 0};
}

static bool check_opts(loom_graph *g, const loom_seq2seq_opts *o, int rows)
{
    if (!o || !o->cell || o->src_vocab < 1 || o->tgt_vocab < 1 || o->embed < 1 || o->hidden < 1 || o->layers < 0 ||
        o->layers > LOOM_RNN_MAX_LAYERS || o->dec_layers < 0 || o->dec_layers > LOOM_RNN_MAX_LAYERS ||
        o->src_steps < 1 || o->tgt_steps < 0 || o->tgt_steps > LOOM_SEQ2SEQ_MAX_STEPS || o->batch < 1 || rows < 1 ||
        o->attention < LOOM_ATTN_NONE || o->attention > LOOM_ATTN_PLAIN)
        return !loom_valid(loom_graph_fail(
            g, LOOM_ERR_ARG,
            "seq2seq: needs a cell, vocabularies, embed, hidden, source steps, batch >= 1, target steps in 1..%d, "
            "layers on each side in 0..%d and an attention of none, additive, dot or plain",
            LOOM_SEQ2SEQ_MAX_STEPS, LOOM_RNN_MAX_LAYERS));
    if (o->attention == LOOM_ATTN_PLAIN && o->bidirectional)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG,
                                           "seq2seq: plain dot-product attention scores qᵀk with keys as wide as the query "
                                           "(%d): a bidirectional encoder's are %d wide; use dot (it projects them)",
                                           o->hidden, 2 * o->hidden));
    return true;
}

/* Every parameter, in the order a PyTorch module of this shape lists them. */
static void make_params(loom_graph *g, loom_seq2seq *m)
{
    const loom_seq2seq_opts *o = &m->o;
    int L = o->layers, H = o->hidden, E = o->embed;
    m->S = o->cell->n_states, m->K = (o->bidirectional ? 2 : 1) * H;
    m->src_table = loom_param_init(g, "encoder.embedding.weight", loom_shape2(o->src_vocab, E), LOOM_INIT_NORMAL, 1.0f);
    loom_rnn_init(g, &m->enc, &(loom_rnn_opts){.cell = o->cell, .input_size = E, .hidden_size = H, .layers = L,
                                               .bidirectional = o->bidirectional, .stacking = o->stacking,
                                               .dropout = o->dropout, .seed = o->seed, .prefix = "encoder.rnn."});
    for (int s = 0; o->bidirectional && s < m->S; s++) {
        char nm[32];
        snprintf(nm, sizeof nm, "bridge.%d", s);
        m->bridge[s] = loom_dense_new(g, nm, 2 * H, H, true);
    }
    m->tgt_table = loom_param_init(g, "decoder.embedding.weight", loom_shape2(o->tgt_vocab, E), LOOM_INIT_NORMAL, 1.0f);
    if (o->attention == LOOM_ATTN_ADDITIVE) {
        m->W_q = loom_dense_new(g, "decoder.attention.W_q", H, H, false);
        m->W_k = loom_dense_new(g, "decoder.attention.W_k", m->K, H, false);
        m->w_v = loom_dense_new(g, "decoder.attention.w_v", H, 1, false);
    } else if (o->attention == LOOM_ATTN_DOT) {
        m->W_k = loom_dense_new(g, "decoder.attention.W_k", m->K, H, false);
    }
    int context = o->attention ? m->K : H;
    loom_rnn_init(g, &m->dec, &(loom_rnn_opts){.cell = o->cell, .input_size = E + context, .hidden_size = H, .layers = o->dec_layers,
                                               .stacking = o->stacking, .dropout = o->dropout, .seed = o->seed ^ 0xDEC0DE,
                                               .prefix = "decoder.rnn."});
    m->dense = loom_dense_new(g, "decoder.dense", H, o->tgt_vocab, true);
}

/* The encoder over src (Ts, B) with lengths: memory (B, Ts, K), the keys
 * the attention scores against, the decoder's first states (layers, B, H)
 * and, without attention, the context (B, H). */
static void encode(loom_graph *g, loom_seq2seq *m, loom_tensor *memory, loom_tensor *keys, loom_tensor *init,
                   loom_tensor *context)
{
    const loom_seq2seq_opts *o = &m->o;
    int L = o->layers, H = o->hidden, B = o->batch;
    loom_rnn_out out = loom_rnn_apply(g, &m->enc, loom_gather(g, m->src_table, m->src), &(loom_rnn_args){.lengths = m->src_len});
    loom_tags saved = loom_graph_set_tags(g, LOOM_TAGS_NONE);
    *memory = loom_transpose(g, out.output, (int[]){1, 0, 2});
    *keys = o->attention == LOOM_ATTN_PLAIN ? *memory : o->attention ? loom_dense_apply(g, m->W_k, *memory) : LOOM_INVALID;
    for (int s = 0; s < m->S; s++) {
        init[s] = out.final[s]; /* (L·dirs, B, H), layer-major */
        if (o->bidirectional) { /* tanh(bridge([forward; reverse])) per layer */
            loom_tensor both = loom_transpose(g, loom_reshape(g, init[s], loom_shape4(L, 2, B, H)), (int[]){0, 2, 1, 3});
            init[s] = loom_tanh(g, loom_dense_apply(g, m->bridge[s], loom_reshape(g, both, loom_shape3(L, B, 2 * H))));
        }
    }
    *context = o->attention ? LOOM_INVALID : loom_reshape(g, loom_slice(g, init[0], 0, L - 1, 1), loom_shape2(B, H));
    int D = o->dec_layers;
    for (int s = 0; D != L && s < m->S; s++) { /* decoder layer l from encoder layer l − (D − L), or zeros */
        loom_tensor parts[LOOM_RNN_MAX_LAYERS];
        for (int l = 0; l < D; l++)
            parts[l] = l - (D - L) >= 0 ? loom_slice(g, init[s], 0, l - (D - L), 1) : loom_fill(g, loom_shape3(1, B, H), 0);
        init[s] = loom_concat(g, parts, D, 0);
    }
    loom_graph_set_tags(g, saved);
}

/* The attention of step t: weights (R, Ts) over memory (R, Ts, K) for the
 * query q (R, H), padding (mask (R, Ts) 0) excluded; returns the context
 * (R, K). */
static loom_tensor attend(loom_graph *g, const loom_seq2seq *m, int t, loom_tensor q, loom_tensor memory, loom_tensor keys,
                          loom_tensor mask, loom_tensor *weights)
{
    int R = loom_tensor_shape(g, q).d[0], Ts = m->o.src_steps, H = m->o.hidden;
    loom_tags saved = loom_graph_set_tags(g, dec_tags(g, m, t, -1, "attention"));
    loom_tensor score;
    if (m->o.attention == LOOM_ATTN_ADDITIVE) {
        loom_tensor qp = loom_reshape(g, loom_dense_apply(g, m->W_q, q), loom_shape3(R, 1, H));
        loom_tensor e = loom_tanh(g, loom_add(g, keys, qp)); /* (R, Ts, H) */
        score = loom_reshape(g, loom_dense_apply(g, m->w_v, e), loom_shape2(R, Ts));
    } else { /* qᵀ k_j: scaled by 1/√H with projected keys (dot), as it is (plain) */
        score = loom_reshape(g, loom_matmul(g, keys, loom_reshape(g, q, loom_shape3(R, H, 1)), false, false), loom_shape2(R, Ts));
        if (m->o.attention == LOOM_ATTN_DOT) score = loom_scale(g, score, 1.0f / sqrtf((float)H));
    }
    /* masked softmax: a padded position scores −10⁶, so its weight is exactly 0 */
    score = loom_where(g, mask, score, loom_fill(g, loom_shape2(R, Ts), -1e6f));
    *weights = loom_softmax(g, score);
    char nm[48];
    snprintf(nm, sizeof nm, "attention[%d]", m->o.src_steps + t); /* by its step, as the decoder's x[t] */
    loom_tensor_set_name(g, *weights, nm);
    loom_tensor ctx = loom_matmul(g, loom_reshape(g, *weights, loom_shape3(R, 1, Ts)), memory, false, false);
    ctx = loom_reshape(g, ctx, loom_shape2(R, m->K));
    loom_graph_set_tags(g, saved);
    return ctx;
}

/* Decoder step t over R rows: emb (R, E) the previous token's embedding,
 * state[s][l] replaced by the new states; returns the logits (R, V) and,
 * with attention, the step's weights. */
static loom_tensor decode_step(loom_graph *g, const loom_seq2seq *m, int t, loom_tensor emb,
                               loom_tensor (*state)[LOOM_RNN_MAX_LAYERS], loom_tensor memory, loom_tensor keys,
                               loom_tensor mask, loom_tensor context, loom_tensor *weights)
{
    *weights = LOOM_INVALID;
    if (m->o.attention) context = attend(g, m, t, state[0][m->o.dec_layers - 1], memory, keys, mask, weights);
    loom_tags saved = loom_graph_set_tags(g, dec_tags(g, m, t, -1, m->o.cell->name));
    loom_tensor x = loom_concat(g, (loom_tensor[]){emb, context}, 2, 1);
    char nm[32];
    snprintf(nm, sizeof nm, "x[%d]", m->o.src_steps + t);
    loom_tensor_set_name(g, x, nm);
    loom_tensor y = loom_rnn_step(g, &m->dec, m->o.src_steps + t, x, state);
    loom_graph_set_tags(g, dec_tags(g, m, t, m->o.dec_layers, "dense"));
    loom_tensor logits = loom_dense_apply(g, m->dense, y);
    loom_graph_set_tags(g, saved);
    return logits;
}

/* The layers of a decoder's stacked state (dec_layers, B, H), each (B, H). */
static void split_layers(loom_graph *g, const loom_seq2seq *m, loom_tensor stacked, loom_tensor *layers)
{
    loom_shape s = loom_tensor_shape(g, stacked);
    for (int l = 0; l < m->o.dec_layers; l++)
        layers[l] = loom_reshape(g, loom_slice(g, stacked, 0, l, 1), loom_shape2(s.d[1], s.d[2]));
}

/* (B, Ts) f32: 1 at a sentence's valid positions. */
static loom_tensor source_mask(loom_graph *g, const loom_seq2seq *m, loom_tensor lengths)
{
    return m->o.attention ? loom_transpose2(g, loom_sequence_mask(g, lengths, m->o.src_steps)) : LOOM_INVALID;
}

static bool begin(loom_graph *g, loom_seq2seq *m, const loom_seq2seq_opts *opts, int rows)
{
    memset(m, 0, sizeof *m);
    if (loom_graph_failed(g) || !check_opts(g, opts, rows)) return false;
    m->o = *opts;
    if (m->o.layers == 0) m->o.layers = 1;
    if (m->o.dec_layers == 0) m->o.dec_layers = m->o.layers;
    make_params(g, m);
    int Ts = m->o.src_steps, B = m->o.batch;
    m->src = loom_input_i32(g, "src", loom_shape2(Ts, B));
    m->src_len = loom_input_i32(g, "src_len", loom_shape1(B));
    return !loom_graph_failed(g);
}

loom_status loom_seq2seq_build(loom_graph *g, loom_seq2seq *m, const loom_seq2seq_opts *opts)
{
    if (!begin(g, m, opts, 1)) return loom_graph_status(g);
    const loom_seq2seq_opts *o = &m->o;
    int Tt = o->tgt_steps, B = o->batch, Ts = o->src_steps, V = o->tgt_vocab;
    if (Tt < 1) return loom_graph_fail(g, LOOM_ERR_ARG, "seq2seq: target steps must be >= 1"), loom_graph_status(g);
    m->dec_in = loom_input_i32(g, "dec_in", loom_shape2(Tt, B));
    m->tgt = loom_input_i32(g, "tgt", loom_shape2(Tt, B));
    m->tgt_len = loom_input_i32(g, "tgt_len", loom_shape1(B));
    if (o->sampled) m->gold = loom_input(g, "gold", loom_shape2(Tt, B));
    loom_tensor memory, keys, init[LOOM_CELL_MAX_STATES], context, state[LOOM_CELL_MAX_STATES][LOOM_RNN_MAX_LAYERS];
    encode(g, m, &memory, &keys, init, &context);
    for (int s = 0; s < m->S; s++) split_layers(g, m, init[s], state[s]);
    loom_tensor mask = source_mask(g, m, m->src_len);
    loom_tensor emb = loom_gather(g, m->tgt_table, m->dec_in); /* (Tt, B, E) */
    loom_tensor logits[LOOM_SEQ2SEQ_MAX_STEPS], weights[LOOM_SEQ2SEQ_MAX_STEPS];
    for (int t = 0; t < Tt && !loom_graph_failed(g); t++) {
        loom_tags saved = loom_graph_set_tags(g, dec_tags(g, m, t, -1, o->cell->name));
        loom_tensor e = loom_reshape(g, loom_slice(g, emb, 0, t, 1), loom_shape2(B, o->embed));
        if (o->sampled && t > 0) { /* the gold token, or the model's own choice */
            loom_tensor own = loom_gather(g, m->tgt_table, loom_argmax(g, logits[t - 1]));
            e = loom_where(g, loom_reshape(g, loom_slice(g, m->gold, 0, t, 1), loom_shape2(B, 1)), e, own);
        }
        loom_graph_set_tags(g, saved);
        logits[t] = decode_step(g, m, t, e, state, memory, keys, mask, context, &weights[t]);
    }
    if (loom_graph_failed(g)) return loom_graph_status(g);
    for (int t = 0; t < Tt; t++) { /* stacked over time */
        logits[t] = loom_reshape(g, logits[t], loom_shape3(1, B, V));
        if (o->attention) weights[t] = loom_reshape(g, weights[t], loom_shape3(1, B, Ts));
    }
    m->logits = loom_concat(g, logits, Tt, 0);
    if (o->attention) m->attention = loom_tensor_set_name(g, loom_concat(g, weights, Tt, 0), "attention");
    m->loss = loom_cross_entropy(g, m->logits, m->tgt, loom_sequence_mask(g, m->tgt_len, Tt));
    if (loom_valid(m->loss)) loom_tensor_set_name(g, m->loss, "loss");
    return loom_graph_status(g);
}

loom_status loom_seq2seq_build_decoder(loom_graph *g, loom_seq2seq *m, const loom_seq2seq_opts *opts, int rows)
{
    if (!begin(g, m, opts, rows)) return loom_graph_status(g);
    const loom_seq2seq_opts *o = &m->o;
    int R = rows, L = o->dec_layers, H = o->hidden, Ts = o->src_steps;
    encode(g, m, &m->memory, &m->keys, m->init, &m->context);
    static const char *const names[LOOM_CELL_MAX_STATES] = {"h_in", "c_in", "s2_in", "s3_in"};
    loom_tensor state[LOOM_CELL_MAX_STATES][LOOM_RNN_MAX_LAYERS];
    for (int s = 0; s < m->S; s++) {
        m->state_in[s] = loom_input(g, names[s], loom_shape3(L, R, H));
        split_layers(g, m, m->state_in[s], state[s]);
    }
    m->prev = loom_input_i32(g, "prev", loom_shape1(R));
    loom_tensor mask = LOOM_INVALID;
    if (o->attention) {
        m->memory_in = loom_input(g, "memory_in", loom_shape3(R, Ts, m->K));
        m->keys_in = loom_input(g, "keys_in", loom_shape3(R, Ts, H));
        m->len_in = loom_input_i32(g, "len_in", loom_shape1(R));
        mask = source_mask(g, m, m->len_in);
    } else {
        m->context_in = loom_input(g, "context_in", loom_shape2(R, H));
    }
    loom_tensor logits = decode_step(g, m, 0, loom_gather(g, m->tgt_table, m->prev), state, m->memory_in, m->keys_in, mask,
                                     m->context_in, &m->step_attention);
    m->log_probs = loom_log_softmax(g, logits);
    for (int s = 0; s < m->S; s++) {
        loom_tensor parts[LOOM_RNN_MAX_LAYERS];
        for (int l = 0; l < L; l++) parts[l] = loom_reshape(g, state[s][l], loom_shape3(1, R, H));
        m->state_out[s] = loom_concat(g, parts, L, 0);
    }
    return loom_graph_status(g);
}
