/* Reverse mode: fan-out sums, stop_gradient, pruning, tags, second order,
 * and a hand-derived BPTT through a 3-step tanh RNN. */
#include "helpers.h"
#include "tool.h"

/* Gradient values of `loss` with respect to each wrt, by running a plan. */
static void grads_of(loom_graph *g, loom_tensor loss, const loom_binding *wrt, int n, const loom_binding *fixed,
                     int nf, float **out)
{
    loom_tensor ts[8], gs[8];
    for (int i = 0; i < n; i++) ts[i] = wrt[i].t;
    cr_assert_eq(loom_backward(g, loss, ts, n, gs), LOOM_OK, "%s", loom_graph_error(g));
    loom_plan *p = loom_plan_new(g, gs, n, NULL);
    cr_assert(p, "%s", loom_graph_error(g));
    for (int i = 0; i < n; i++) loom_bind(p, wrt[i].t, wrt[i].data);
    for (int i = 0; i < nf; i++) loom_bind(p, fixed[i].t, fixed[i].data);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    for (int i = 0; i < n; i++) {
        int64_t k = loom_tensor_numel(g, gs[i]);
        out[i] = malloc((size_t)k * sizeof(float));
        loom_plan_read(p, gs[i], out[i], (size_t)k);
    }
    loom_plan_free(p);
}

Test(autodiff, shared_weight_gradients_sum_over_uses)
{
    loom_graph *g = loom_graph_new();
    loom_tensor w = loom_param(g, "w", loom_shape1(3));
    loom_tensor a = loom_input(g, "a", loom_shape1(3)), b = loom_input(g, "b", loom_shape1(3));
    /* L = Σ w⊙a + Σ w⊙b + Σ w⊙a  (w used three times, one use repeated) */
    loom_tensor loss = loom_add(g, loom_add(g, loom_sum_all(g, loom_mul(g, w, a)), loom_sum_all(g, loom_mul(g, w, b))),
                                loom_sum_all(g, loom_mul(g, a, w)));
    float wv[3] = {1, 2, 3}, av[3] = {1, 10, 100}, bv[3] = {-1, -2, -3};
    float *gw;
    grads_of(g, loss, (loom_binding[]){{w, wv}}, 1, (loom_binding[]){{a, av}, {b, bv}}, 2, &gw);
    assert_close(gw, (float[]){1, 18, 197}, 3, 0); /* 2a + b */
    free(gw);
    loom_graph_free(g);
}

/* Hash-consing merges equal expressions, but every wrt gets a gradient node
 * and a plan buffer of its own (clipping or updating one in place must not
 * change another), named after it. */
Test(autodiff, every_wrt_owns_its_gradient)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_param(g, "a", loom_shape1(3)), b = loom_param(g, "b", loom_shape1(3));
    loom_tensor A = loom_param(g, "A", loom_shape2(1, 3)), V = loom_param(g, "V", loom_shape1(3));
    loom_tensor u1 = loom_param(g, "u1", loom_shape1(3)), u2 = loom_param(g, "u2", loom_shape1(3));
    loom_tensor r = loom_input(g, "r", loom_shape1(3));
    /* L = Σ (a + b + reshape(A) + V) ⊙ r: all four gradients are r; u1, u2 unused */
    loom_tensor y = loom_add(g, loom_add(g, loom_add(g, a, b), loom_reshape(g, A, loom_shape1(3))), V);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, r));
    loom_tensor wrt[6] = {a, b, A, V, u1, u2}, gs[6];
    cr_assert_eq(loom_backward(g, loss, wrt, 6, gs), LOOM_OK, "%s", loom_graph_error(g));
    for (int i = 0; i < 6; i++) {
        char want[32];
        snprintf(want, sizeof want, "∂L/∂%s", loom_tensor_name(g, wrt[i]));
        cr_assert_str_eq(loom_tensor_name(g, gs[i]), want);
        for (int j = 0; j < i; j++) cr_assert_neq(gs[i].id, gs[j].id, "wrt %d and %d share a gradient node", i, j);
    }
    /* a second call without a finds the same gradients, none of them a's */
    loom_tensor again[6];
    cr_assert_eq(loom_backward(g, loss, wrt + 1, 5, again + 1), LOOM_OK, "%s", loom_graph_error(g));
    for (int i = 1; i < 6; i++) cr_assert_eq(again[i].id, gs[i].id, "wrt %d: the gradient of the first call", i);
    loom_plan *p = loom_plan_new(g, gs, 6, NULL);
    cr_assert(p, "%s", loom_graph_error(g));
    float av[3] = {1, 2, 3}, Av[3] = {4, 5, 6}, rv[3] = {0.5f, -1, 2}, zero[3] = {0};
    loom_bind_all(p, (loom_binding[]){{a, av}, {b, av}, {A, Av}, {V, Av}, {u1, av}, {u2, av}, {r, rv}}, 7);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    for (int i = 0; i < 6; i++) {
        const float *gi = loom_plan_output(p, gs[i]);
        assert_close(gi, i < 4 ? rv : zero, 3, 0);
        for (int j = 0; j < i; j++) {
            const float *gj = loom_plan_output(p, gs[j]);
            cr_assert(gi + 3 <= gj || gj + 3 <= gi, "the gradients of wrt %d and %d share memory", i, j);
        }
    }
    loom_plan_free(p);
    loom_graph_free(g);
}

