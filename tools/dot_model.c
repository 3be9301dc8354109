/* loom dot's models: a recurrent stack or an encoder–decoder built from
 * the flags, or a trained model (--load), and the gradient norms of their
 * carried states. */
#include "dot.h"

#include "loom/loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double rnd(uint64_t *s) { return loom_uniform(s) * 2 - 1; }

/* x → stack → per step an output o_t = W_o h_t + b_o over I classes and
 * its loss L_t = cross-entropy(o_t, y_t) against random targets y_t;
 * L = Σ_t L_t (or the last step's alone), as d2l draws an RNN. */
void dot_build(dot_model *dm, const dot_args *a)
{
    const tool_model *m = &a->m;
    int T = (int)m->steps, B = (int)m->batch, H = (int)m->hidden, I = (int)m->input, L = (int)m->layers;
    int D = m->bidirectional ? 2 : 1;
    loom_graph *g = dm->g = loom_graph_new();
    loom_rnn_init(g, &dm->rnn, &(loom_rnn_opts){.cell = m->cell, .input_size = I, .hidden_size = H, .layers = L,
                                                .bidirectional = m->bidirectional});
    dm->x = loom_input(g, "x", loom_shape3(T, B, I));
    dm->y = loom_input_i32(g, "y", loom_shape2(T, B));
    loom_rnn_args args = {.trunc = a->truncate ? (a->random_trunc ? LOOM_TRUNC_RANDOM : LOOM_TRUNC_FIXED) : LOOM_TRUNC_NONE,
                          .truncate = (int)a->truncate, .trunc_seed = (uint64_t)m->seed};
    loom_rnn_out o = loom_rnn_apply(g, &dm->rnn, dm->x, &args);
    int W = D * dm->rnn.out_size;
    loom_dense out = loom_dense_new(g, "output", W, I, true);
    loom_tensor *terms = malloc((size_t)T * sizeof *terms);
    int n_terms = 0;
    for (int t = a->loss == DOT_LOSS_LAST ? T - 1 : 0; terms && t < T && !loom_graph_failed(g); t++) {
        loom_graph_set_tags(g, (loom_tags){t, (int16_t)L, 2, LOOM_ROLE_FORWARD, 0, 0, 0});
        char nm[32];
        loom_tensor ht = loom_reshape(g, loom_slice(g, o.output, 0, t, 1), loom_shape2(B, W));
        loom_tensor ot = loom_dense_apply(g, out, ht);
        snprintf(nm, sizeof nm, "o[%d]", t);
        loom_tensor_set_name(g, ot, nm);
        loom_tensor yt = loom_reshape(g, loom_slice(g, dm->y, 0, t, 1), loom_shape1(B));
        snprintf(nm, sizeof nm, "y[%d]", t);
        loom_tensor_set_name(g, yt, nm);
        loom_tensor lt = loom_cross_entropy(g, ot, yt, LOOM_NO_MASK);
        snprintf(nm, sizeof nm, "L[%d]", t);
        loom_tensor_set_name(g, lt, nm);
        loom_graph_set_tags(g, LOOM_TAGS_NONE);
        terms[n_terms++] = lt;
    }
    dm->loss = n_terms ? loom_add_n(g, terms, n_terms) : loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory");
    loom_tensor_set_name(g, dm->loss, "L");
    dm->grid = (loom_state_grid){T, L, D, m->cell->n_states};
    free(terms);
}

/* An encoder–decoder of T source and 3 target steps, vocabularies of 8. */
void dot_build_seq2seq(dot_model *dm, const dot_args *a)
{
    const tool_model *m = &a->m;
    dm->g = loom_graph_new();
    loom_seq2seq_build(dm->g, &dm->s2s,
                       &(loom_seq2seq_opts){.cell = m->cell, .src_vocab = 8, .tgt_vocab = 8, .embed = (int)m->input,
                                            .hidden = (int)m->hidden, .layers = (int)m->layers,
                                            .bidirectional = m->bidirectional, .attention = (loom_attention)a->seq2seq,
                                            .src_steps = (int)m->steps, .tgt_steps = 3, .batch = (int)m->batch});
    dm->loss = dm->s2s.loss;
}

/* A trained model on one batch (--load): 0, or the exit status with a message. */
int dot_load(dot_model *dm, const dot_args *a)
{
    loom_error err = {0};
    loom_probe *p = &dm->probe;
    loom_status st = loom_probe_open(p, a->load, &(loom_probe_opts){.from = (loom_batch_from)a->batch_from, .text = a->data,
                                                                     .steps = (int)a->m.steps, .last_step = a->loss == DOT_LOSS_LAST},
                                     &err);
    if (st) /* a file that cannot be read or used is bad input (2), as every command's --load */
        return st == LOOM_ERR_NOMEM ? tool_fail_st("loom dot", st, a->load, err.msg) : tool_fail("loom dot", a->load, err.msg);
    if (a->loss == DOT_LOSS_ALL && p->model.kind == LOOM_MODEL_ADDING) {
        loom_probe_close(p);
        return tool_fail("loom dot", a->load, "--loss all: the adding task has one loss term, at its last step");
    }
    dm->g = p->g, dm->rnn = *p->rnn, dm->loss = p->loss, dm->grid = p->grid;
    return 0;
}

/* ‖∂L/∂s_t‖ of every carried state in float32 and float64: of the trained
 * model on its batch, or of the built one on seeded random data
 * (parameters from their initialisers, x uniform in [-1, 1), random
 * targets). */
