/* Layers named as PyTorch's modules, losses, and the language model. */
#include "loom/layers.h"
#include "loom/random.h"
#include "graph/error.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *joined(char *buf, size_t n, const char *name, const char *field)
{
    snprintf(buf, n, "%s%s%s", name ? name : "", name && *name ? "." : "", field);
    return buf;
}

loom_tensor loom_embedding(loom_graph *g, const char *name, loom_tensor ids, int vocab, int dim)
{
    char nm[160];
    loom_tensor w = loom_param_init(g, joined(nm, sizeof nm, name, "weight"), loom_shape2(vocab, dim), LOOM_INIT_NORMAL, 1.0f);
    return loom_gather(g, w, ids);
}

loom_dense loom_dense_new(loom_graph *g, const char *name, int in, int out, bool bias)
{
    float a = 1.0f / sqrtf((float)(in > 0 ? in : 1)); /* PyTorch: kaiming_uniform(a=√5) for the weight, U(±1/√in) for the bias */
    char nm[160];
    loom_dense d = {loom_param_init(g, joined(nm, sizeof nm, name, "weight"), loom_shape2(out, in), LOOM_INIT_UNIFORM, a),
                    LOOM_INVALID};
    if (bias) d.bias = loom_param_init(g, joined(nm, sizeof nm, name, "bias"), loom_shape1(out), LOOM_INIT_UNIFORM, a);
    return d;
}

loom_tensor loom_dense_apply(loom_graph *g, loom_dense d, loom_tensor x)
{
    loom_tensor y = loom_matmul(g, x, d.weight, false, true);
    return loom_valid(d.bias) ? loom_add(g, y, d.bias) : y;
}

loom_tensor loom_linear(loom_graph *g, const char *name, loom_tensor x, int out_features)
{
    if (loom_graph_failed(g)) return LOOM_INVALID;
    loom_shape s = loom_tensor_shape(g, x);
    if (!loom_graph_has(g, x) || s.rank < 1) return loom_graph_fail(g, LOOM_ERR_ARG, "linear: no input");
    return loom_dense_apply(g, loom_dense_new(g, name, s.d[s.rank - 1], out_features, true), x);
}

loom_tensor loom_mse(loom_graph *g, loom_tensor pred, loom_tensor target)
{
    loom_tensor d = loom_sub(g, pred, target);
    return loom_mean_all(g, loom_mul(g, d, d));
}

loom_tensor loom_rnn_pool(loom_graph *g, const loom_rnn *rnn, const loom_rnn_out *r, loom_tensor lengths, loom_pool pool)
{
    loom_shape s = loom_tensor_shape(g, r->output); /* (T, B, W) */
    if (s.rank != 3) return loom_graph_fail(g, LOOM_ERR_ARG, "rnn_pool: needs a stack's run");
    if (pool == LOOM_POOL_LAST) { /* final h: (layers·dirs, B, out), the top layer's rows last */
        loom_tensor top = loom_slice(g, r->final[0], 0, (rnn->o.layers - 1) * rnn->dirs, rnn->dirs);
        loom_tensor dirs[2];
        for (int d = 0; d < rnn->dirs; d++) dirs[d] = loom_reshape(g, loom_slice(g, top, 0, d, 1), loom_shape2(s.d[1], rnn->out_size));
        return rnn->dirs == 1 ? dirs[0] : loom_concat(g, dirs, 2, 1);
    }
    if (!loom_valid(lengths)) return loom_mean(g, r->output, 0, false);
    /* Σ_t m_tb o_tb / Σ_t m_tb, m the valid-step mask */
    loom_tensor m = loom_reshape(g, loom_sequence_mask(g, lengths, s.d[0]), loom_shape3(s.d[0], s.d[1], 1));
    return loom_div(g, loom_sum(g, loom_mul(g, r->output, m), 0, false), loom_sum(g, m, 0, false));
}

