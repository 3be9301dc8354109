/* Encoder–decoder models: one decoder step at a time equals the unrolled
 * stack, gradient checks of every attention form, masked loss and attention
 * masking, and the decoding graph computing what the training graph does. */
#include "helpers.h"

#include "examples/mgu_cell.h"

#include <unistd.h>

enum { TS = 4, TT = 3, B = 2, V_SRC = 6, V_TGT = 5 };

/* Source and target batches with padding: lengths (4, 2) and (3, 1). */
static int32_t src[TS * B] = {4, 5, 5, 3, 3, 1, 1, 1};
static int32_t src_len[B] = {4, 2};
static int32_t tgt[TT * B] = {4, 3, 0, 1, 3, 1};
static int32_t tgt_len[B] = {3, 1};
static int32_t dec_in[TT * B] = {2, 2, 4, 3, 0, 1};
static float gold[TT * B] = {1, 1, 0, 1, 1, 0};

static loom_seq2seq_opts opts(const loom_cell_def *cell, loom_attention a, bool bi, int layers)
{
    return (loom_seq2seq_opts){.cell = cell, .src_vocab = V_SRC, .tgt_vocab = V_TGT, .embed = 3, .hidden = 4,
                               .layers = layers, .bidirectional = bi, .attention = a, .src_steps = TS,
                               .tgt_steps = TT, .batch = B, .seed = 3};
}

static int bind_inputs(const loom_seq2seq *m, loom_binding *b)
{
    int n = 0;
    b[n++] = (loom_binding){m->src, src};
    b[n++] = (loom_binding){m->src_len, src_len};
    b[n++] = (loom_binding){m->dec_in, dec_in};
    b[n++] = (loom_binding){m->tgt, tgt};
    b[n++] = (loom_binding){m->tgt_len, tgt_len};
    if (m->o.sampled) b[n++] = (loom_binding){m->gold, gold};
    return n;
}