Test(autodiff, stop_gradient_blocks_flow)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_param(g, "x", loom_shape1(3));
    loom_tensor loss = loom_sum_all(g, loom_mul(g, x, loom_stop_gradient(g, x)));
    float xv[3] = {1, -2, 3};
    float *gx;
    grads_of(g, loss, (loom_binding[]){{x, xv}}, 1, NULL, 0, &gx);
    assert_close(gx, xv, 3, 0); /* d/dx (x·c) with c = x held constant: x, not 2x */
    free(gx);
    /* and gradcheck notices that the analytic gradient is not the true one */
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, (loom_binding[]){{x, xv}}, 1, NULL, 0, NULL, &r), LOOM_OK);
    cr_assert(!r.passed, "gradcheck must catch a gradient that is off by a factor 2");
    cr_assert_float_eq(r.worst_numeric, 2 * r.worst_analytic, 1e-2);
    loom_graph_free(g);
}

Test(autodiff, prunes_what_does_not_reach_wrt)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape1(4)), w = loom_param(g, "w", loom_shape1(4));
    loom_tensor unused = loom_param(g, "unused", loom_shape2(2, 2));
    loom_graph_set_tags(g, (loom_tags){7, 0, 0, LOOM_ROLE_FORWARD, 0, 0, 0});
    loom_tensor u = loom_tanh(g, loom_tanh(g, loom_tanh(g, a))); /* depends on no wrt */
    loom_graph_set_tags(g, LOOM_TAGS_NONE);
    loom_tensor side = loom_sum_all(g, loom_exp(g, unused));
    (void)side;
    loom_tensor loss = loom_sum_all(g, loom_mul(g, u, w));
    int32_t before = loom_graph_size(g);
    loom_tensor gs[2];
    cr_assert_eq(loom_backward(g, loss, (loom_tensor[]){w, unused}, 2, gs), LOOM_OK);
    for (int32_t i = before; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        cr_assert_neq(n->tags.step, 7, "no gradient is built for the tanh chain that no wrt reaches");
        cr_assert(strcmp(loom_op_name(n->op), "tanh"), "no tanh gradient work");
    }
    cr_assert_leq(loom_graph_size(g) - before, 5, "a handful of nodes: %d", loom_graph_size(g) - before);
    const loom_node *z = loom_graph_node(g, gs[1]);
    cr_assert_str_eq(loom_op_name(z->op), "fill", "a wrt the loss ignores gets zeros");
    cr_assert_eq(z->attr.f[0], 0.0f);
    cr_assert(loom_shape_eq(z->shape, loom_shape2(2, 2)));
    loom_graph_free(g);
}

