/* loom dot's models: a recurrent stack or an encoder–decoder built from
 * the flags (or the trained model of --load), and the gradient heat of
 * their carried states. */
#include "dot.h"

#include "loom/loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double rnd(uint64_t *s) { return loom_uniform(s) * 2 - 1; }


/* x → stack → per-step losses l_t = Σ y_t ⊙ r_t (r_t fixed random), L = Σ_t l_t. */
void dot_build(dot_model *dm, const dot_args *a)
{
    const tool_model *m = &a->m;
    int T = (int)m->steps, B = (int)m->batch, H = (int)m->hidden, L = (int)m->layers, D = m->bidirectional ? 2 : 1;
    loom_graph *g = dm->g = loom_graph_new();
    loom_rnn_init(g, &dm->rnn, &(loom_rnn_opts){.cell = m->cell, .input_size = (int)m->input, .hidden_size = H,
                                                .layers = L, .bidirectional = m->bidirectional});
    dm->x = loom_input(g, "x", loom_shape3(T, B, (int)m->input));
    loom_rnn_args args = {.trunc = a->truncate ? (a->random_trunc ? LOOM_TRUNC_RANDOM : LOOM_TRUNC_FIXED) : LOOM_TRUNC_NONE,
                          .truncate = (int)a->truncate, .trunc_seed = (uint64_t)m->seed};
    loom_rnn_out o = loom_rnn_apply(g, &dm->rnn, dm->x, &args);
    dm->rng = (uint64_t)m->seed * 0x9E3779B97F4A7C15ull + 1;
    float *r = malloc((size_t)B * D * H * sizeof *r);
    loom_tensor *terms = malloc((size_t)T * sizeof *terms);
    int n_terms = 0;
    for (int t = a->loss ? T - 1 : 0; r && terms && t < T && !loom_graph_failed(g); t++) {
        loom_graph_set_tags(g, (loom_tags){t, (int16_t)L, 2, LOOM_ROLE_FORWARD, 0, 0});
        for (long k = 0; k < (long)B * D * H; k++) r[k] = (float)rnd(&dm->rng);
        loom_tensor yt = loom_slice(g, o.output, 0, t, 1);
        loom_tensor lt = loom_sum_all(g, loom_mul(g, yt, loom_constant(g, loom_tensor_shape(g, yt), r)));
        char nm[32];
        snprintf(nm, sizeof nm, "loss[%d]", t);
        loom_tensor_set_name(g, lt, nm);
        loom_graph_set_tags(g, LOOM_TAGS_NONE);
        terms[n_terms++] = lt;
    }
    dm->loss = n_terms ? loom_add_n(g, terms, n_terms) : loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory");
    loom_tensor_set_name(g, dm->loss, "L");
    free(r), free(terms);
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

/* ‖∂L/∂h_t‖ per (t, l, d) on seeded random data: parameters from their
 * initialisers, x uniform in [-1, 1). */
bool dot_heat(dot_model *dm, const dot_args *a, float *norms)
{
    const tool_model *m = &a->m;
    loom_graph *g = dm->g;
    loom_store *store = loom_store_new(g);
    long nx = m->steps * m->batch * m->input;
    float *xv = malloc((size_t)nx * sizeof *xv);
    int np = loom_store_count(store), nb = 0;
    loom_binding *binds = malloc((size_t)(np + 1) * sizeof *binds);
    bool ok = false;
    if (loom_store_status(store) || !xv || !binds) {
        fprintf(stderr, "loom dot: %s\n", loom_store_status(store) ? loom_store_error(store) : "out of memory");
    } else {
        loom_store_init(store, (uint64_t)m->seed);
        for (long q = 0; q < nx; q++) xv[q] = (float)rnd(&dm->rng);
        nb = loom_store_bindings(store, binds, np);
        binds[nb++] = (loom_binding){dm->x, xv};
        ok = !loom_state_grad_norms(g, dm->loss, &(loom_state_grid){(int)m->steps, (int)m->layers, m->bidirectional ? 2 : 1, 1}, binds,
                                        nb, norms, NULL);
        if (!ok) fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
    }
    free(binds), free(xv);
    loom_store_free(store);
    return ok;
}

/* ‖∂L/∂h_t‖ of a trained model on its window of real text, the state
 * starting from zero. */
bool dot_heat_loaded(dot_model *dm, const dot_args *a, float *norms)
{
    const loom_lm *lm = &dm->lm.lm;
    int np = loom_store_count(dm->lm.store), S = lm->o.cell->n_states, nb = 0;
    size_t sn = (size_t)lm->o.layers * lm->o.hidden;
    loom_binding *binds = malloc((size_t)(np + 2 + S) * sizeof *binds);
    float *zero = calloc(sn, sizeof *zero);
    bool ok = binds && zero;
    if (ok) {
        nb = loom_store_bindings(dm->lm.store, binds, np);
        binds[nb++] = (loom_binding){lm->tokens, dm->lm.x};
        binds[nb++] = (loom_binding){lm->targets, dm->lm.y};
        for (int s = 0; s < S; s++) binds[nb++] = (loom_binding){lm->init[s], zero};
        ok = !loom_state_grad_norms(dm->g, dm->loss, &(loom_state_grid){(int)a->m.steps, (int)a->m.layers, 1, 1}, binds, nb, norms, NULL);
    }
    if (!ok) fprintf(stderr, "loom dot: %s\n", binds && zero ? loom_graph_error(dm->g) : "out of memory");
    free(binds), free(zero);
    return ok;
}

/* The gradient of every parameter (and, through them, of every step);
 * roots[0] is the loss, the gradients follow. Returns the number of roots. */
int dot_backward(dot_model *dm, loom_tensor *roots)
{
    const loom_rnn *rnn = &dm->rnn;
    loom_tensor wrt[LOOM_RNN_MAX_LAYERS * 2 * LOOM_CELL_MAX_PARAMS * 2 + 16];
    int np = 0;
    if (loom_valid(dm->s2s.loss)) { /* every parameter of the encoder–decoder */
        np = loom_graph_params(dm->g, wrt, (int)(sizeof wrt / sizeof *wrt));
    } else {
        for (int l = 0; l < rnn->o.layers; l++)
            for (int d = 0; d < rnn->dirs; d++)
                for (int i = 0; i < rnn->n_params; i++) wrt[np++] = rnn->param[l][d][i];
    }
    roots[0] = dm->loss;
    loom_backward(dm->g, dm->loss, wrt, np, roots + 1);
    return 1 + np;
}

