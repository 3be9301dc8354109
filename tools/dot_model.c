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
                                                .bidirectional = m->bidirectional, .stacking = (loom_stacking)m->stacking});
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

static bool is_seq2seq(const char *path)
{
    loom_st *f = loom_st_new();
    loom_model_desc m;
    loom_train_desc d;
    bool yes = f && !loom_checkpoint_read(f, path) && !loom_checkpoint_model(f, &m, &d, NULL) && m.kind == LOOM_MODEL_SEQ2SEQ;
    loom_st_free(f);
    return yes;
}

/* A trained encoder–decoder on one sentence: --source, or the first pair of
 * its task's held-out (or training) part; the model's own translation. */
static int load_seq2seq(dot_model *dm, const dot_args *a)
{
    static const char cmd[] = "loom dot";
    if (a->norms || a->loss >= 0 || a->m.steps || a->data) {
        fprintf(stderr, "loom dot: %s is an encoder–decoder's checkpoint, drawn on one sentence (--source TEXT, or its first "
                        "held-out pair) with its own lengths and loss: not with --grad-norms, --norms-csv, --loss, --seq-len "
                        "or --data\n", a->load);
        return 2;
    }
    s2s_ckpt *l = &dm->ck;
    int rc = s2s_load(l, cmd, a->load, 1, 1);
    if (rc) return rc;
    int Ts = l->mo.src_steps;
    int32_t *src = malloc((size_t)Ts * sizeof *src), sl = 0;
    if (!src) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    if (a->source) {
        sl = loom_pairs_encode(l->v[0], a->source, strlen(a->source), Ts, src);
        if (sl < 0) rc = tool_fail_st(cmd, sl == -1 ? LOOM_ERR_VALUE : LOOM_ERR_NOMEM, "--source", sl == -1 ? "invalid UTF-8" : "out of memory");
    } else {
        s2s_data d = {0};
        if ((rc = s2s_pairs(cmd, &l->task, (const loom_vocab *const *)l->v, &d)))
            fprintf(stderr, "loom dot: give the sentence to draw with --source TEXT\n");
        else if (a->batch_from == LOOM_BATCH_TRAINING) loom_pairs_get(d.pairs, false, 0, src, &sl, NULL, NULL);
        else loom_pairs_get(d.held, d.held_part, 0, src, &sl, NULL, NULL);
        s2s_data_free(&d);
    }
    loom_error err = {0};
    if (!rc && loom_seq2seq_probe_open(&dm->sp, &l->mo, l->store, src, sl, &err))
        rc = err.status == LOOM_ERR_NOMEM ? tool_fail_st(cmd, err.status, a->load, err.msg) : tool_fail(cmd, a->load, err.msg);
    free(src);
    if (rc) return rc;
    dm->s2s_loaded = true;
    dm->g = dm->sp.g, dm->s2s = dm->sp.m, dm->loss = dm->sp.m.loss;
    return 0;
}

void dot_model_free(dot_model *dm)
{
    if (dm->s2s_loaded) {
        loom_seq2seq_probe_close(&dm->sp);
        dm->g = NULL;
    }
    s2s_unload(&dm->ck);
    if (dm->probe.g) loom_probe_close(&dm->probe);
    else loom_graph_free(dm->g);
    memset(dm, 0, sizeof *dm);
}