loom_tensor loom_sampled_softmax(loom_graph *g, loom_dense dec, loom_tensor h, loom_tensor targets, int k, loom_sampled *s)
{
    loom_shape hs = loom_tensor_shape(g, h), ws = loom_tensor_shape(g, dec.weight);
    int64_t N = loom_tensor_numel(g, targets);
    int H = hs.rank ? hs.d[hs.rank - 1] : 0, V = ws.rank == 2 ? ws.d[0] : 0;
    memset(s, 0, sizeof *s);
    if (loom_graph_failed(g)) return LOOM_INVALID;
    if (k < 1 || V < 2 || ws.d[1] != H || N < 1 || N * H != loom_tensor_numel(g, h) || N > INT32_MAX)
        return loom_graph_fail(g, LOOM_ERR_SHAPE, "sampled_softmax: %d samples; rows of h and targets, and the decoder's width, must agree", k);
    *s = (loom_sampled){.k = k, .vocab = V, .rows = (int)N};
    s->sampled = loom_input_i32(g, "sampled", loom_shape1(k));
    s->sampled_logq = loom_input(g, "sampled_logq", loom_shape2(1, k));
    s->target_logq = loom_input(g, "target_logq", loom_shape2((int32_t)N, 1));
    s->hits = loom_input(g, "sampled_hits", loom_shape2((int32_t)N, k));
    loom_tensor h2 = loom_reshape(g, h, loom_shape2((int32_t)N, H)), y = loom_reshape(g, targets, loom_shape1((int32_t)N));
    /* the target's logit, h·w_y + b_y − log Q(y) */
    loom_tensor tl = loom_sum(g, loom_mul(g, h2, loom_gather(g, dec.weight, y)), 1, true);
    loom_tensor b2 = loom_valid(dec.bias) ? loom_reshape(g, dec.bias, loom_shape2(V, 1)) : LOOM_INVALID;
    if (loom_valid(b2)) tl = loom_add(g, tl, loom_gather(g, b2, y));
    tl = loom_sub(g, tl, s->target_logq);
    /* the samples', h·w_s + b_s − log Q(s), accidental hits removed */
    loom_tensor sl = loom_matmul(g, h2, loom_gather(g, dec.weight, s->sampled), false, true);
    if (loom_valid(b2)) sl = loom_add(g, sl, loom_reshape(g, loom_gather(g, b2, s->sampled), loom_shape2(1, k)));
    sl = loom_add(g, loom_sub(g, sl, s->sampled_logq), s->hits);
    loom_tensor logits = loom_concat(g, (loom_tensor[]){tl, sl}, 2, 1);
    int32_t *zero = calloc((size_t)N, sizeof *zero);
    if (!zero) return loom_graph_fail(g, LOOM_ERR_NOMEM, "sampled_softmax: out of memory");
    loom_tensor first = loom_constant_i32(g, loom_shape1((int32_t)N), zero);
    free(zero);
    return loom_cross_entropy(g, logits, first, LOOM_NO_MASK);
}

void loom_sampled_draw(const loom_sampled *s, uint64_t seed, int64_t step, const int32_t *targets, int32_t *sampled,
                       float *sampled_logq, float *target_logq, float *hits)
{
    uint64_t z = loom_mix(seed * 0x9E3779B97F4A7C15ull + (uint64_t)step * 0xD6E8FEB86659FD93ull + 37);
    double lv = log((double)s->vocab + 1);
    /* log of the expected count K·P(c), P(c) = log((c + 2)/(c + 1)) / log(V + 1) */
#define LOGQ(c) ((float)log((double)s->k * log(((double)(c) + 2) / ((double)(c) + 1)) / lv))
    for (int j = 0; j < s->k; j++) { /* TF's log-uniform sampler: ⌊exp(u·log(V + 1))⌋ − 1 */
        int64_t c = (int64_t)floor(exp(loom_uniform(&z) * lv)) - 1;
        sampled[j] = (int32_t)(c < 0 ? 0 : c >= s->vocab ? s->vocab - 1 : c);
        sampled_logq[j] = LOGQ(sampled[j]);
    }
    for (int n = 0; n < s->rows; n++) {
        int32_t y = targets[n] >= 0 && targets[n] < s->vocab ? targets[n] : 0;
        target_logq[n] = LOGQ(y);
        for (int j = 0; j < s->k; j++) hits[(size_t)n * s->k + j] = sampled[j] == targets[n] ? -1e9f : 0.0f;
    }
#undef LOGQ
}

/* Dropout of a (T, B, W) tensor: per element, or (variational) one mask per sequence for every step. */
static loom_tensor lm_dropout(loom_graph *g, const loom_lm_opts *o, loom_tensor x, uint64_t seed)
{
    loom_shape s = loom_tensor_shape(g, x);
    if (!o->variational || s.rank != 3) return loom_dropout(g, x, o->dropout, seed);
    return loom_mul(g, x, loom_dropout(g, loom_fill(g, loom_shape3(1, s.d[1], s.d[2]), 1.0f), o->dropout, seed));
}