bool dot_norms(dot_model *dm, const dot_args *a, float *norm, double *norm64)
{
    loom_graph *g = dm->g;
    if (a->load) {
        loom_status st = loom_state_grad_norms(g, dm->loss, &dm->grid, dm->probe.binds, dm->probe.n_binds, norm, norm64);
        if (st) fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
        return !st;
    }
    const tool_model *m = &a->m;
    loom_store *store = loom_store_new(g);
    long nx = m->steps * m->batch * m->input, ny = m->steps * m->batch;
    float *xv = malloc((size_t)nx * sizeof *xv);
    int32_t *yv = malloc((size_t)ny * sizeof *yv);
    int np = loom_store_count(store), nb = 0;
    loom_binding *binds = malloc((size_t)(np + 2) * sizeof *binds);
    bool ok = false;
    if (loom_store_status(store) || !xv || !yv || !binds) {
        fprintf(stderr, "loom dot: %s\n", loom_store_status(store) ? loom_store_error(store) : "out of memory");
    } else {
        uint64_t rng = (uint64_t)m->seed * 0x9E3779B97F4A7C15ull + 1;
        loom_store_init(store, (uint64_t)m->seed);
        for (long q = 0; q < nx; q++) xv[q] = (float)rnd(&rng);
        for (long q = 0; q < ny; q++) yv[q] = (int32_t)loom_below(&rng, (uint64_t)m->input);
        nb = loom_store_bindings(store, binds, np);
        binds[nb++] = (loom_binding){dm->x, xv};
        binds[nb++] = (loom_binding){dm->y, yv};
        ok = !loom_state_grad_norms(g, dm->loss, &dm->grid, binds, nb, norm, norm64);
        if (!ok) fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
    }
    free(binds), free(xv), free(yv);
    loom_store_free(store);
    return ok;
}

bool dot_seq2seq_values(dot_model *dm, const dot_args *a, const loom_tensor *roots, int n_roots, float *stats, float *attention)
{
    loom_graph *g = dm->g;
    const loom_seq2seq *m = &dm->s2s;
    int Ts = m->o.src_steps, Tt = m->o.tgt_steps, B = m->o.batch;
    loom_store *store = loom_store_new(g);
    int np = loom_store_count(store), nb = 0;
    loom_binding *binds = malloc((size_t)(np + 5) * sizeof *binds);
    int32_t *src = malloc((size_t)Ts * B * sizeof *src), *dec_in = malloc((size_t)Tt * B * sizeof *dec_in);
    int32_t *tgt = malloc((size_t)Tt * B * sizeof *tgt), *src_len = malloc((size_t)B * sizeof *src_len);
    int32_t *tgt_len = malloc((size_t)B * sizeof *tgt_len);
    float *att = attention ? malloc((size_t)Tt * B * Ts * sizeof *att) : NULL;
    bool ok = false;
    if (loom_store_status(store) || !binds || !src || !dec_in || !tgt || !src_len || !tgt_len || (attention && !att)) {
        fprintf(stderr, "loom dot: %s\n", loom_store_status(store) ? loom_store_error(store) : "out of memory");
    } else {
        uint64_t rng = (uint64_t)a->m.seed * 0x9E3779B97F4A7C15ull + 1;
        loom_store_init(store, (uint64_t)a->m.seed);
        for (int k = 0; k < Ts * B; k++) src[k] = (int32_t)loom_below(&rng, (uint64_t)m->o.src_vocab);
        for (int k = 0; k < Tt * B; k++)
            tgt[k] = (int32_t)loom_below(&rng, (uint64_t)m->o.tgt_vocab), dec_in[k] = (int32_t)loom_below(&rng, (uint64_t)m->o.tgt_vocab);
        for (int b = 0; b < B; b++) src_len[b] = Ts, tgt_len[b] = Tt;
        nb = loom_store_bindings(store, binds, np);
        binds[nb++] = (loom_binding){m->src, src};
        binds[nb++] = (loom_binding){m->src_len, src_len};
        binds[nb++] = (loom_binding){m->dec_in, dec_in};
        binds[nb++] = (loom_binding){m->tgt, tgt};
        binds[nb++] = (loom_binding){m->tgt_len, tgt_len};
        ok = !loom_value_stats(g, roots, n_roots, binds, nb, stats) &&
             (!attention || !loom_node_values(g, m->attention, binds, nb, att, (size_t)Tt * B * Ts));
        if (!ok) fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
        for (int i = 0; ok && attention && i < Tt; i++) /* (Tt, B, Ts): sentence 0's rows */
            memcpy(attention + (size_t)i * Ts, att + (size_t)i * B * Ts, (size_t)Ts * sizeof *att);
    }
    free(binds), free(src), free(dec_in), free(tgt), free(src_len), free(tgt_len), free(att);
    loom_store_free(store);
    return ok;
}

/* The gradient of every parameter (and, through them, of every step);
 * roots[0] is the loss, the gradients follow. Returns the number of roots. */
int dot_backward(dot_model *dm, loom_tensor *roots)
{
    int np = loom_graph_params(dm->g, NULL, 0);
    loom_tensor *wrt = malloc((size_t)np * sizeof *wrt);
    if (!wrt) return loom_graph_fail(dm->g, LOOM_ERR_NOMEM, "out of memory"), 1;
    loom_graph_params(dm->g, wrt, np);
    roots[0] = dm->loss;
    loom_backward(dm->g, dm->loss, wrt, np, roots + 1);
    free(wrt);
    return 1 + np;
}