Test(autodiff, gradient_nodes_carry_forward_tags)
{
    loom_graph *g = loom_graph_new();
    loom_tensor h = loom_param(g, "h0", loom_shape1(2)), w = loom_param(g, "w", loom_shape1(2));
    for (int t = 0; t < 4; t++) {
        loom_graph_set_tags(g, (loom_tags){t, 2, 1, LOOM_ROLE_FORWARD, 0, 0, 0});
        h = loom_tanh(g, loom_mul(g, h, w));
    }
    loom_graph_set_tags(g, LOOM_TAGS_NONE);
    loom_tensor loss = loom_sum_all(g, h), gw;
    int32_t before = loom_graph_size(g);
    cr_assert_eq(loom_backward(g, loss, &w, 1, &gw), LOOM_OK);
    int per_step[4] = {0};
    for (int32_t i = before; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        cr_assert(n->tags.role == LOOM_ROLE_BACKWARD || n->tags.role == LOOM_ROLE_CONST);
        if (n->tags.step >= 0) {
            per_step[n->tags.step]++;
            cr_assert_eq(n->tags.layer, 2);
            cr_assert_eq(n->tags.dir, 1);
        }
    }
    for (int t = 0; t < 4; t++) cr_assert_gt(per_step[t], 0, "step %d has gradient nodes", t);
    cr_assert_eq(loom_graph_node(g, gw)->tags.role, LOOM_ROLE_BACKWARD);
    loom_graph_free(g);
}

Test(autodiff, second_order)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_param(g, "x", loom_shape1(4));
    /* L = Σ x³: dL/dx = 3x², d(Σ dL/dx)/dx = 6x */
    loom_tensor loss = loom_sum_all(g, loom_mul(g, loom_mul(g, x, x), x)), gx, ggx;
    cr_assert_eq(loom_backward(g, loss, &x, 1, &gx), LOOM_OK);
    cr_assert_eq(loom_backward(g, loom_sum_all(g, gx), &x, 1, &ggx), LOOM_OK);
    /* and tanh: d/dx Σ tanh'(x) = Σ -2 tanh(x)(1 - tanh²(x)) */
    loom_tensor gt, ggt;
    cr_assert_eq(loom_backward(g, loom_sum_all(g, loom_tanh(g, x)), &x, 1, &gt), LOOM_OK);
    cr_assert_eq(loom_backward(g, loom_sum_all(g, gt), &x, 1, &ggt), LOOM_OK);
    float xv[4] = {-1.5f, -0.5f, 0.25f, 2};
    float *v1 = eval(g, gx, (loom_binding[]){{x, xv}}, 1), *v2 = eval(g, ggx, (loom_binding[]){{x, xv}}, 1);
    float *v3 = eval(g, ggt, (loom_binding[]){{x, xv}}, 1);
    for (int i = 0; i < 4; i++) {
        cr_assert_float_eq(v1[i], 3 * xv[i] * xv[i], 1e-5);
        cr_assert_float_eq(v2[i], 6 * xv[i], 1e-5);
        float t = tanhf(xv[i]);
        cr_assert_float_eq(v3[i], -2 * t * (1 - t * t), 1e-5);
    }
    free(v1), free(v2), free(v3);
    loom_graph_free(g);
}

/* h_t = tanh(W h_{t-1} + U x_t), L = Σ_t r_t · h_t, by hand:
 *   δ_t = (r_t + Wᵀ δ_{t+1} ⊙ ... ) — precisely: a_t = W h_{t-1} + U x_t,
 *   g_t = r_t + Wᵀ e_{t+1},  e_t = g_t ⊙ (1 − h_t²),
 *   dW = Σ_t e_t h_{t-1}ᵀ,  dU = Σ_t e_t x_tᵀ,  dh_0 = Wᵀ e_1. */