/* The loss's gradient with respect to every parameter, by central differences. */
static void gradcheck_model(loom_seq2seq_opts o)
{
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *s = loom_store_new(g);
    cr_assert_eq(loom_store_status(s), LOOM_OK, "%s", loom_store_error(s));
    loom_store_init(s, 11);
    int np = loom_store_bindings(s, NULL, 0);
    loom_binding *b = malloc((size_t)(np + 8) * sizeof *b);
    loom_store_bindings(s, b, np);
    int nf = bind_inputs(&m, b + np);
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, m.loss, b, np, b + np, nf, &(loom_gradcheck_opts){.max_checks = 12}, &r), LOOM_OK,
                 "%s", loom_graph_error(g));
    cr_assert_gt(r.checked, 12 * 5);
    cr_assert(r.passed, "%s, attention %d: %s[%lld] analytic %g numeric %g", o.cell->name, o.attention,
              loom_tensor_name(g, b[r.worst_tensor].t), (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
    free(b);
    loom_store_free(s);
    loom_graph_free(g);
}

Test(seq2seq, gradcheck_plain) { gradcheck_model(opts(&loom_cell_gru, LOOM_ATTN_NONE, false, 2)); }
Test(seq2seq, gradcheck_additive_attention) { gradcheck_model(opts(&loom_cell_lstm, LOOM_ATTN_ADDITIVE, false, 1)); }
Test(seq2seq, gradcheck_dot_attention) { gradcheck_model(opts(&loom_cell_gru, LOOM_ATTN_DOT, false, 2)); }
Test(seq2seq, gradcheck_plain_dot_attention) { gradcheck_model(opts(&loom_cell_lstm, LOOM_ATTN_PLAIN, false, 2)); }
Test(seq2seq, gradcheck_bidirectional_bridge) { gradcheck_model(opts(&loom_cell_lstm, LOOM_ATTN_DOT, true, 2)); }
Test(seq2seq, gradcheck_user_cell_bidirectional) { gradcheck_model(opts(&mgu_cell, LOOM_ATTN_ADDITIVE, true, 1)); }
Test(seq2seq, gradcheck_scheduled_sampling)
{
    loom_seq2seq_opts o = opts(&loom_cell_rnn_tanh, LOOM_ATTN_ADDITIVE, false, 1);
    o.sampled = true;
    gradcheck_model(o);
}

/* Runs the training graph's loss and attention with the given inputs. */
static void run_loss(const loom_seq2seq_opts *o, const int32_t *s, const int32_t *d, const int32_t *t, float *loss,
                     float *attention)
{
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    cr_assert_eq(loom_seq2seq_build(g, &m, o), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 5);
    loom_tensor outs[2] = {m.loss, m.attention};
    loom_plan *p = loom_plan_new(g, outs, attention ? 2 : 1, &(loom_plan_opts){.eval = true});
    cr_assert(p, "%s", loom_graph_error(g));
    loom_store_bind(st, p);
    loom_bind(p, m.src, (void *)s), loom_bind(p, m.src_len, src_len), loom_bind(p, m.dec_in, (void *)d);
    loom_bind(p, m.tgt, (void *)t), loom_bind(p, m.tgt_len, tgt_len);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    *loss = loom_plan_output(p, m.loss)[0];
    if (attention) memcpy(attention, loom_plan_output(p, m.attention), sizeof(float) * TT * B * TS);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* Whatever stands in the padding (source or target) changes nothing, and
 * padded source positions get attention weight 0. */
Test(seq2seq, padding_changes_nothing)
{
    for (int a = LOOM_ATTN_NONE; a <= LOOM_ATTN_PLAIN; a++)
        for (int bi = 0; bi < 2 - (a == LOOM_ATTN_PLAIN); bi++) {
            loom_seq2seq_opts o = opts(&loom_cell_lstm, a, bi, 2);
            float l0, l1, w[TT * B * TS];
            run_loss(&o, src, dec_in, tgt, &l0, a ? w : NULL);
            int32_t s2[TS * B], d2[TT * B], t2[TT * B];
            memcpy(s2, src, sizeof s2), memcpy(d2, dec_in, sizeof d2), memcpy(t2, tgt, sizeof t2);
            for (int t = 0; t < TS; t++)
                if (t >= src_len[1]) s2[t * B + 1] = (t * 7) % V_SRC;
            for (int t = 0; t < TT; t++)
                if (t >= tgt_len[1]) t2[t * B + 1] = (t * 3) % V_TGT, d2[t * B + 1] = (t + 2) % V_TGT;
            d2[0 * B + 1] = 2; /* step 0 of a sentence reads <bos>: valid */
            run_loss(&o, s2, d2, t2, &l1, NULL);
            cr_assert(isfinite(l0) && l0 > 0);
            cr_assert_eq(l0, l1, "attention %d bidirectional %d: %.9g vs %.9g", a, bi, l0, l1);
            for (int t = 0; a && t < TT; t++)
                for (int b = 0; b < B; b++) {
                    double sum = 0;
                    for (int j = 0; j < TS; j++) {
                        float x = w[(t * B + b) * TS + j];
                        if (j >= src_len[b]) cr_assert_eq(x, 0.0f, "padded position %d of sentence %d weighs %g", j, b, x);
                        else cr_assert_gt(x, 0.0f);
                        sum += x;
                    }
                    cr_assert_float_eq(sum, 1.0, 1e-5);
                }
        }
}

/* The masked loss is the mean over valid target positions: with the
 * second sentence's two padded positions, it is (l₀ + l₁ + l₂ + l'₀) / 4. */
Test(seq2seq, loss_is_the_mean_over_valid_positions)
{
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    loom_seq2seq_opts o = opts(&loom_cell_gru, LOOM_ATTN_DOT, false, 1);
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 2);
    loom_tensor outs[2] = {m.loss, m.logits};
    loom_plan *p = loom_plan_new(g, outs, 2, NULL);
    loom_store_bind(st, p);
    loom_binding b[8];
    int n = bind_inputs(&m, b);
    for (int i = 0; i < n; i++) loom_bind(p, b[i].t, b[i].data);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    const float *lg = loom_plan_output(p, m.logits);
    double sum = 0;
    int count = 0;
    for (int t = 0; t < TT; t++)
        for (int bb = 0; bb < B; bb++) {
            if (t >= tgt_len[bb]) continue;
            const float *x = lg + (t * B + bb) * V_TGT;
            double mx = x[0], z = 0;
            for (int v = 1; v < V_TGT; v++) mx = x[v] > mx ? x[v] : mx;
            for (int v = 0; v < V_TGT; v++) z += exp(x[v] - mx);
            sum += mx + log(z) - x[tgt[t * B + bb]], count++;
        }
    cr_assert_float_eq(loom_plan_output(p, m.loss)[0], sum / count, 1e-5);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* The decoding graph fed the gold tokens step by step gives the training
 * graph's log-probabilities and attention: the two graphs are one model. */
static void decoder_matches_training(loom_attention a, bool bi, int dec_layers)
{
    loom_seq2seq_opts o = opts(&loom_cell_lstm, a, bi, 2);
    o.dec_layers = dec_layers;
    loom_graph *g = loom_graph_new(), *gd = loom_graph_new();
    loom_seq2seq m, d;
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert_eq(loom_seq2seq_build_decoder(gd, &d, &o, B), LOOM_OK, "%s", loom_graph_error(gd));
    loom_store *st = loom_store_new(g), *sd = loom_store_new(gd);
    loom_store_init(st, 9);
    cr_assert_eq(loom_store_count(st), loom_store_count(sd), "the same parameters");
    for (int i = 0; i < loom_store_count(sd); i++) {
        float *w = loom_store_data_by_name(st, loom_store_name(sd, i));
        cr_assert(w, "%s", loom_store_name(sd, i));
        memcpy(loom_store_data(sd, loom_store_tensor(sd, i)), w, sizeof(float) * (size_t)loom_store_numel(sd, i));
    }
    float loss, w[TT * B * TS];
    loom_tensor outs[3] = {m.logits, m.attention};
    loom_plan *p = loom_plan_new(g, outs, a ? 2 : 1, &(loom_plan_opts){.eval = true});
    loom_store_bind(st, p);
    loom_binding b[8];
    int n = bind_inputs(&m, b);
    for (int i = 0; i < n; i++) loom_bind(p, b[i].t, b[i].data);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    (void)loss;
    if (a) memcpy(w, loom_plan_output(p, m.attention), sizeof w);

    int S = o.cell->n_states, L = dec_layers ? dec_layers : o.layers, H = o.hidden, K = (bi ? 2 : 1) * H;
    loom_tensor eo[2 + LOOM_CELL_MAX_STATES] = {a ? d.memory : d.context, d.keys};
    int ne = a ? 2 : 1;
    for (int s = 0; s < S; s++) eo[ne++] = d.init[s];
    loom_plan *pe = loom_plan_new(gd, eo, ne, &(loom_plan_opts){.eval = true});
    loom_tensor so[2 + LOOM_CELL_MAX_STATES] = {d.log_probs, d.step_attention};
    int ns = a ? 2 : 1;
    for (int s = 0; s < S; s++) so[ns++] = d.state_out[s];
    loom_plan *ps = loom_plan_new(gd, so, ns, &(loom_plan_opts){.eval = true});
    cr_assert(pe && ps, "%s", loom_graph_error(gd));
    loom_store_bind(sd, pe), loom_store_bind(sd, ps);
    loom_bind(pe, d.src, src), loom_bind(pe, d.src_len, src_len);
    cr_assert_eq(loom_run(pe), LOOM_OK, "%s", loom_plan_error(pe));
    float state[LOOM_CELL_MAX_STATES][4 * 2 * 4];
    for (int s = 0; s < S; s++) memcpy(state[s], loom_plan_output(pe, d.init[s]), sizeof(float) * (size_t)(L * B * H));
    for (int s = 0; s < S; s++) /* a decoder deeper than the encoder starts its extra bottom layers at zero */
        for (int k = 0; k < (L - o.layers) * B * H; k++) cr_assert_eq(state[s][k], 0.0f, "state %d, element %d", s, k);
    if (L > o.layers) cr_assert_neq(state[0][(L - o.layers) * B * H], 0.0f, "the top layers start from the encoder's");
    float memory[B * TS * 8], keys[B * TS * 4], context[B * 4];
    int32_t prev[B];
    if (a) {
        memcpy(memory, loom_plan_output(pe, d.memory), sizeof(float) * (size_t)(B * TS * K));
        memcpy(keys, loom_plan_output(pe, d.keys), sizeof(float) * (size_t)(B * TS * H));
        if (a == LOOM_ATTN_PLAIN) cr_assert(!memcmp(keys, memory, sizeof keys), "plain: the keys are the memory");
        loom_bind(ps, d.memory_in, memory), loom_bind(ps, d.keys_in, keys), loom_bind(ps, d.len_in, src_len);
    } else {
        memcpy(context, loom_plan_output(pe, d.context), sizeof context);
        loom_bind(ps, d.context_in, context);
    }
    for (int s = 0; s < S; s++) loom_bind(ps, d.state_in[s], state[s]);
    loom_bind(ps, d.prev, prev);
    const float *lg = loom_plan_output(p, m.logits);
    for (int t = 0; t < TT; t++) {
        for (int bb = 0; bb < B; bb++) prev[bb] = dec_in[t * B + bb];
        cr_assert_eq(loom_run(ps), LOOM_OK, "%s", loom_plan_error(ps));
        const float *lp = loom_plan_output(ps, d.log_probs);
        for (int bb = 0; bb < B; bb++) {
            const float *x = lg + (t * B + bb) * V_TGT;
            double mx = x[0], z = 0;
            for (int v = 1; v < V_TGT; v++) mx = x[v] > mx ? x[v] : mx;
            for (int v = 0; v < V_TGT; v++) z += exp(x[v] - mx);
            for (int v = 0; v < V_TGT; v++)
                cr_assert_float_eq(lp[bb * V_TGT + v], x[v] - mx - log(z), 1e-5, "step %d row %d token %d", t, bb, v);
            for (int j = 0; a && j < TS; j++)
                cr_assert_float_eq(loom_plan_output(ps, d.step_attention)[bb * TS + j], w[(t * B + bb) * TS + j], 1e-6);
            if (a == LOOM_ATTN_PLAIN) { /* by hand: softmax_j (qᵀ k_j) over the valid positions, q the top layer's state */
                const float *q = state[0] + ((L - 1) * B + bb) * H;
                double sc[TS], mx = -1e300, z = 0;
                for (int j = 0; j < src_len[bb]; j++) {
                    sc[j] = 0;
                    for (int k = 0; k < H; k++) sc[j] += (double)q[k] * memory[(bb * TS + j) * K + k];
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < src_len[bb]; j++) z += exp(sc[j] - mx);
                for (int j = 0; j < TS; j++)
                    cr_assert_float_eq(w[(t * B + bb) * TS + j], j < src_len[bb] ? exp(sc[j] - mx) / z : 0.0, 1e-5,
                                       "plain: step %d row %d position %d", t, bb, j);
            }
        }
        for (int s = 0; s < S; s++) memcpy(state[s], loom_plan_output(ps, d.state_out[s]), sizeof(float) * (size_t)(L * B * H));
    }
    loom_plan_free(p), loom_plan_free(pe), loom_plan_free(ps);
    loom_store_free(st), loom_store_free(sd);
    loom_graph_free(g), loom_graph_free(gd);
}

Test(seq2seq, decoder_graph_is_the_training_graph_plain) { decoder_matches_training(LOOM_ATTN_NONE, false, 0); }
Test(seq2seq, decoder_graph_is_the_training_graph_additive) { decoder_matches_training(LOOM_ATTN_ADDITIVE, true, 0); }
Test(seq2seq, decoder_graph_is_the_training_graph_dot) { decoder_matches_training(LOOM_ATTN_DOT, false, 0); }
Test(seq2seq, decoder_graph_is_the_training_graph_plain_dot) { decoder_matches_training(LOOM_ATTN_PLAIN, false, 0); }
/* Different depths (Britz et al.): a decoder deeper than its encoder, and one shallower. */
Test(seq2seq, decoder_graph_is_the_training_graph_deeper_decoder) { decoder_matches_training(LOOM_ATTN_ADDITIVE, true, 4); }
Test(seq2seq, decoder_graph_is_the_training_graph_shallower_decoder) { decoder_matches_training(LOOM_ATTN_NONE, false, 1); }
Test(seq2seq, gradcheck_different_depths)
{
    loom_seq2seq_opts o = opts(&loom_cell_gru, LOOM_ATTN_DOT, false, 1);
    o.dec_layers = 3;
    gradcheck_model(o);
    o = opts(&loom_cell_lstm, LOOM_ATTN_NONE, true, 2);
    o.dec_layers = 1;
    gradcheck_model(o);
}

/* Plain dot-product attention has no W_k (its weights are checked by hand
 * in decoder_graph_is_the_training_graph_plain_dot); a bidirectional
 * encoder, whose outputs are wider than the query, is refused. */
Test(seq2seq, plain_dot_attention_has_no_projection)
{
    loom_seq2seq_opts o = opts(&loom_cell_gru, LOOM_ATTN_PLAIN, false, 1);
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(!loom_valid(loom_graph_find(g, "decoder.attention.W_k.weight")), "no projection");
    loom_graph_free(g);
    o.bidirectional = true;
    g = loom_graph_new();
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "a bidirectional encoder's are 8 wide"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}

/* loom_rnn_step, step after step, is loom_rnn_apply — with every way of
 * joining the layers (3 layers: the first's input narrower than its output). */
static void step_matches_unroll(loom_stacking stacking)
{
    enum { L = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 4, .layers = L,
                                            .stacking = stacking});
    loom_tensor x = loom_input(g, "x", loom_shape3(5, 2, 3));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor st[LOOM_CELL_MAX_STATES][LOOM_RNN_MAX_LAYERS], ys[5];
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < L; l++) st[s][l] = loom_fill(g, loom_shape2(2, 4), 0.0f);
    for (int t = 0; t < 5; t++) {
        ys[t] = loom_rnn_step(g, &rnn, t, loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(2, 3)), st);
        ys[t] = loom_reshape(g, ys[t], loom_shape3(1, 2, 4));
    }
    loom_tensor diff = loom_sub(g, loom_concat(g, ys, 5, 0), o.output);
    loom_tensor c = loom_sub(g, loom_reshape(g, st[1][L - 1], loom_shape3(1, 2, 4)), loom_slice(g, o.final[1], 0, L - 1, 1));
    loom_tensor err = loom_add(g, loom_sum_all(g, loom_mul(g, diff, diff)), loom_sum_all(g, loom_mul(g, c, c)));
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 1);
    loom_binding b[64];
    int n = loom_store_bindings(s, b, 63);
    b[n++] = (loom_binding){x, rnd_buf(30, -1, 1)};
    float *v = eval(g, err, b, n);
    cr_assert_eq(v[0], 0.0f, "stacking %d", (int)stacking);
    cr_assert(!loom_valid(loom_rnn_step(g, &rnn, 0, x, st)), "a (T, B, I) input is refused");
    cr_assert(strstr(loom_graph_error(g), "(B, 3)"), "%s", loom_graph_error(g));
    free(v), free((void *)b[n - 1].data);
    loom_store_free(s);
    loom_graph_free(g);
}
Test(seq2seq, rnn_step_is_the_unrolled_stack) { step_matches_unroll(LOOM_STACK_PLAIN); }
Test(seq2seq, rnn_step_is_the_unrolled_stack_residual) { step_matches_unroll(LOOM_STACK_RESIDUAL); }
Test(seq2seq, rnn_step_is_the_unrolled_stack_highway) { step_matches_unroll(LOOM_STACK_HIGHWAY); }
Test(seq2seq, rnn_step_is_the_unrolled_stack_dense) { step_matches_unroll(LOOM_STACK_DENSE); }