loom_status loom_lm_build(loom_graph *g, loom_lm *lm, const loom_lm_opts *opts)
{
    memset(lm, 0, sizeof *lm);
    if (!opts || !opts->cell || opts->vocab < 1 || opts->hidden < 1 || opts->steps < 1 || opts->batch < 1 ||
        opts->embed < 0) {
        loom_graph_fail(g, LOOM_ERR_ARG, "lm: needs a cell, vocab, hidden, steps and batch >= 1 (embed >= 0)");
        return LOOM_ERR_ARG;
    }
    if (!(opts->state_dropout >= 0 && opts->state_dropout < 1 && opts->weight_drop >= 0 && opts->weight_drop < 1 &&
          opts->zoneout >= 0 && opts->zoneout < 1 && opts->dropout_embed >= 0 && opts->dropout_embed < 1) ||
        (opts->dropout_embed > 0 && !opts->embed)) {
        loom_graph_fail(g, LOOM_ERR_ARG, "lm: state dropout %g, weight drop %g, zoneout %g, embedding dropout %g: each in [0, 1), "
                        "embedding dropout with an embedding", opts->state_dropout, opts->weight_drop, opts->zoneout,
                        opts->dropout_embed);
        return LOOM_ERR_ARG;
    }
    if (opts->tie_weights && opts->embed != opts->hidden) {
        loom_graph_fail(g, LOOM_ERR_ARG, "lm: tied weights need an embedding as wide as the hidden state (embed %d, hidden %d)",
                        opts->embed, opts->hidden);
        return LOOM_ERR_ARG;
    }
    lm->o = *opts;
    const loom_lm_opts *o = &lm->o;
    int T = o->steps, B = o->batch, layers = o->layers ? o->layers : 1, S = o->cell->n_states;
    lm->tokens = loom_input_i32(g, "tokens", loom_shape2(T, B));
    lm->targets = loom_input_i32(g, "targets", loom_shape2(T, B));
    loom_tensor x;
    if (o->embed && o->dropout_embed > 0) { /* whole rows: a word dropped is dropped wherever it occurs */
        loom_tensor E = loom_param_init(g, "embedding.weight", loom_shape2(o->vocab, o->embed), LOOM_INIT_NORMAL, 1.0f);
        x = loom_gather(g, loom_mul(g, E, loom_dropout(g, loom_fill(g, loom_shape2(o->vocab, 1), 1.0f), o->dropout_embed,
                                                        o->seed ^ 0xE3Bull)),
                        lm->tokens);
    } else {
        x = o->embed ? loom_embedding(g, "embedding", lm->tokens, o->vocab, o->embed) : loom_one_hot(g, lm->tokens, o->vocab);
    }
    if (o->embed && o->dropout > 0) x = lm_dropout(g, o, x, o->seed ^ 0xE4Bull);
    loom_rnn_init(g, &lm->rnn, &(loom_rnn_opts){.cell = o->cell, .input_size = o->embed ? o->embed : o->vocab,
                                                .hidden_size = o->hidden, .layers = layers, .stacking = o->stacking,
                                                .dropout = o->dropout, .seed = o->seed, .prefix = "rnn.",
                                                .variational = o->variational, .state_dropout = o->state_dropout,
                                                .weight_drop = o->weight_drop, .zoneout = o->zoneout,
                                                .unit_forget_bias = o->unit_forget_bias});
    loom_rnn_args args = {.trunc = o->trunc, .truncate = o->truncate, .trunc_seed = o->seed};
    lm->trunc_xi = o->trunc == LOOM_TRUNC_RANDOM ? loom_input(g, "trunc_xi", loom_shape1(T)) : LOOM_INVALID;
    args.trunc_xi = lm->trunc_xi;
    loom_rnn_init_inputs(g, &lm->rnn, B, args.init);
    for (int s = 0; s < S; s++) lm->init[s] = args.init[s];
    lm->out = loom_rnn_apply(g, &lm->rnn, x, &args);
    loom_tensor y = lm->out.output;
    if (o->dropout > 0) y = lm_dropout(g, o, y, o->seed ^ 0xDEC0ull);
    loom_dense dec;
    if (o->tie_weights) { /* the embedding's matrix as the decoder's weight; a bias of its own (PyTorch's init) */
        loom_tensor bias = loom_param_init(g, "decoder.bias", loom_shape1(o->vocab), LOOM_INIT_UNIFORM, 1.0f / sqrtf((float)o->hidden));
        dec = (loom_dense){loom_graph_find(g, "embedding.weight"), bias};
    } else {
        dec = loom_dense_new(g, "decoder", o->hidden, o->vocab, true);
    }
    lm->logits = loom_dense_apply(g, dec, y);
    lm->loss = loom_cross_entropy(g, lm->logits, lm->targets, LOOM_NO_MASK);
    if (loom_valid(lm->loss)) loom_tensor_set_name(g, lm->loss, "loss");
    if (o->sampled_softmax < 0 || o->sampled_softmax >= o->vocab)
        return loom_graph_fail(g, LOOM_ERR_ARG, "lm: a sampled softmax of %d classes of %d", o->sampled_softmax, o->vocab), LOOM_ERR_ARG;
    lm->train_loss = o->sampled_softmax ? loom_sampled_softmax(g, dec, y, lm->targets, o->sampled_softmax, &lm->sampled) : lm->loss;
    return loom_graph_status(g);
}