Test(autodiff, hand_unrolled_tanh_rnn_matches_hand_bptt)
{
    enum { T = 3, H = 2, I = 3 };
    float W[H * H] = {0.5f, -0.3f, 0.8f, 0.2f}, U[H * I] = {0.1f, -0.4f, 0.3f, 0.7f, 0.05f, -0.6f};
    float h0[H] = {0.2f, -0.1f}, x[T][I] = {{1, 0, -1}, {0.5f, 0.5f, 0}, {-1, 2, 0.3f}};
    float r[T][H] = {{1, -1}, {0.5f, 2}, {-0.3f, 0.7f}};

    loom_graph *g = loom_graph_new();
    loom_tensor tW = loom_param(g, "W", loom_shape2(H, H)), tU = loom_param(g, "U", loom_shape2(H, I));
    loom_tensor th0 = loom_input(g, "h0", loom_shape2(1, H));
    loom_tensor h = th0, loss = LOOM_INVALID;
    for (int t = 0; t < T; t++) {
        loom_tensor xt = loom_constant(g, loom_shape2(1, I), x[t]), rt = loom_constant(g, loom_shape2(1, H), r[t]);
        h = loom_tanh(g, loom_add(g, loom_matmul(g, h, tW, false, true), loom_matmul(g, xt, tU, false, true)));
        loom_tensor lt = loom_sum_all(g, loom_mul(g, h, rt));
        loss = t ? loom_add(g, loss, lt) : lt;
    }
    float *got[3];
    grads_of(g, loss, (loom_binding[]){{tW, W}, {tU, U}, {th0, h0}}, 3, NULL, 0, got);

    /* forward by hand */
    float hs[T + 1][H];
    memcpy(hs[0], h0, sizeof h0);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H; i++) {
            double a = 0;
            for (int j = 0; j < H; j++) a += W[i * H + j] * hs[t][j];
            for (int j = 0; j < I; j++) a += U[i * I + j] * x[t][j];
            hs[t + 1][i] = (float)tanh(a);
        }
    /* backward by hand */
    double dW[H * H] = {0}, dU[H * I] = {0}, e_next[H] = {0}, dh0[H] = {0};
    for (int t = T; t >= 1; t--) {
        double e[H];
        for (int i = 0; i < H; i++) {
            double gi = r[t - 1][i];
            for (int k = 0; k < H; k++) gi += W[k * H + i] * e_next[k];
            e[i] = gi * (1 - hs[t][i] * hs[t][i]);
        }
        for (int i = 0; i < H; i++) {
            for (int j = 0; j < H; j++) dW[i * H + j] += e[i] * hs[t - 1][j];
            for (int j = 0; j < I; j++) dU[i * I + j] += e[i] * x[t - 1][j];
        }
        memcpy(e_next, e, sizeof e);
    }
    for (int j = 0; j < H; j++)
        for (int k = 0; k < H; k++) dh0[j] += W[k * H + j] * e_next[k];

    for (int i = 0; i < H * H; i++) cr_assert_float_eq(got[0][i], dW[i], 1e-5, "dW[%d]", i);
    for (int i = 0; i < H * I; i++) cr_assert_float_eq(got[1][i], dU[i], 1e-5, "dU[%d]", i);
    for (int i = 0; i < H; i++) cr_assert_float_eq(got[2][i], dh0[i], 1e-5, "dh0[%d]", i);
    for (int i = 0; i < 3; i++) free(got[i]);
    loom_graph_free(g);
}