/* ---- decoding ---- */

/* A hand-made decoder over tokens x = 0, y = 4 (<bos> 2, <eos> 3):
 *   first token: x 0.5, y 0.4, <eos> 0.1;
 *   after x: x 0.36, y 0.34, <eos> 0.3;  after y: <eos> 0.9;
 *   after two tokens: <eos> 0.9.
 * Greedy takes x, x, <eos> (p = 0.162); the likeliest is y, <eos> (0.36). */
typedef struct {
    int R, hist[64][8], n[64];
} toy;

static loom_status toy_step(void *ctx, int t, const int32_t *tokens, const int32_t *parent, float *lp)
{
    toy *d = ctx;
    int hist[64][8], n[64];
    memcpy(hist, d->hist, sizeof hist), memcpy(n, d->n, sizeof n);
    for (int r = 0; r < d->R; r++) {
        if (parent) {
            memcpy(d->hist[r], hist[parent[r]], sizeof hist[0]);
            d->n[r] = n[parent[r]];
            d->hist[r][d->n[r]++] = tokens[r];
        } else {
            cr_assert_eq(tokens[r], LOOM_BOS);
            d->n[r] = 0;
        }
        cr_assert_eq(d->n[r], t);
        double p[5] = {0.02, 0.02, 0.02, 0.9, 0.04};
        if (t == 0) p[0] = 0.5, p[4] = 0.4, p[3] = 0.1 - 0.04;
        else if (t == 1 && d->hist[r][0] == 0) p[0] = 0.36, p[4] = 0.34, p[3] = 0.3 - 0.06;
        for (int v = 0; v < 5; v++) lp[r * 5 + v] = (float)log(p[v]);
    }
    return LOOM_OK;
}