/* A trained model on one batch (--load): 0, or the exit status with a message. */
int dot_load(dot_model *dm, const dot_args *a)
{
    if (is_seq2seq(a->load)) return load_seq2seq(dm, a);
    if (a->source) {
        fprintf(stderr, "loom dot: --source is the sentence an encoder–decoder's checkpoint translates; %s is not one\n", a->load);
        return 2;
    }
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

/* The binds of an untrained encoder–decoder on seeded random sentences
 * (*store and *buf to free), or NULL with the reason said. */
static loom_binding *random_sentences(dot_model *dm, const dot_args *a, loom_store **store, int32_t **buf, int *nb)
{
    const loom_seq2seq *m = &dm->s2s;
    int Ts = m->o.src_steps, Tt = m->o.tgt_steps, B = m->o.batch;
    *store = loom_store_new(dm->g);
    int np = loom_store_count(*store);
    loom_binding *binds = malloc((size_t)(np + 5) * sizeof *binds);
    int32_t *src = *buf = malloc(((size_t)(Ts + 2 * Tt) * B + 2 * (size_t)B) * sizeof *src);
    if (loom_store_status(*store) || !binds || !src) {
        fprintf(stderr, "loom dot: %s\n", loom_store_status(*store) ? loom_store_error(*store) : "out of memory");
        free(binds);
        return NULL;
    }
    int32_t *dec_in = src + Ts * B, *tgt = dec_in + Tt * B, *src_len = tgt + Tt * B, *tgt_len = src_len + B;
    uint64_t rng = (uint64_t)a->m.seed * 0x9E3779B97F4A7C15ull + 1;
    loom_store_init(*store, (uint64_t)a->m.seed);
    for (int k = 0; k < Ts * B; k++) src[k] = (int32_t)loom_below(&rng, (uint64_t)m->o.src_vocab);
    for (int k = 0; k < Tt * B; k++)
        tgt[k] = (int32_t)loom_below(&rng, (uint64_t)m->o.tgt_vocab), dec_in[k] = (int32_t)loom_below(&rng, (uint64_t)m->o.tgt_vocab);
    for (int b = 0; b < B; b++) src_len[b] = Ts, tgt_len[b] = Tt;
    int n = loom_store_bindings(*store, binds, np);
    binds[n++] = (loom_binding){m->src, src};
    binds[n++] = (loom_binding){m->src_len, src_len};
    binds[n++] = (loom_binding){m->dec_in, dec_in};
    binds[n++] = (loom_binding){m->tgt, tgt};
    binds[n++] = (loom_binding){m->tgt_len, tgt_len};
    *nb = n;
    return binds;
}

void dot_attention_free(dot_attention *att)
{
    free(att->w), free(att->row_labels), free(att->col_labels);
    *att = (dot_attention){0};
}


bool dot_values(dot_model *dm, const dot_args *a, const loom_tensor *roots, int n_roots, float *stats, dot_attention *att)
{
    loom_graph *g = dm->g;
    const loom_binding *binds = dm->probe.binds;
    int nb = dm->probe.n_binds;
    loom_store *store = NULL;
    int32_t *buf = NULL;
    loom_binding *own = NULL;
    if (dm->s2s_loaded) binds = dm->sp.binds, nb = dm->sp.n_binds;
    else if (!a->load && !(binds = own = random_sentences(dm, a, &store, &buf, &nb))) {
        loom_store_free(store), free(buf);
        return false;
    }
    bool ok = !loom_value_stats(g, roots, n_roots, binds, nb, stats);
    const loom_seq2seq *m = &dm->s2s;
    *att = (dot_attention){0};
    if (ok && (a->seq2seq > 0 || (dm->s2s_loaded && m->o.attention))) { /* sentence 0 of (Tt, B, Ts) */
        att->rows = dm->s2s_loaded ? dm->sp.tgt_len : m->o.tgt_steps, att->cols = dm->s2s_loaded ? dm->sp.src_len : m->o.src_steps;
        att->w = malloc((size_t)att->rows * att->cols * sizeof *att->w);
        if (!att->w) ok = false, loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory");
        else ok = !loom_seq2seq_attention_weights(g, m, binds, nb, 0, att->rows, att->cols, att->w);
        if (ok && dm->s2s_loaded) { /* the sentence's tokens and the translation's */
            att->row_labels = malloc((size_t)att->rows * sizeof *att->row_labels);
            att->col_labels = malloc((size_t)att->cols * sizeof *att->col_labels);
            if (!att->row_labels || !att->col_labels) ok = false, loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory");
            for (int i = 0; ok && i < att->rows; i++) att->row_labels[i] = tool_token_label(dm->ck.v[1], dm->sp.tgt[i]);
            for (int j = 0; ok && j < att->cols; j++) att->col_labels[j] = tool_token_label(dm->ck.v[0], dm->sp.src[j]);
        }
    }
    if (!ok) fprintf(stderr, "loom dot: %s\n", loom_graph_error(g)), dot_attention_free(att);
    free(own), free(buf);
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