Test(autodiff, gradcheck_small_lstm_cell_with_dropout_and_embedding)
{
    enum { T = 3, B = 2, V = 5, E = 4, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_tensor emb = loom_param(g, "emb", loom_shape2(V, E)), w = loom_param(g, "w", loom_shape2(4 * H, E + H));
    loom_tensor bias = loom_param(g, "b", loom_shape1(4 * H)), tok = loom_input_i32(g, "tokens", loom_shape2(T, B));
    loom_tensor out_w = loom_param(g, "out", loom_shape2(V, H)), tgt = loom_input_i32(g, "targets", loom_shape2(T, B));
    loom_tensor x = loom_dropout(g, loom_gather(g, emb, tok), 0.3f, 99);
    loom_tensor h = loom_fill(g, loom_shape2(B, H), 0), c = h, outs[T];
    for (int t = 0; t < T; t++) {
        loom_tensor xt = loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(B, E));
        loom_tensor z = loom_add(g, loom_matmul(g, loom_concat(g, (loom_tensor[]){xt, h}, 2, 1), w, false, true), bias);
        loom_tensor i = loom_sigmoid(g, loom_slice(g, z, 1, 0, H)), f = loom_sigmoid(g, loom_slice(g, z, 1, H, H));
        loom_tensor gg = loom_tanh(g, loom_slice(g, z, 1, 2 * H, H)), o = loom_sigmoid(g, loom_slice(g, z, 1, 3 * H, H));
        c = loom_add(g, loom_mul(g, f, c), loom_mul(g, i, gg));
        h = loom_mul(g, o, loom_tanh(g, c));
        outs[t] = loom_reshape(g, loom_matmul(g, h, out_w, false, true), loom_shape3(1, B, V));
    }
    loom_tensor loss = loom_cross_entropy(g, loom_concat(g, outs, T, 0), tgt, LOOM_NO_MASK);
    float *ev = rnd_buf(V * E, -1, 1), *wv = rnd_buf(4 * H * (E + H), -0.5f, 0.5f), *bv = rnd_buf(4 * H, -0.5f, 0.5f);
    float *ov = rnd_buf(V * H, -1, 1);
    int32_t tv[T * B] = {0, 4, 2, 2, 1, 3}, gv[T * B] = {1, 1, 0, 4, 3, 2};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, (loom_binding[]){{emb, ev}, {w, wv}, {bias, bv}, {out_w, ov}}, 4,
                                (loom_binding[]){{tok, tv}, {tgt, gv}}, 2, NULL, &r),
                 LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "worst: wrt %d [%lld] analytic %g numeric %g", r.worst_tensor, (long long)r.worst_index,
              r.worst_analytic, r.worst_numeric);
    cr_assert_eq(r.checked, V * E + 4 * H * (E + H) + 4 * H + V * H);
    free(ev), free(wv), free(bv), free(ov);
    loom_graph_free(g);
}

/* BPTT with respect to an input read step by step through slices: the
 * slices' gradients are assembled into one buffer, so the plan's memory
 * grows with T, not T² (4·T² bytes of full-size pads before). */
Test(autodiff, sliced_input_gradient_is_linear_in_steps)
{
    size_t arena[2];
    int steps[2] = {500, 2000};
    for (int k = 0; k < 2; k++) {
        int T = steps[k];
        loom_graph *g = loom_graph_new();
        loom_tensor x = loom_input(g, "x", loom_shape3(T, 1, 1)), w = loom_param(g, "w", loom_shape2(1, 1));
        loom_tensor h = loom_fill(g, loom_shape2(1, 1), 0.0f);
        for (int t = 0; t < T; t++) {
            loom_tensor xt = loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(1, 1));
            h = loom_tanh(g, loom_add(g, loom_matmul(g, h, w, false, true), xt));
        }
        loom_tensor loss = loom_sum_all(g, h), gx;
        cr_assert_eq(loom_backward(g, loss, &x, 1, &gx), LOOM_OK, "%s", loom_graph_error(g));
        loom_plan *p = loom_plan_new(g, &gx, 1, NULL);
        cr_assert(p, "%s", loom_graph_error(g));
        arena[k] = loom_plan_get_stats(p).arena_bytes;
        float *xv = calloc((size_t)T, sizeof *xv), wv = 0.5f;
        for (int t = 0; t < T; t++) xv[t] = 0.01f * (float)(t % 7);
        loom_bind(p, x, xv);
        loom_bind(p, w, &wv);
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        /* the last step's input gets dL/dh_T · (1 − h_T²), earlier ones less */
        const float *d = loom_plan_output(p, gx);
        cr_assert(d[T - 1] > 0.9f && d[T - 1] <= 1.0f && fabsf(d[0]) < d[T - 1], "%g %g", d[0], d[T - 1]);
        free(xv);
        loom_plan_free(p);
        loom_graph_free(g);
    }
    cr_assert_lt((double)arena[1], 6.0 * (double)arena[0], "4× the steps: %zu → %zu arena bytes", arena[0], arena[1]);
}

/* A non-finite comparison fails the check: a step too small to change an
 * f32 value makes the central difference 0/0. */
Test(autodiff, gradcheck_fails_on_non_finite_differences)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(3));
    loom_tensor loss = loom_sum_all(g, loom_sqrt(g, x));
    float xv[3] = {0.1f, -0.2f, 0.3f}; /* √ of a negative: NaN value and gradient */
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, (loom_binding[]){{x, xv}}, 1, NULL, 0, NULL, &r), LOOM_OK);
    cr_assert(!r.passed, "a NaN difference is not a pass");
    cr_assert(!isfinite(r.max_abs_err), "the worst error is the non-finite one: %g", r.max_abs_err);
    char *argv[] = {"--eps", "0.4"};
    cr_assert_eq(cmd_gradcheck(2, argv), 1, "a step far too large fails the command");
    loom_graph_free(g);
}