Test(decode, beam_finds_what_greedy_misses)
{
    int32_t out[3 * 8], len[3], rows[3 * 8];
    double score[3];
    for (int beam = 1; beam <= 4; beam++)
        for (int norm = 0; norm < 2; norm++) {
            toy d = {.R = 3 * beam};
            loom_search_opts o = {.beam = beam, .length_norm = norm, .max_len = 8};
            cr_assert_eq(loom_search(3, 5, LOOM_BOS, LOOM_EOS, &o, toy_step, &d, out, len, score, rows), LOOM_OK);
            for (int i = 0; i < 3; i++) {
                if (beam == 1) {
                    cr_assert(len[i] == 2 && out[i * 8] == 0 && out[i * 8 + 1] == 0, "greedy: x x");
                    cr_assert_float_eq(score[i], log(0.5 * 0.36 * 0.9) / (norm ? 3 : 1), 1e-5);
                } else {
                    cr_assert(len[i] == 1 && out[i * 8] == 4, "beam %d: y (len %d, first %d)", beam, len[i], out[i * 8]);
                    cr_assert_float_eq(score[i], log(0.4 * 0.9) / (norm ? 2 : 1), 1e-5);
                }
                cr_assert_eq(rows[i * 8] / beam, i, "a sentence's rows are its own");
            }
        }
    /* out of steps: what is unfinished is the answer */
    toy d = {.R = 1};
    cr_assert_eq(loom_search(1, 5, LOOM_BOS, LOOM_EOS, &(loom_search_opts){.max_len = 1}, toy_step, &d, out, len, score, NULL),
                 LOOM_OK);
    cr_assert(len[0] == 1 && out[0] == 0);
    cr_assert_float_eq(score[0], log(0.5), 1e-6);
}

/* The toy decoder's attention over a source of two words: every first
 * step reads word 0; after x the next step reads word 1, after y it
 * mostly reads word 0 again (0.95, 0.05); later steps both halves. */
static float toy_attn[64 * 2];
static const float *toy_attention(void *ctx)
{
    toy *d = ctx;
    for (int r = 0; r < d->R; r++) {
        float *a = toy_attn + 2 * r;
        if (d->n[r] == 0) a[0] = 1, a[1] = 0;
        else if (d->n[r] == 1) a[0] = d->hist[r][0] == 0 ? 0 : 0.95f, a[1] = d->hist[r][0] == 0 ? 1 : 0.05f;
        else a[0] = a[1] = 0.5f;
    }
    return toy_attn;
}

/* The coverage penalty (GNMT): "y" leaves the second source word almost
 * unattended (coverage 0.05: β·log 0.05 ≈ −3.0β), so at β = 1 beam search
 * prefers "x x" (log 0.162, full coverage), which it found; at β = 0 "y"
 * wins as before. Asking for it without the attention is refused. */
Test(decode, coverage_penalty_prefers_translations_that_attend_every_word)
{
    int32_t out[8], len, src_len = 2;
    double score;
    for (int beta = 0; beta <= 1; beta++) {
        toy d = {.R = 2};
        loom_search_opts o = {.beam = 2, .max_len = 8, .coverage = beta, .attention = toy_attention, .src_steps = 2,
                              .src_len = &src_len};
        cr_assert_eq(loom_search(1, 5, LOOM_BOS, LOOM_EOS, &o, toy_step, &d, out, &len, &score, NULL), LOOM_OK);
        if (!beta) cr_assert(len == 1 && out[0] == 4 && fabs(score - log(0.36)) < 1e-5, "y: %d tokens, %g", len, score);
        else cr_assert(len == 2 && out[0] == 0 && out[1] == 0 && fabs(score - log(0.162)) < 1e-5, "x x: %d tokens, %g", len, score);
    }
    toy d = {.R = 2};
    cr_assert_eq(loom_search(1, 5, LOOM_BOS, LOOM_EOS, &(loom_search_opts){.beam = 2, .coverage = 1}, toy_step, &d, out, &len, &score,
                             NULL),
                 LOOM_ERR_ARG);
}

/* A decoder whose next-token distribution is a hash of the prefix (V = 4,
 * <eos> = 3), for exhaustive search against brute force. */
typedef struct {
    int R;
    uint64_t start, h[1024], prev[1024];
} hashed;
static void hashed_dist(uint64_t h, double *p)
{
    double z = 0;
    for (int v = 0; v < 4; v++) z += p[v] = 0.05 + (double)(loom_mix(h * 4 + (uint64_t)v) % 1000) / 1000.0;
    for (int v = 0; v < 4; v++) p[v] /= z;
}
static loom_status hashed_step(void *ctx, int t, const int32_t *tokens, const int32_t *parent, float *lp)
{
    hashed *d = ctx;
    (void)t;
    memcpy(d->prev, d->h, sizeof d->h);
    for (int r = 0; r < d->R; r++) {
        d->h[r] = parent ? loom_mix(d->prev[parent[r]] * 31 + (uint64_t)tokens[r] + 1) : d->start;
        double p[4];
        hashed_dist(d->h[r], p);
        for (int v = 0; v < 4; v++) lp[r * 4 + v] = (float)log(p[v]);
    }
    return LOOM_OK;
}
/* The likeliest sequence by brute force: every prefix of up to L tokens, ended by <eos> or by L. */
static void brute(uint64_t h, int depth, int L, double logp, int32_t *seq, int32_t *best, int *best_len, double *best_lp)
{
    double p[4];
    hashed_dist(h, p);
    if (logp + log(p[3]) > *best_lp && depth < L) { /* <eos> here */
        *best_lp = logp + log(p[3]), *best_len = depth;
        memcpy(best, seq, sizeof(int32_t) * (size_t)depth);
    }
    for (int v = 0; v < 3; v++) {
        seq[depth] = v;
        if (depth + 1 == L) { /* out of steps: unfinished */
            if (logp + log(p[v]) > *best_lp) *best_lp = logp + log(p[v]), *best_len = L, memcpy(best, seq, sizeof(int32_t) * (size_t)L);
        } else {
            brute(loom_mix(h * 31 + (uint64_t)v + 1), depth + 1, L, logp + log(p[v]), seq, best, best_len, best_lp);
        }
    }
}

/* Exhaustive search finds the likeliest sequence brute force finds, for
 * several decoders; it needs a beam of (V − 1)^(L − 1) rows and refuses less. */