/* A gradient rule off by 1 % is caught with the default settings: tanh
 * whose gradient is scaled by 1.01 (scale_grad), in a 2-layer
 * bidirectional LSTM-like stack of gates; and the same graph with the
 * true rule passes. max_rel_err is the true figure, not 0 below atol. */
static loom_tensor off_step(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x,
                            const loom_tensor *state, loom_tensor *next)
{
    const loom_tensor *w = def->user;
    loom_tensor z = loom_add(g, loom_add(g, loom_matmul(g, x, p[0], false, true), loom_matmul(g, state[0], p[1], false, true)), p[2]);
    loom_tensor t = loom_tanh(g, z);
    if (loom_valid(*w)) t = loom_scale_grad(g, t, *w, 0); /* the rule tanh' = 1 − y², times w[0] */
    next[1] = loom_add(g, loom_mul(g, loom_sigmoid(g, z), state[1]), t);
    return next[0] = loom_mul(g, loom_sigmoid(g, loom_affine(g, z, -1, 0.5f)), loom_tanh(g, next[1]));
}

static int off_params(const loom_cell_def *def, int in, int h, loom_param_spec *s, int max)
{
    if (max < 3) return 3;
    s[0] = (loom_param_spec){.name = "w", .shape = loom_shape2(h, in), .init = LOOM_INIT_UNIFORM, .scale = 0.5f};
    s[1] = (loom_param_spec){.name = "u", .shape = loom_shape2(h, h), .init = LOOM_INIT_UNIFORM, .scale = 0.5f};
    s[2] = (loom_param_spec){.name = "b", .shape = loom_shape1(h), .init = LOOM_INIT_UNIFORM, .scale = 0.5f};
    return 3;
}

Test(autodiff, gradcheck_catches_a_rule_off_by_one_percent)
{
    for (int broken = 0; broken < 2; broken++) {
        loom_graph *g = loom_graph_new();
        loom_tensor w = loom_input(g, "w", loom_shape1(1));
        loom_tensor use = broken ? w : LOOM_INVALID;
        loom_cell_def cell = {"off", 2, off_params, off_step, &use};
        loom_rnn rnn;
        loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &cell, .input_size = 3, .hidden_size = 4, .layers = 2, .bidirectional = true});
        loom_tensor x = loom_input(g, "x", loom_shape3(4, 2, 3));
        loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
        loom_tensor loss = weighted_loss(g, o.output);
        loom_store *st = loom_store_new(g);
        loom_store_init(st, 5);
        loom_binding wrt[1 + 2 * 2 * 3];
        int n = 0;
        float *xv = rnd_buf(24, -1, 1), wv[1] = {1.01f};
        wrt[n++] = (loom_binding){x, xv};
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < 2; d++)
                for (int i = 0; i < 3; i++) wrt[n++] = (loom_binding){rnn.param[l][d][i], loom_store_data(st, rnn.param[l][d][i])};
        loom_gradcheck_result r;
        cr_assert_eq(loom_gradcheck(g, loss, wrt, n, (loom_binding[]){{w, wv}}, broken, NULL, &r), LOOM_OK, "%s",
                     loom_graph_error(g));
        if (broken) {
            cr_assert(!r.passed, "a rule 1 %% off passed: worst relative error %g", r.max_rel_err);
            cr_assert(r.max_rel_err > 3e-3, "max_rel_err %g", r.max_rel_err);
        } else {
            cr_assert(r.passed, "worst: wrt[%d][%lld] analytic %g numeric %g; f32 %g", r.worst_tensor, (long long)r.worst_index,
                      r.worst_analytic, r.worst_numeric, r.f32_max_err);
            cr_assert(r.max_rel_err > 0 && r.max_rel_err < 1e-3, "max_rel_err %g is the true figure", r.max_rel_err);
        }
        free(xv);
        loom_store_free(st);
        loom_graph_free(g);
    }
}