Test(decode, exhaustive_search_is_brute_force)
{
    cr_assert_eq(loom_search_exhaustive_beam(4, 4), 27);
    cr_assert_eq(loom_search_exhaustive_beam(30, 4), -1, "past 1024 rows");
    int beam_misses = 0;
    for (uint64_t start = 1; start <= 40; start++) { /* 40 decoders: each its start hash */
        enum { L = 4 };
        hashed d = {.R = 27, .start = start};
        int32_t out[L], len, seq[L], best[L];
        double score, best_lp = -INFINITY, beam_score;
        int best_len = 0;
        cr_assert_eq(loom_search(1, 4, 2, 3, &(loom_search_opts){.beam = 27, .max_len = L, .exhaustive = true}, hashed_step, &d, out,
                                 &len, &score, NULL),
                     LOOM_OK);
        brute(start, 0, L, 0, seq, best, &best_len, &best_lp);
        cr_assert_eq(len, best_len, "decoder %d", (int)start);
        cr_assert(!memcmp(out, best, sizeof(int32_t) * (size_t)len), "decoder %d", (int)start);
        cr_assert_float_eq(score, best_lp, 1e-5);
        hashed e = {.R = 2, .start = start};
        cr_assert_eq(loom_search(1, 4, 2, 3, &(loom_search_opts){.beam = 2, .max_len = L}, hashed_step, &e, out, &len, &beam_score, NULL),
                     LOOM_OK);
        cr_assert(beam_score <= score + 1e-6, "no search beats exhaustive search");
        beam_misses += beam_score < score - 1e-6;
    }
    cr_assert_gt(beam_misses, 0, "beam 2 misses the best of some of these decoders");
    hashed d = {.R = 26};
    int32_t out[4], len;
    cr_assert_eq(loom_search(1, 4, 2, 3, &(loom_search_opts){.beam = 26, .max_len = 4, .exhaustive = true}, hashed_step, &d, out, &len,
                             NULL, NULL),
                 LOOM_ERR_ARG);
}

/* The search as a tree (beam 2 on the toy decoder): at step 0 x and y are
 * kept and the early <eos> pruned; at step 1 y <eos> finishes (the winner,
 * log 0.36), x x and x y are kept, x <eos> pruned; the winner's path is the
 * DOT's bold one, and Graphviz draws it. */
Test(decode, beam_search_tree)
{
    int32_t out[8], len;
    loom_search_node nodes[64];
    loom_search_tree tree = {nodes, 64, 0, 0};
    toy d = {.R = 2};
    cr_assert_eq(loom_search(1, 5, LOOM_BOS, LOOM_EOS, &(loom_search_opts){.beam = 2, .max_len = 8, .tree = &tree}, toy_step, &d, out,
                             &len, NULL, NULL),
                 LOOM_OK);
    cr_assert(len == 1 && out[0] == 4, "y wins");
    cr_assert(tree.n > 4 && tree.n <= 2 * 2 * 2, "at most 2·beam continuations a step: %d", tree.n);
    const loom_search_node *w = &nodes[tree.best];
    cr_assert(w->token == LOOM_EOS && w->fate == LOOM_CAND_FINISHED && w->step == 1, "the winner ends at step 1");
    cr_assert_float_eq(w->score, log(0.4 * 0.9), 1e-5);
    cr_assert(w->parent >= 0 && nodes[w->parent].token == 4 && nodes[w->parent].parent == -1 && nodes[w->parent].fate == LOOM_CAND_KEPT,
              "after y, which follows <bos>");
    int kept0 = 0, pruned_eos0 = 0, kept1 = 0;
    for (int k = 0; k < tree.n; k++) {
        kept0 += nodes[k].step == 0 && nodes[k].fate == LOOM_CAND_KEPT;
        pruned_eos0 += nodes[k].step == 0 && nodes[k].token == LOOM_EOS && nodes[k].fate == LOOM_CAND_PRUNED;
        kept1 += nodes[k].step == 1 && nodes[k].fate == LOOM_CAND_KEPT;
        cr_assert(nodes[k].parent < k, "a node follows its parent");
        if (nodes[k].parent >= 0) cr_assert_eq(nodes[nodes[k].parent].fate, LOOM_CAND_KEPT, "only kept hypotheses go on");
    }
    cr_assert(kept0 == 2 && pruned_eos0 == 1 && kept1 == 2, "step 0: x, y kept, <eos> pruned; step 1: two kept");
    const char *labels[5] = {"x", "<pad>", "<bos>", "<eos>", "y"};
    char *dot;
    size_t n;
    cr_assert_eq(loom_search_tree_dot(&tree, labels, 5, "toy", &dot, &n, NULL), LOOM_OK);
    char want[64];
    snprintf(want, sizeof want, "c%d [label=\"<eos>\\n-1.02\"", tree.best);
    cr_assert(strstr(dot, want) && strstr(dot, "penwidth=2.5"), "the winner's node, bold: %s", dot);
    if (loom_dot_can_render()) {
        char path[] = "/tmp/loom-tree-XXXXXX.svg";
        int fd = mkstemps(path, 4);
        cr_assert(fd >= 0);
        close(fd);
        cr_assert_eq(loom_dot_render(dot, "svg", path, NULL), LOOM_OK);
        char *svg = slurp(path);
        cr_assert(strstr(svg, "<svg"));
        free(svg);
        unlink(path);
    }
    free(dot);
    /* a tree without room counts its nodes and writes none */
    loom_search_tree none = {NULL, 0, 0, 0};
    toy e = {.R = 2};
    cr_assert_eq(loom_search(1, 5, LOOM_BOS, LOOM_EOS, &(loom_search_opts){.beam = 2, .max_len = 8, .tree = &none}, toy_step, &e, out,
                             &len, NULL, NULL),
                 LOOM_OK);
    cr_assert_eq(none.n, tree.n);
}

/* A decoder whose early endings are unlikely but rank high: for the first
 * two tokens a 0.9, <eos> 0.06, b 0.04, then <eos> 0.9. The best is "a a"
 * (0.729); the endings "" (0.06) and "a" (0.054), finished first, must not
 * end the search because beam of them are finished. */
static loom_status early_eos_step(void *ctx, int t, const int32_t *tokens, const int32_t *parent, float *lp)
{
    (void)ctx, (void)tokens, (void)parent;
    toy *d = ctx;
    for (int r = 0; r < d->R; r++) {
        double p[5] = {0.9, 1e-4, 1e-4, 0.06, 0.04}; /* a, <pad>, <bos>, <eos>, b */
        if (t >= 2) p[0] = p[4] = 0.05, p[3] = 0.9;
        for (int v = 0; v < 5; v++) lp[r * 5 + v] = (float)log(p[v]);
    }
    return LOOM_OK;
}

Test(decode, an_unlikely_early_end_does_not_stop_the_search)
{
    for (int beam = 1; beam <= 3; beam++) {
        toy d = {.R = beam};
        int32_t out[6], len;
        double score;
        loom_search_opts o = {.beam = beam, .max_len = 6};
        cr_assert_eq(loom_search(1, 5, LOOM_BOS, LOOM_EOS, &o, early_eos_step, &d, out, &len, &score, NULL), LOOM_OK);
        cr_assert(len == 2 && out[0] == 0 && out[1] == 0, "beam %d: %d tokens, first %d", beam, len, out[0]);
        cr_assert_float_eq(score, log(0.9 * 0.9 * 0.9), 1e-5);
    }
}

/* Sampling draws from the distribution: the first token is x half the time. */
Test(decode, sampling_follows_the_distribution)
{
    enum { N = 64, ROUNDS = 40 };
    int32_t out[N * 4], len[N];
    int x = 0, y = 0, e = 0;
    for (int k = 0; k < ROUNDS; k++) {
        toy d = {.R = N};
        loom_search_opts o = {.temperature = 1, .max_len = 4, .seed = (uint64_t)k + 1};
        cr_assert_eq(loom_search(N, 5, LOOM_BOS, LOOM_EOS, &o, toy_step, &d, out, len, NULL, NULL), LOOM_OK);
        for (int i = 0; i < N; i++) {
            if (!len[i]) e++;
            else if (out[i * 4] == 0) x++;
            else if (out[i * 4] == 4) y++;
        }
    }
    double total = N * ROUNDS;
    cr_assert(fabs(x / total - 0.5) < 0.04 && fabs(y / total - 0.4) < 0.04 && fabs(e / total - 0.06) < 0.03,
              "x %d y %d eos %d of %g", x, y, e, total);
}

/* A translator's greedy output is the argmax of the training graph fed
 * that output (teacher forcing with its own tokens), <eos> after the last
 * token; attention rows sum to 1 and skip the padding. */
Test(decode, translator_greedy_is_the_models_argmax)
{
    enum { ML = 6 };
    loom_seq2seq_opts o = opts(&loom_cell_gru, LOOM_ATTN_ADDITIVE, true, 2);
    o.tgt_steps = ML + 1;
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 21);
    float *w = loom_store_data_by_name(st, "decoder.dense.bias");
    w[LOOM_EOS] -= 1.0f; /* later <eos>: longer outputs */
    loom_error lerr = {0};
    o.batch = 1; /* the translator works one sentence at a time: batching must not matter */
    loom_translator *tr = loom_translator_new(&o, st, 1, &lerr);
    cr_assert(tr, "%s", lerr.msg);
    int32_t s[B * TS], out[B * ML], len[B];
    for (int i = 0; i < B; i++)
        for (int j = 0; j < TS; j++) s[i * TS + j] = src[j * B + i];
    float att[B * ML * TS];
    cr_assert_eq(loom_translate(tr, s, src_len, B, &(loom_search_opts){.max_len = ML}, out, len, NULL, att, &lerr),
                 LOOM_OK, "%s", lerr.msg);
    int32_t din[(ML + 1) * B], tg[(ML + 1) * B], tl[B];
    for (int b = 0; b < B; b++) {
        tl[b] = len[b] + 1;
        din[b] = LOOM_BOS;
        for (int t = 0; t <= ML; t++) {
            int32_t tok = t < len[b] ? out[b * ML + t] : LOOM_EOS;
            tg[t * B + b] = tok;
            if (t < ML) din[(t + 1) * B + b] = tok;
        }
    }
    loom_plan *p = loom_plan_new(g, &m.logits, 1, &(loom_plan_opts){.eval = true});
    loom_store_bind(st, p);
    loom_bind(p, m.src, src), loom_bind(p, m.src_len, src_len), loom_bind(p, m.dec_in, din);
    loom_bind(p, m.tgt, tg), loom_bind(p, m.tgt_len, tl);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    const float *lg = loom_plan_output(p, m.logits);
    for (int b = 0; b < B; b++) {
        int stop = len[b] < ML ? len[b] + 1 : ML;
        for (int t = 0; t < stop; t++) {
            const float *x = lg + (t * B + b) * V_TGT;
            int best = 0;
            for (int v = 1; v < V_TGT; v++) best = x[v] > x[best] ? v : best;
            cr_assert_eq(best, tg[t * B + b], "sentence %d step %d", b, t);
        }
        for (int t = 0; t < len[b]; t++) {
            double sum = 0;
            for (int j = 0; j < TS; j++) {
                float a = att[(b * ML + t) * TS + j];
                if (j >= src_len[b]) cr_assert_eq(a, 0.0f);
                sum += a;
            }
            cr_assert_float_eq(sum, 1.0, 1e-5);
        }
    }
    cr_assert_eq(loom_translate(tr, s, src_len, B, &(loom_search_opts){.beam = 2}, out, len, NULL, NULL, &lerr),
                 LOOM_ERR_ARG);
    cr_assert(strstr(lerr.msg, "beam"), "%s", lerr.msg);
    s[3] = 99;
    lerr = (loom_error){0}; /* a loom_error keeps its first error */
    cr_assert_eq(loom_translate(tr, s, src_len, B, NULL, out, len, NULL, NULL, &lerr), LOOM_ERR_VALUE);
    cr_assert(strstr(lerr.msg, "vocabulary"), "%s", lerr.msg);
    loom_translator_free(tr);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* Beam search over a batch of sentences gives what it gives one sentence
 * at a time (rows and states stay with their sentence), for every cell
 * state count and attention. */
Test(decode, beam_batches_like_single_sentences)
{
    const loom_cell_def *cells[] = {&loom_cell_lstm, &loom_cell_gru, &mgu_cell};
    for (int c = 0; c < 3; c++) {
        loom_seq2seq_opts o = opts(cells[c], (loom_attention)c, c == 2, 2);
        loom_graph *g = loom_graph_new();
        loom_seq2seq m;
        cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
        loom_store *st = loom_store_new(g);
        loom_store_init(st, 4);
        loom_store_data_by_name(st, "decoder.dense.bias")[LOOM_EOS] -= 2.0f;
        loom_error lerr = {0};
        int32_t s[3 * TS] = {4, 5, 5, 3, 3, 1, 1, 1, 5, 4, 3, 1}, sl[3] = {4, 2, 3}, out[2][3 * 7], len[2][3];
        double score[2][3];
        for (int batch = 1; batch <= 2; batch++) {
            o.batch = batch;
            loom_translator *tr = loom_translator_new(&o, st, 3, &lerr);
            cr_assert(tr, "%s", lerr.msg);
            cr_assert_eq(loom_translate(tr, s, sl, 3, &(loom_search_opts){.beam = 3, .max_len = 7, .length_norm = 0.7},
                                        out[batch - 1], len[batch - 1], score[batch - 1], NULL, &lerr),
                         LOOM_OK, "%s", lerr.msg);
            loom_translator_free(tr);
        }
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(len[0][i], len[1][i], "%s sentence %d", cells[c]->name, i);
            cr_assert_eq(memcmp(out[0] + i * 7, out[1] + i * 7, (size_t)len[0][i] * sizeof(int32_t)), 0);
            cr_assert_float_eq(score[0][i], score[1][i], 1e-5);
        }
        loom_store_free(st);
        loom_graph_free(g);
    }
}

/* A trained model on one sentence: the probe's graph is fed the model's own
 * greedy translation, so its attention rows are the translator's and its
 * argmax is the translation; bad sentences are refused with a reason. */
Test(decode, probe_reads_its_own_translation)
{
    enum { ML = 5 };
    loom_seq2seq_opts o = opts(&loom_cell_lstm, LOOM_ATTN_DOT, false, 1);
    o.tgt_steps = ML;
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 5);
    loom_store_data_by_name(st, "decoder.dense.bias")[LOOM_EOS] -= 1.0f; /* longer outputs */
    int32_t s[TS] = {4, 5, LOOM_EOS, LOOM_PAD}, out[ML], len;
    loom_error err = {0};
    o.batch = 1;
    loom_translator *tr = loom_translator_new(&o, st, 1, &err);
    cr_assert(tr, "%s", err.msg);
    float att[ML * TS];
    int32_t sl = 3;
    cr_assert_eq(loom_translate(tr, s, &sl, 1, &(loom_search_opts){.max_len = ML}, out, &len, NULL, att, &err), LOOM_OK, "%s",
                 err.msg);
    loom_translator_free(tr);
    loom_seq2seq_probe p;
    cr_assert_eq(loom_seq2seq_probe_open(&p, &o, st, s, 3, &err), LOOM_OK, "%s", err.msg);
    cr_assert_eq(p.src_len, 3);
    cr_assert_eq(p.tgt_len, len < ML ? len + 1 : ML);
    for (int t = 0; t < len; t++) cr_assert_eq(p.tgt[t], out[t], "target %d is the translation's token", t);
    if (len < ML) cr_assert_eq(p.tgt[len], LOOM_EOS);
    float a[ML * TS];
    cr_assert_eq(loom_node_values(p.g, p.m.attention, p.binds, p.n_binds, a, ML * TS), LOOM_OK, "%s", loom_graph_error(p.g));
    for (int t = 0; t < p.tgt_len; t++)
        for (int j = 0; j < TS; j++)
            cr_assert_float_eq(a[t * TS + j], att[t * TS + j], 1e-5f, "the graph's attention is the translation's: %d, %d", t, j);
    float cut[ML * TS];
    cr_assert_eq(loom_seq2seq_attention_weights(p.g, &p.m, p.binds, p.n_binds, 0, p.tgt_len, p.src_len, cut), LOOM_OK);
    for (int t = 0; t < p.tgt_len; t++)
        for (int j = 0; j < p.src_len; j++) cr_assert_eq(cut[t * p.src_len + j], a[t * TS + j], "sentence 0's rows, cut: %d, %d", t, j);
    float loss;
    cr_assert_eq(loom_node_values(p.g, p.m.loss, p.binds, p.n_binds, &loss, 1), LOOM_OK);
    cr_assert(isfinite(loss) && loss > 0);
    cr_assert_eq(loom_seq2seq_attention_weights(p.g, &p.m, p.binds, p.n_binds, 1, 1, 1, cut), LOOM_ERR_ARG, "a batch of one");
    loom_seq2seq_probe_close(&p);
    s[1] = V_SRC;
    cr_assert_eq(loom_seq2seq_probe_open(&p, &o, st, s, 3, &err), LOOM_ERR_ARG);
    cr_assert(strstr(err.msg, "token 2 of the sentence (6) is not in the model's 6"), "%s", err.msg);
    err = (loom_error){0};
    cr_assert_eq(loom_seq2seq_probe_open(&p, &o, st, s, TS + 1, &err), LOOM_ERR_ARG);
    cr_assert(strstr(err.msg, "a sentence of 5 tokens for a model of 4 source steps"), "%s", err.msg);
    loom_store_free(st);
    loom_graph_free(g);
}
