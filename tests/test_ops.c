/* Every op: forward values against hand-computed or closed-form results
 * (broadcasting, size-1 dims, ranks 1..4) and a gradient check. */
#include "helpers.h"

typedef struct {
    loom_tensor t;
    float *d;
    loom_binding b;
} tin;

static tin in_rand(loom_graph *g, const char *name, loom_shape s, float lo, float hi)
{
    tin r;
    r.t = loom_input(g, name, s);
    r.d = rnd_buf(loom_shape_numel(s), lo, hi);
    r.b = (loom_binding){r.t, r.d};
    return r;
}

static tin in_vals(loom_graph *g, const char *name, loom_shape s, const float *v)
{
    tin r = in_rand(g, name, s, 0, 1);
    memcpy(r.d, v, (size_t)loom_shape_numel(s) * sizeof(float));
    return r;
}

/* ---------------- elementwise ---------------- */

Test(elementwise, add_same_shape)
{
    loom_graph *g = loom_graph_new();
    tin a = in_vals(g, "a", loom_shape2(2, 2), (float[]){1, 2, 3, 4});
    tin b = in_vals(g, "b", loom_shape2(2, 2), (float[]){10, 20, 30, 40});
    float *v = eval(g, loom_add(g, a.t, b.t), (loom_binding[]){a.b, b.b}, 2);
    assert_close(v, (float[]){11, 22, 33, 44}, 4, 0);
    free(v), free(a.d), free(b.d);
    loom_graph_free(g);
}

Test(elementwise, broadcast_row_and_column)
{
    loom_graph *g = loom_graph_new();
    tin a = in_vals(g, "a", loom_shape2(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    tin row = in_vals(g, "row", loom_shape1(3), (float[]){10, 20, 30});
    tin col = in_vals(g, "col", loom_shape2(2, 1), (float[]){100, 200});
    loom_tensor y = loom_add(g, loom_add(g, a.t, row.t), col.t);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, y), loom_shape2(2, 3)));
    float *v = eval(g, y, (loom_binding[]){a.b, row.b, col.b}, 3);
    assert_close(v, (float[]){111, 122, 133, 214, 225, 236}, 6, 0);
    free(v), free(a.d), free(row.d), free(col.d);
    loom_graph_free(g);
}

Test(elementwise, broadcast_rank4_both_sides)
{
    /* (2,1,3,1) * (4,1,5) -> (2,4,3,5): out[a,b,c,d] = x[a,0,c,0] * y[b,0,d] */
    loom_graph *g = loom_graph_new();
    tin x = in_rand(g, "x", loom_shape4(2, 1, 3, 1), -1, 1);
    tin y = in_rand(g, "y", loom_shape3(4, 1, 5), -1, 1);
    loom_tensor z = loom_mul(g, x.t, y.t);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, z), loom_shape4(2, 4, 3, 5)));
    float *v = eval(g, z, (loom_binding[]){x.b, y.b}, 2);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++)
                for (int d = 0; d < 5; d++)
                    cr_assert_float_eq(v[((a * 4 + b) * 3 + c) * 5 + d], x.d[a * 3 + c] * y.d[b * 5 + d], 1e-6);
    free(v);
    check_grads(g, z, (loom_binding[]){x.b, y.b}, 2, NULL, 0);
    free(x.d), free(y.d);
    loom_graph_free(g);
}

Test(elementwise, scalar_and_rank1)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape1(3), (float[]){1, 2, 3});
    tin s = in_vals(g, "s", loom_shape0(), (float[]){2});
    float *v = eval(g, loom_sub(g, x.t, s.t), (loom_binding[]){x.b, s.b}, 2);
    assert_close(v, (float[]){-1, 0, 1}, 3, 0);
    free(v);
    v = eval(g, loom_div(g, s.t, x.t), (loom_binding[]){x.b, s.b}, 2);
    assert_close(v, (float[]){2, 1, 2.0f / 3}, 3, 1e-6f);
    free(v);
    check_grads(g, loom_div(g, s.t, x.t), (loom_binding[]){x.b, s.b}, 2, NULL, 0);
    free(x.d), free(s.d);
    loom_graph_free(g);
}

Test(elementwise, binary_gradients_with_broadcast)
{
    loom_tensor (*fns[4])(loom_graph *, loom_tensor, loom_tensor) = {loom_add, loom_sub, loom_mul, loom_div};
    for (int f = 0; f < 4; f++) {
        loom_graph *g = loom_graph_new();
        tin a = in_rand(g, "a", loom_shape3(2, 3, 4), 0.5f, 2.0f);
        tin b = in_rand(g, "b", loom_shape2(1, 4), 0.5f, 2.0f);
        check_grads(g, fns[f](g, a.t, b.t), (loom_binding[]){a.b, b.b}, 2, NULL, 0);
        check_grads(g, fns[f](g, b.t, a.t), (loom_binding[]){a.b, b.b}, 2, NULL, 0);
        free(a.d), free(b.d);
        loom_graph_free(g);
    }
}

Test(elementwise, affine_scale_neg)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape1(3), (float[]){1, -2, 3});
    float *v = eval(g, loom_affine(g, x.t, 2, 1), &x.b, 1);
    assert_close(v, (float[]){3, -3, 7}, 3, 0);
    free(v);
    v = eval(g, loom_neg(g, loom_scale(g, x.t, 0.5f)), &x.b, 1);
    assert_close(v, (float[]){-0.5f, 1, -1.5f}, 3, 0);
    free(v);
    cr_assert_eq(loom_neg(g, loom_neg(g, x.t)).id, x.t.id, "neg(neg(x)) folds to x");
    check_grads(g, loom_affine(g, x.t, -3, 2), &x.b, 1, NULL, 0);
    free(x.d);
    loom_graph_free(g);
}

Test(elementwise, unary_values)
{
    float xs[5] = {-2, -0.5f, 0.25f, 1, 3};
    loom_tensor (*fns[6])(loom_graph *, loom_tensor) = {loom_tanh, loom_sigmoid, loom_relu,
                                                        loom_exp, loom_step, loom_log};
    for (int f = 0; f < 6; f++) {
        loom_graph *g = loom_graph_new();
        tin x = in_vals(g, "x", loom_shape1(5), xs);
        if (f == 5)
            for (int i = 0; i < 5; i++) x.d[i] = fabsf(xs[i]);
        float *v = eval(g, fns[f](g, x.t), &x.b, 1);
        for (int i = 0; i < 5; i++) {
            float a = x.d[i];
            float want[6] = {tanhf(a), 1 / (1 + expf(-a)), a > 0 ? a : 0, expf(a), a > 0 ? 1.0f : 0.0f, logf(a)};
            cr_assert_float_eq(v[i], want[f], 1e-6, "op %d at %g", f, a);
        }
        free(v), free(x.d);
        loom_graph_free(g);
    }
}

Test(elementwise, sigmoid_is_stable_at_extremes)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape1(4), (float[]){-200, -90, 90, 200});
    float *v = eval(g, loom_sigmoid(g, x.t), &x.b, 1);
    assert_close(v, (float[]){0, 0, 1, 1}, 4, 1e-6f);
    free(v), free(x.d);
    loom_graph_free(g);
}

Test(elementwise, unary_gradients)
{
    loom_tensor (*fns[6])(loom_graph *, loom_tensor) = {loom_tanh, loom_sigmoid, loom_relu, loom_exp, loom_log,
                                                        loom_step};
    for (int f = 0; f < 6; f++) {
        loom_graph *g = loom_graph_new();
        tin x = in_rand(g, "x", loom_shape3(2, 3, 4), -2, 2);
        for (int i = 0; i < 24; i++) {
            if (f == 4) x.d[i] = fabsf(x.d[i]) + 0.2f;         /* log: positive */
            if (fabsf(x.d[i]) < 0.1f) x.d[i] = 0.3f;            /* away from kinks */
        }
        check_grads(g, fns[f](g, x.t), &x.b, 1, NULL, 0);
        free(x.d);
        loom_graph_free(g);
    }
}

Test(elementwise, where_values_and_gradients)
{
    loom_graph *g = loom_graph_new();
    tin c = in_vals(g, "c", loom_shape2(2, 1), (float[]){1, 0});
    tin a = in_vals(g, "a", loom_shape2(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    tin b = in_vals(g, "b", loom_shape1(3), (float[]){-1, -2, -3});
    loom_tensor y = loom_where(g, c.t, a.t, b.t);
    float *v = eval(g, y, (loom_binding[]){c.b, a.b, b.b}, 3);
    assert_close(v, (float[]){1, 2, 3, -1, -2, -3}, 6, 0);
    free(v);
    check_grads(g, y, (loom_binding[]){a.b, b.b}, 2, &c.b, 1);
    free(c.d), free(a.d), free(b.d);
    loom_graph_free(g);
}

Test(elementwise, fill_and_constant)
{
    loom_graph *g = loom_graph_new();
    loom_tensor f = loom_fill(g, loom_shape2(2, 2), 1.5f);
    loom_tensor k = loom_constant(g, loom_shape2(2, 2), (float[]){1, 2, 3, 4});
    float *v = eval(g, loom_mul(g, f, k), NULL, 0);
    assert_close(v, (float[]){1.5f, 3, 4.5f, 6}, 4, 0);
    free(v);
    loom_graph_free(g);
}

/* ---------------- matmul ---------------- */

/* C[b] = op(A[b])·op(B[b]), plain loops, for comparison. */
static void ref_matmul(const float *a, const float *b, float *c, int batch_a, int batch_b, int m, int n, int k,
                       bool ta, bool tb)
{
    int batch = batch_a > batch_b ? batch_a : batch_b;
    for (int q = 0; q < batch; q++) {
        const float *A = a + (batch_a > 1 ? q * m * k : 0), *B = b + (batch_b > 1 ? q * k * n : 0);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += (double)(ta ? A[p * m + i] : A[i * k + p]) * (tb ? B[j * k + p] : B[p * n + j]);
                c[(q * m + i) * n + j] = (float)s;
            }
    }
}

Test(matmul, hand_values)
{
    loom_graph *g = loom_graph_new();
    tin a = in_vals(g, "a", loom_shape2(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    tin b = in_vals(g, "b", loom_shape2(3, 2), (float[]){7, 8, 9, 10, 11, 12});
    float *v = eval(g, loom_matmul(g, a.t, b.t, false, false), (loom_binding[]){a.b, b.b}, 2);
    assert_close(v, (float[]){58, 64, 139, 154}, 4, 0);
    free(v), free(a.d), free(b.d);
    loom_graph_free(g);
}

/* Every transpose combination, with 2-D, batched and shared operands. */
Test(matmul, all_layouts_values_and_gradients)
{
    const int m = 3, n = 4, k = 5;
    struct { int ba, bb; } cases[] = {{1, 1}, {2, 1}, {1, 2}, {2, 2}};
    for (unsigned c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int ba = cases[c].ba, bb = cases[c].bb;
            loom_graph *g = loom_graph_new();
            loom_shape sa = ta ? loom_shape2(k, m) : loom_shape2(m, k), sb = tb ? loom_shape2(n, k) : loom_shape2(k, n);
            if (ba > 1) sa = loom_shape3(ba, sa.d[0], sa.d[1]);
            if (bb > 1) sb = loom_shape3(bb, sb.d[0], sb.d[1]);
            tin a = in_rand(g, "a", sa, -1, 1), b = in_rand(g, "b", sb, -1, 1);
            loom_tensor y = loom_matmul(g, a.t, b.t, ta, tb);
            cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
            int batch = ba > bb ? ba : bb;
            float *want = malloc((size_t)(batch * m * n) * sizeof *want);
            ref_matmul(a.d, b.d, want, ba, bb, m, n, k, ta, tb);
            float *v = eval(g, y, (loom_binding[]){a.b, b.b}, 2);
            assert_close(v, want, batch * m * n, 1e-5f);
            check_grads(g, y, (loom_binding[]){a.b, b.b}, 2, NULL, 0);
            free(v), free(want), free(a.d), free(b.d);
            loom_graph_free(g);
        }
}

Test(matmul, rank4_batch)
{
    loom_graph *g = loom_graph_new();
    tin a = in_rand(g, "a", loom_shape4(2, 3, 2, 4), -1, 1), b = in_rand(g, "b", loom_shape2(4, 3), -1, 1);
    loom_tensor y = loom_matmul(g, a.t, b.t, false, false);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, y), loom_shape4(2, 3, 2, 3)));
    float *want = malloc(36 * sizeof *want);
    ref_matmul(a.d, b.d, want, 6, 1, 2, 3, 4, false, false);
    float *v = eval(g, y, (loom_binding[]){a.b, b.b}, 2);
    assert_close(v, want, 36, 1e-5f);
    check_grads(g, y, (loom_binding[]){a.b, b.b}, 2, NULL, 0);
    free(v), free(want), free(a.d), free(b.d);
    loom_graph_free(g);
}

/* ---------------- reductions ---------------- */

Test(reduce, sum_and_mean_over_axes)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape2(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    float *v = eval(g, loom_sum(g, x.t, 0, false), &x.b, 1);
    assert_close(v, (float[]){5, 7, 9}, 3, 0);
    free(v);
    v = eval(g, loom_sum(g, x.t, -1, true), &x.b, 1);
    assert_close(v, (float[]){6, 15}, 2, 0);
    free(v);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, loom_sum(g, x.t, -1, true)), loom_shape2(2, 1)));
    cr_assert_eq(loom_sum(g, x.t, -1, true).id, loom_sum(g, x.t, 1, true).id, "axis -1 and 1 are one node");
    v = eval(g, loom_mean(g, x.t, 1, false), &x.b, 1);
    assert_close(v, (float[]){2, 5}, 2, 1e-6f);
    free(v);
    v = eval(g, loom_sum_all(g, x.t), &x.b, 1);
    cr_assert_float_eq(v[0], 21, 0);
    free(v);
    v = eval(g, loom_mean_all(g, x.t), &x.b, 1);
    cr_assert_float_eq(v[0], 3.5f, 1e-6);
    free(v), free(x.d);
    loom_graph_free(g);
}

Test(reduce, sum_gradients_rank3)
{
    for (int axis = -3; axis < 3; axis++) {
        loom_graph *g = loom_graph_new();
        tin x = in_rand(g, "x", loom_shape3(2, 3, 4), -1, 1);
        check_grads(g, loom_sum(g, x.t, axis, axis % 2 == 0), &x.b, 1, NULL, 0);
        check_grads(g, loom_mean(g, x.t, axis, false), &x.b, 1, NULL, 0);
        free(x.d);
        loom_graph_free(g);
    }
}

Test(reduce, sum_to_and_broadcast_to)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape3(2, 2, 3), (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    float *v = eval(g, loom_sum_to(g, x.t, loom_shape1(3)), &x.b, 1);
    assert_close(v, (float[]){22, 26, 30}, 3, 0);
    free(v);
    v = eval(g, loom_sum_to(g, x.t, loom_shape3(2, 1, 1)), &x.b, 1);
    assert_close(v, (float[]){21, 57}, 2, 0);
    free(v);
    tin r = in_vals(g, "r", loom_shape2(2, 1), (float[]){1, 2});
    v = eval(g, loom_broadcast_to(g, r.t, loom_shape3(2, 2, 3)), &r.b, 1);
    assert_close(v, (float[]){1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2}, 12, 0);
    free(v);
    check_grads(g, loom_sum_to(g, x.t, loom_shape2(2, 1)), &x.b, 1, NULL, 0);
    check_grads(g, loom_broadcast_to(g, r.t, loom_shape3(3, 2, 4)), &r.b, 1, NULL, 0);
    free(x.d), free(r.d);
    loom_graph_free(g);
}

Test(reduce, softmax_and_log_softmax)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape2(2, 3), (float[]){1, 2, 3, 1000, 1000, 1000});
    float *v = eval(g, loom_softmax(g, x.t), &x.b, 1);
    float e = expf(1) + expf(2) + expf(3);
    assert_close(v, (float[]){expf(1) / e, expf(2) / e, expf(3) / e, 1.0f / 3, 1.0f / 3, 1.0f / 3}, 6, 1e-6f);
    free(v);
    v = eval(g, loom_log_softmax(g, x.t), &x.b, 1);
    assert_close(v, (float[]){1 - logf(e), 2 - logf(e), 3 - logf(e), -logf(3), -logf(3), -logf(3)}, 6, 1e-5f);
    free(v), free(x.d);
    loom_graph_free(g);
}

Test(reduce, softmax_gradients)
{
    loom_graph *g = loom_graph_new();
    tin x = in_rand(g, "x", loom_shape3(2, 3, 5), -2, 2);
    check_grads(g, loom_softmax(g, x.t), &x.b, 1, NULL, 0);
    check_grads(g, loom_log_softmax(g, x.t), &x.b, 1, NULL, 0);
    free(x.d);
    loom_graph_free(g);
}

Test(reduce, cross_entropy_values)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "logits", loom_shape2(3, 2), (float[]){0, 0, 1, 3, 2, -1});
    loom_tensor t = loom_input_i32(g, "targets", loom_shape1(3));
    int32_t tv[3] = {0, 1, 0};
    tin m = in_vals(g, "mask", loom_shape1(3), (float[]){1, 0, 1});
    float nll[3] = {logf(2), logf(1 + expf(-2)), logf(1 + expf(-3))};
    loom_binding b[3] = {x.b, {t, tv}, m.b};
    float *v = eval(g, loom_cross_entropy(g, x.t, t, LOOM_NO_MASK), b, 2);
    cr_assert_float_eq(v[0], (nll[0] + nll[1] + nll[2]) / 3, 1e-6);
    free(v);
    v = eval(g, loom_cross_entropy(g, x.t, t, m.t), b, 3);
    cr_assert_float_eq(v[0], (nll[0] + nll[2]) / 2, 1e-6);
    free(v);
    memset(m.d, 0, 3 * sizeof(float));
    v = eval(g, loom_cross_entropy(g, x.t, t, m.t), b, 3);
    cr_assert_float_eq(v[0], 0, 0, "an all-zero mask gives 0, not NaN");
    free(v), free(x.d), free(m.d);
    loom_graph_free(g);
}

Test(reduce, cross_entropy_gradients)
{
    loom_graph *g = loom_graph_new();
    tin x = in_rand(g, "logits", loom_shape3(3, 2, 5), -2, 2);
    loom_tensor t = loom_input_i32(g, "targets", loom_shape2(3, 2));
    int32_t tv[6] = {0, 4, 2, 2, 1, 3};
    tin m = in_vals(g, "mask", loom_shape2(3, 2), (float[]){1, 1, 0, 1, 0.5f, 1});
    loom_tensor loss = loom_cross_entropy(g, x.t, t, m.t);
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, &x.b, 1, (loom_binding[]){{t, tv}, m.b}, 2, NULL, &r), LOOM_OK, "%s",
                 loom_graph_error(g));
    cr_assert(r.passed && r.checked == 30);
    loss = loom_cross_entropy(g, x.t, t, LOOM_NO_MASK);
    cr_assert_eq(loom_gradcheck(g, loss, &x.b, 1, (loom_binding[]){{t, tv}}, 1, NULL, &r), LOOM_OK);
    cr_assert(r.passed);
    free(x.d), free(m.d);
    loom_graph_free(g);
}

/* ---------------- shape ops ---------------- */

Test(shape, concat_values_and_gradients)
{
    loom_graph *g = loom_graph_new();
    tin a = in_vals(g, "a", loom_shape2(2, 2), (float[]){1, 2, 3, 4});
    tin b = in_vals(g, "b", loom_shape2(2, 1), (float[]){5, 6});
    float *v = eval(g, loom_concat(g, (loom_tensor[]){a.t, b.t}, 2, -1), (loom_binding[]){a.b, b.b}, 2);
    assert_close(v, (float[]){1, 2, 5, 3, 4, 6}, 6, 0);
    free(v);
    loom_tensor bt = loom_transpose2(g, b.t);
    v = eval(g, loom_concat(g, (loom_tensor[]){a.t, bt, a.t}, 3, 0), (loom_binding[]){a.b, b.b}, 2);
    assert_close(v, (float[]){1, 2, 3, 4, 5, 6, 1, 2, 3, 4}, 10, 0);
    free(v);
    check_grads(g, loom_concat(g, (loom_tensor[]){a.t, bt, a.t}, 3, 0), (loom_binding[]){a.b, b.b}, 2, NULL, 0);
    free(a.d), free(b.d);
    loom_graph_free(g);
}

Test(shape, slice_and_pad)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape2(2, 4), (float[]){1, 2, 3, 4, 5, 6, 7, 8});
    float *v = eval(g, loom_slice(g, x.t, 1, 1, 2), &x.b, 1);
    assert_close(v, (float[]){2, 3, 6, 7}, 4, 0);
    free(v);
    v = eval(g, loom_slice(g, x.t, 0, 1, 1), &x.b, 1);
    assert_close(v, (float[]){5, 6, 7, 8}, 4, 0);
    free(v);
    v = eval(g, loom_pad(g, x.t, 0, 1, 3), &x.b, 1);
    assert_close(v, (float[]){0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 12, 0);
    free(v);
    cr_assert_eq(loom_slice(g, x.t, 1, 0, 4).id, x.t.id, "a full slice is the tensor itself");
    check_grads(g, loom_slice(g, x.t, 1, 1, 2), &x.b, 1, NULL, 0);
    check_grads(g, loom_pad(g, x.t, 1, 2, 7), &x.b, 1, NULL, 0);
    free(x.d);
    loom_graph_free(g);
}

Test(shape, reshape_views)
{
    loom_graph *g = loom_graph_new();
    tin x = in_rand(g, "x", loom_shape3(2, 3, 4), -1, 1);
    loom_tensor y = loom_reshape(g, x.t, loom_shape2(-1, 4));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, y), loom_shape2(6, 4)));
    float *v = eval(g, y, &x.b, 1);
    assert_close(v, x.d, 24, 0);
    free(v);
    loom_tensor z = loom_reshape(g, y, loom_shape4(1, 2, 12, 1));
    cr_assert_eq(loom_node_input(g, z, 0).id, x.t.id, "a view of a view points at the source");
    check_grads(g, loom_tanh(g, z), &x.b, 1, NULL, 0);
    loom_tensor i = loom_input_i32(g, "i", loom_shape2(2, 2));
    cr_assert_eq(loom_tensor_dtype(g, loom_reshape(g, i, loom_shape1(4))), LOOM_I32);
    free(x.d);
    loom_graph_free(g);
}

Test(shape, transpose)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape2(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    float *v = eval(g, loom_transpose2(g, x.t), &x.b, 1);
    assert_close(v, (float[]){1, 4, 2, 5, 3, 6}, 6, 0);
    free(v);
    tin y = in_rand(g, "y", loom_shape3(2, 3, 4), -1, 1);
    loom_tensor t = loom_transpose(g, y.t, (int[]){2, 0, 1});
    cr_assert(loom_shape_eq(loom_tensor_shape(g, t), loom_shape3(4, 2, 3)));
    v = eval(g, t, &y.b, 1);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++) cr_assert_float_eq(v[(a * 2 + b) * 3 + c], y.d[(b * 3 + c) * 4 + a], 0);
    free(v);
    check_grads(g, t, &y.b, 1, NULL, 0);
    tin w = in_rand(g, "w", loom_shape4(2, 1, 3, 2), -1, 1);
    check_grads(g, loom_transpose(g, w.t, (int[]){3, 1, 0, 2}), &w.b, 1, NULL, 0);
    free(x.d), free(y.d), free(w.d);
    loom_graph_free(g);
}

/* ---------------- indexing, random, detach ---------------- */

Test(index, gather_scatter_one_hot)
{
    loom_graph *g = loom_graph_new();
    tin table = in_vals(g, "emb", loom_shape2(3, 2), (float[]){1, 2, 3, 4, 5, 6});
    loom_tensor idx = loom_input_i32(g, "idx", loom_shape2(2, 2));
    int32_t iv[4] = {2, 0, 2, 1};
    loom_binding b[2] = {table.b, {idx, iv}};
    loom_tensor y = loom_gather(g, table.t, idx);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, y), loom_shape3(2, 2, 2)));
    float *v = eval(g, y, b, 2);
    assert_close(v, (float[]){5, 6, 1, 2, 5, 6, 3, 4}, 8, 0);
    free(v);
    tin src = in_vals(g, "src", loom_shape3(2, 2, 2), (float[]){1, 1, 2, 2, 3, 3, 4, 4});
    v = eval(g, loom_scatter_add(g, src.t, idx, 3), (loom_binding[]){src.b, {idx, iv}}, 2);
    assert_close(v, (float[]){2, 2, 4, 4, 4, 4}, 6, 0);
    free(v);
    v = eval(g, loom_one_hot(g, idx, 3), b + 1, 1);
    assert_close(v, (float[]){0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0}, 12, 0);
    free(v);
    check_grads(g, y, &table.b, 1, b + 1, 1); /* repeated index 2 sums two gradients */
    check_grads(g, loom_scatter_add(g, src.t, idx, 4), &src.b, 1, b + 1, 1);
    free(table.d), free(src.d);
    loom_graph_free(g);
}

/* argmax: the first of equal maxima, a NaN wins, a gradient through a
 * gather of its indices reaches the table only. */
Test(index, argmax)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape3(2, 2, 3), (float[]){1, 3, 3, -1, -2, -3, 0, NAN, 5, 7, 7, 7});
    loom_tensor a = loom_argmax(g, x.t);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, a), loom_shape2(2, 2)));
    cr_assert_eq(loom_tensor_dtype(g, a), LOOM_I32);
    loom_plan *p = loom_plan_new(g, &a, 1, NULL);
    cr_assert(p);
    loom_bind(p, x.t, x.d);
    cr_assert_eq(loom_run(p), LOOM_OK);
    const int32_t *v = (const int32_t *)(const void *)loom_plan_output(p, a);
    cr_assert(v[0] == 1 && v[1] == 0 && v[2] == 1 && v[3] == 0, "%d %d %d %d", v[0], v[1], v[2], v[3]);
    loom_plan_free(p);
    tin table = in_rand(g, "emb", loom_shape2(3, 2), -1, 1);
    tin z = in_rand(g, "z", loom_shape2(4, 3), -1, 1);
    check_grads(g, loom_gather(g, table.t, loom_argmax(g, z.t)), (loom_binding[]){table.b, z.b}, 2, NULL, 0);
    cr_assert(!loom_valid(loom_argmax(g, loom_input_i32(g, "ints", loom_shape2(2, 3)))));
    cr_assert(strstr(loom_graph_error(g), "argmax"), "%s", loom_graph_error(g));
    free(x.d), free(table.d), free(z.d);
    loom_graph_free(g);
}

Test(index, dropout_statistics_eval_and_gradient)
{
    loom_graph *g = loom_graph_new();
    const int n = 20000;
    tin x = in_rand(g, "x", loom_shape2(100, 200), 1, 1);
    for (int i = 0; i < n; i++) x.d[i] = 1.0f;
    loom_tensor y = loom_dropout(g, x.t, 0.25f, 42);
    loom_plan *p = loom_plan_new(g, &y, 1, NULL);
    loom_bind(p, x.t, x.d);
    cr_assert_eq(loom_run(p), LOOM_OK);
    const float *v = loom_plan_output(p, y);
    int zeros = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        zeros += v[i] == 0.0f;
        sum += v[i];
        cr_assert(v[i] == 0.0f || fabsf(v[i] - 1.0f / 0.75f) < 1e-6f);
    }
    cr_assert(fabs(zeros / (double)n - 0.25) < 0.02, "dropped fraction %g", zeros / (double)n);
    cr_assert(fabs(sum / n - 1.0) < 0.03, "mean %g is kept", sum / n);
    float first = v[0] + v[1] * 2 + v[7] * 4 + v[99] * 8 + v[1234] * 16 + v[4321] * 32;
    cr_assert_eq(loom_run(p), LOOM_OK);
    float second = v[0] + v[1] * 2 + v[7] * 4 + v[99] * 8 + v[1234] * 16 + v[4321] * 32;
    (void)first, (void)second; /* masks change between runs; checked in bulk below */
    int differ = 0;
    float *again = malloc(n * sizeof *again);
    memcpy(again, v, n * sizeof *again);
    loom_run(p);
    for (int i = 0; i < n; i++) differ += (again[i] == 0.0f) != (v[i] == 0.0f);
    cr_assert(differ > n / 10, "each run draws a new mask");
    loom_plan_set_eval(p, true);
    cr_assert_eq(loom_run(p), LOOM_OK);
    for (int i = 0; i < n; i++) cr_assert_eq(v[i], 1.0f, "eval mode is the identity");
    loom_plan_free(p);
    free(again);
    /* forward and backward of one run share the mask */
    tin z = in_rand(g, "z", loom_shape2(3, 4), -1, 1);
    check_grads(g, loom_dropout(g, z.t, 0.5f, 7), &z.b, 1, NULL, 0);
    free(x.d), free(z.d);
    loom_graph_free(g);
}

Test(index, stop_gradient_is_identity_forward)
{
    loom_graph *g = loom_graph_new();
    tin x = in_vals(g, "x", loom_shape1(3), (float[]){1, 2, 3});
    float *v = eval(g, loom_stop_gradient(g, x.t), &x.b, 1);
    assert_close(v, x.d, 3, 0);
    free(v), free(x.d);
    loom_graph_free(g);
}

Test(elementwise, add_n_values_and_gradients)
{
    loom_graph *g = loom_graph_new();
    tin a = in_vals(g, "a", loom_shape1(3), (float[]){1, 2, 3});
    tin b = in_vals(g, "b", loom_shape1(3), (float[]){10, 20, 30});
    loom_tensor y = loom_add_n(g, (loom_tensor[]){a.t, b.t, a.t}, 3);
    float *v = eval(g, y, (loom_binding[]){a.b, b.b}, 2);
    assert_close(v, (float[]){12, 24, 36}, 3, 0);
    free(v);
    cr_assert_eq(loom_add_n(g, &a.t, 1).id, a.t.id, "a sum of one term is the term");
    check_grads(g, loom_tanh(g, y), (loom_binding[]){a.b, b.b}, 2, NULL, 0);
    cr_assert(!loom_valid(loom_add_n(g, (loom_tensor[]){a.t, loom_input(g, "c", loom_shape1(4))}, 2)));
    cr_assert(strstr(loom_graph_error(g), "add_n") && strstr(loom_graph_error(g), "(4,)"), "%s", loom_graph_error(g));
    free(a.d), free(b.d);
    loom_graph_free(g);
}

/* A sum of pads along one axis (the gradient of a tensor sliced piece by
 * piece) is assembled by one concat with zero gaps; overlapping pads and
 * other terms are still summed, and the values are those of the sum. */
Test(elementwise, add_n_of_pads_assembles_the_pieces)
{
    loom_graph *g = loom_graph_new();
    tin a = in_vals(g, "a", loom_shape2(1, 2), (float[]){1, 2});
    tin b = in_vals(g, "b", loom_shape2(2, 2), (float[]){3, 4, 5, 6});
    tin c = in_vals(g, "c", loom_shape2(1, 2), (float[]){7, 8});
    tin d = in_vals(g, "d", loom_shape2(6, 2), (float[]){0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f,
                                                            0.5f, 0.5f});
    /* rows: a at 4, b at 1..2, c at 2 (overlaps b), gaps at 0, 3 and 5 */
    loom_tensor pa = loom_pad(g, a.t, 0, 4, 6), pb = loom_pad(g, b.t, 0, 1, 6), pc = loom_pad(g, c.t, 0, 2, 6);
    loom_tensor y = loom_add_n(g, (loom_tensor[]){pa, d.t, pb, pc}, 4);
    float *v = eval(g, y, (loom_binding[]){a.b, b.b, c.b, d.b}, 4);
    assert_close(v, (float[]){0.5f, 0.5f, 3.5f, 4.5f, 12.5f, 14.5f, 0.5f, 0.5f, 1.5f, 2.5f, 0.5f, 0.5f}, 12, 0);
    free(v);
    int pads_summed = 0, concats = 0;
    for (int j = 0; j < loom_graph_node(g, y)->n_in; j++) {
        const char *op = loom_op_name(loom_graph_node(g, loom_node_input(g, y, j))->op);
        pads_summed += !strcmp(op, "pad"), concats += !strcmp(op, "concat");
    }
    cr_assert(pads_summed == 1 && concats == 1, "the overlapping pad is summed (%d), the others assembled (%d)",
              pads_summed, concats);
    check_grads(g, loom_tanh(g, y), (loom_binding[]){a.b, b.b, c.b, d.b}, 4, NULL, 0);
    /* pads that tile the axis exactly are the concat alone */
    loom_tensor whole = loom_add_n(g, (loom_tensor[]){loom_pad(g, c.t, 0, 2, 3), loom_pad(g, b.t, 0, 0, 3)}, 2);
    cr_assert_str_eq(loom_op_name(loom_graph_node(g, whole)->op), "concat");
    free(a.d), free(b.d), free(c.d), free(d.d);
    loom_graph_free(g);
}

Test(index, sequence_mask_values)
{
    loom_graph *g = loom_graph_new();
    loom_tensor len = loom_input_i32(g, "len", loom_shape1(3));
    int32_t lv[3] = {2, 4, 1};
    float *v = eval(g, loom_sequence_mask(g, len, 4), (loom_binding[]){{len, lv}}, 1);
    assert_close(v, (float[]){1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0}, 12, 0);
    free(v);
    loom_graph_free(g);
}

/* tanh, σ and exp run as vector code (ops/vmath.h): within 3 ulp of the
 * exact value over a sweep of the whole float range, and exact at the
 * edges (±0, ±∞, NaN, overflow and underflow). */
static double ulps(float got, double want)
{
    float w = (float)want;
    double ulp = nextafterf(fabsf(w), INFINITY) - fabsf(w);
    return fabs((double)got - want) / (ulp > 0 ? ulp : 1e-45);
}

Test(ops, vector_tanh_sigmoid_exp_are_accurate)
{
    enum { N = 1 << 16 };
    float *xs = malloc(N * sizeof *xs);
    for (int i = 0; i < N - 8; i++) { /* every 2^16-th float bit pattern, both signs: all magnitudes */
        uint32_t b = (uint32_t)i * 65536u + 12345u;
        memcpy(&xs[i], &b, sizeof b);
        if (xs[i] != xs[i]) xs[i] = (float)i * 1e-3f;
    }
    const float edge[8] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.72f, -87.3f, 0.625f};
    memcpy(xs + N - 8, edge, sizeof edge);
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(N));
    loom_tensor fs[3] = {loom_tanh(g, x), loom_sigmoid(g, x), loom_exp(g, x)};
    for (int f = 0; f < 3; f++) {
        float *v = eval(g, fs[f], (loom_binding[]){{x, xs}}, 1);
        for (int i = 0; i < N; i++) {
            double d = xs[i], want = f == 0 ? tanh(d) : f == 1 ? 1.0 / (1.0 + exp(-d)) : exp(d);
            if (isnan(want)) {
                cr_assert(isnan(v[i]), "f%d(NaN) = %g", f, v[i]);
                continue;
            }
            if (fabs(want) < 1.2e-38 && want != 0) continue; /* subnormal results may flush */
            if (isinf((float)want)) {
                cr_assert_eq(v[i], (float)want, "f%d(%.9g) = %.9g, overflows to %g", f, xs[i], v[i], (float)want);
                continue;
            }
            cr_assert(ulps(v[i], want) <= 3.0, "f%d(%.9g) = %.9g, exact %.9g (%.1f ulp)", f, xs[i], v[i], want,
                      ulps(v[i], want));
        }
        if (f == 0) cr_assert(signbit(v[N - 7]), "tanh(-0) = -0");
        free(v);
    }
    free(xs);
    loom_graph_free(g);
}

/* The newer maps against libm in double, over both tails; layer norm
 * against its definition. */
Test(ops, sqrt_pow_softplus_elu_hard_sigmoid_values)
{
    enum { N = 41 };
    float xv[N];
    for (int i = 0; i < N; i++) xv[i] = (float)(i - 20) * 0.45f; /* −9 .. 9 */
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(N));
    loom_tensor ax = loom_affine(g, loom_relu(g, x), 1.0f, 0.25f); /* |x|-ish, positive: 0.25 + max(x, 0) */
    loom_tensor ys[] = {loom_sqrt(g, ax), loom_rsqrt(g, ax), loom_pow(g, ax, 1.7f), loom_softplus(g, loom_scale(g, x, 12.0f)),
                        loom_elu(g, x, 0.5f), loom_hard_sigmoid(g, x)};
    for (int f = 0; f < 6; f++) {
        float *v = eval(g, ys[f], (loom_binding[]){{x, xv}}, 1);
        for (int i = 0; i < N; i++) {
            double t = xv[i], a = 0.25 + fmax(t, 0), want;
            switch (f) {
            case 0: want = sqrt(a); break;
            case 1: want = 1 / sqrt(a); break;
            case 2: want = pow(a, 1.7); break;
            case 3: want = log1p(exp(12 * t)); break;
            case 4: want = t > 0 ? t : 0.5 * expm1(t); break;
            default: want = fmin(fmax(t + 3, 0), 6) / 6; break;
            }
            cr_assert(fabs(v[i] - want) <= 2e-6 * (1 + fabs(want)), "f%d(%g) = %.8g, want %.8g", f, t, v[i], want);
        }
        free(v);
    }
    loom_graph_free(g);

    g = loom_graph_new();
    float xs[2 * 6], gs[6], bs[6];
    for (int i = 0; i < 12; i++) xs[i] = (float)(i * i % 7) * (i < 6 ? 1.0f : 100.0f) - 3.0f;
    for (int j = 0; j < 6; j++) gs[j] = 0.5f + j, bs[j] = (float)j - 2;
    loom_tensor lx = loom_input(g, "x", loom_shape2(2, 6)), lg = loom_input(g, "g", loom_shape1(6)), lb = loom_input(g, "b", loom_shape1(6));
    float *v = eval(g, loom_layer_norm(g, lx, lg, lb, 1e-5f), (loom_binding[]){{lx, xs}, {lg, gs}, {lb, bs}}, 3);
    for (int r = 0; r < 2; r++) {
        double mu = 0, var = 0;
        for (int j = 0; j < 6; j++) mu += xs[r * 6 + j] / 6.0;
        for (int j = 0; j < 6; j++) var += (xs[r * 6 + j] - mu) * (xs[r * 6 + j] - mu) / 6.0;
        for (int j = 0; j < 6; j++) {
            double want = (xs[r * 6 + j] - mu) / sqrt(var + 1e-5) * gs[j] + bs[j];
            cr_assert(fabs(v[r * 6 + j] - want) <= 1e-5 * (1 + fabs(want)), "row %d [%d] = %.8g, want %.8g", r, j, v[r * 6 + j], want);
        }
    }
    free(v);
    loom_layer_norm(g, lx, lb, loom_input(g, "b2", loom_shape1(5)), 1e-5f);
    cr_assert(strstr(loom_graph_error(g), "layer_norm: bias") && strstr(loom_graph_error(g), "vector of 6"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}

/* ---------------- every op has a gradient check ---------------- */

/* One gradient check per op of ops/ops.def, each on a small graph that
 * uses the op (ops without a gradient rule are checked for the gradient
 * they do give: none, or zero). The test below walks the op table: an op
 * added without an entry here fails it, and so does an entry whose graph
 * does not hold its op. Inputs are kept off kinks and ties. */
typedef struct {
    loom_graph *g;
    tin x, y;
} gc;

static gc gc_new(loom_shape sx, loom_shape sy, float lo, float hi)
{
    gc c = {.g = loom_graph_new()};
    c.x = in_rand(c.g, "x", sx, lo, hi);
    c.y = in_rand(c.g, "y", sy, lo, hi);
    return c;
}

static void gc_check(gc *c, loom_tensor out, int n_wrt, const loom_binding *fixed, int nf)
{
    cr_assert(!loom_graph_failed(c->g), "%s", loom_graph_error(c->g));
    check_grads(c->g, out, (loom_binding[]){c->x.b, c->y.b}, n_wrt, fixed, nf);
}

static void gc_free(gc *c) { free(c->x.d), free(c->y.d); }

#define S2 loom_shape2(3, 4)
#define GC_BINARY(name, fn, lo)                                                                                             \
    static loom_graph *gc_##name(void)                                                                                      \
    {                                                                                                                       \
        gc c = gc_new(S2, loom_shape1(4), lo, 2);                                                                           \
        gc_check(&c, fn(c.g, c.x.t, c.y.t), 2, NULL, 0);                                                                    \
        gc_free(&c);                                                                                                        \
        return c.g;                                                                                                         \
    }
GC_BINARY(add, loom_add, -2)
GC_BINARY(sub, loom_sub, -2)
GC_BINARY(mul, loom_mul, -2)
GC_BINARY(div, loom_div, 0.5f)
#define GC_UNARY(name, expr, lo)                                                                                            \
    static loom_graph *gc_##name(void)                                                                                      \
    {                                                                                                                       \
        gc c = gc_new(S2, S2, lo, 2);                                                                                       \
        loom_graph *g = c.g;                                                                                                \
        loom_tensor x = c.x.t;                                                                                              \
        for (int i = 0; i < 12; i++)                                                                                        \
            if (fabsf(c.x.d[i]) < 0.2f) c.x.d[i] = 0.5f;                                                                   \
        gc_check(&c, expr, 1, NULL, 0);                                                                                     \
        gc_free(&c);                                                                                                        \
        return g;                                                                                                           \
    }
GC_UNARY(affine, loom_affine(g, x, -1.5f, 0.25f), -2)
GC_UNARY(tanh, loom_tanh(g, x), -2)
GC_UNARY(sigmoid, loom_sigmoid(g, x), -2)
GC_UNARY(relu, loom_relu(g, x), -2)
GC_UNARY(exp, loom_exp(g, x), -2)
GC_UNARY(log, loom_log(g, x), 0.3f)
GC_UNARY(step, loom_mul(g, loom_step(g, x), x), -2) /* step's gradient is 0 off its kink */
GC_UNARY(sum, loom_sum(g, x, 1, false), -2)
GC_UNARY(sum_to, loom_sum_to(g, x, loom_shape1(4)), -2)
GC_UNARY(broadcast_to, loom_broadcast_to(g, loom_sum_to(g, x, loom_shape1(4)), loom_shape3(2, 3, 4)), -2)
GC_UNARY(softmax, loom_softmax(g, x), -2)
GC_UNARY(log_softmax, loom_log_softmax(g, x), -2)
GC_UNARY(slice, loom_slice(g, x, 1, 1, 2), -2)
GC_UNARY(pad, loom_pad(g, x, 0, 1, 5), -2)
GC_UNARY(reshape, loom_reshape(g, x, loom_shape3(2, 2, 3)), -2)
GC_UNARY(transpose, loom_transpose2(g, x), -2)
GC_UNARY(dropout, loom_dropout(g, x, 0.5f, 7), -2) /* forward and backward of one run share the mask */
GC_UNARY(fill, loom_mul(g, loom_add(g, x, loom_fill(g, S2, 0.5f)), x), -2)
GC_UNARY(const, loom_mul(g, loom_constant(g, loom_shape1(4), (float[]){1, -2, 3, 0.5f}), x), -2)
GC_UNARY(input, x, -2)
GC_UNARY(sqrt, loom_sqrt(g, x), 0.3f)
GC_UNARY(rsqrt, loom_rsqrt(g, x), 0.3f)
GC_UNARY(pow, loom_add(g, loom_pow(g, x, 2.5f), loom_pow(g, x, -1.0f)), 0.3f)
GC_UNARY(softplus, loom_softplus(g, loom_scale(g, x, 8.0f)), -2) /* both branches and the tails */
GC_UNARY(elu, loom_elu(g, x, 0.7f), -2)

/* hard_sigmoid on both flats and the slope, away from the kinks at ±3 */
static loom_graph *gc_hard_sigmoid(void)
{
    gc c = gc_new(S2, S2, -2, 2);
    const float v[12] = {-5, -3.5f, -2.9f, -1, -0.2f, 0, 0.4f, 1.5f, 2.8f, 3.2f, 4, 7};
    memcpy(c.x.d, v, sizeof v);
    gc_check(&c, loom_hard_sigmoid(c.g, c.x.t), 1, NULL, 0);
    gc_free(&c);
    return c.g;
}

/* layer_norm with gain and bias, and layer_norm_grad, the op its gradient
 * is made of: rows of 5 with their own scales and offsets */
static loom_graph *gc_layer_norm(void)
{
    gc c = gc_new(loom_shape3(2, 3, 5), loom_shape1(5), -2, 2);
    for (int i = 0; i < 30; i++) c.x.d[i] = c.x.d[i] * (float)(1 + i / 5) + (float)(i / 5) - 2.0f;
    tin b = in_rand(c.g, "b", loom_shape1(5), -1, 1);
    loom_tensor y = loom_layer_norm(c.g, c.x.t, c.y.t, b.t, 1e-5f);
    cr_assert(!loom_graph_failed(c.g), "%s", loom_graph_error(c.g));
    check_grads(c.g, y, (loom_binding[]){c.x.b, c.y.b, b.b}, 3, NULL, 0);
    free(b.d);
    gc_free(&c);
    return c.g;
}

static loom_graph *gc_param(void)
{
    loom_graph *g = loom_graph_new();
    loom_tensor p = loom_param(g, "p", S2);
    float *v = rnd_buf(12, -1, 1);
    check_grads(g, loom_tanh(g, p), (loom_binding[]){{p, v}}, 1, NULL, 0);
    free(v);
    return g;
}

static loom_graph *gc_add_n(void)
{
    gc c = gc_new(S2, S2, -2, 2);
    gc_check(&c, loom_add_n(c.g, (loom_tensor[]){c.x.t, c.y.t, loom_tanh(c.g, c.x.t)}, 3), 2, NULL, 0);
    gc_free(&c);
    return c.g;
}

static loom_graph *gc_where(void)
{
    gc c = gc_new(S2, S2, -2, 2);
    loom_tensor cond = loom_constant(c.g, loom_shape1(4), (float[]){1, 0, 0, 1});
    gc_check(&c, loom_where(c.g, cond, c.x.t, c.y.t), 2, NULL, 0);
    gc_free(&c);
    return c.g;
}

static loom_graph *gc_matmul(void)
{
    gc c = gc_new(S2, loom_shape2(5, 4), -1, 1);
    gc_check(&c, loom_matmul(c.g, c.x.t, c.y.t, false, true), 2, NULL, 0);
    gc_free(&c);
    return c.g;
}

static loom_graph *gc_concat(void)
{
    gc c = gc_new(S2, loom_shape2(3, 2), -1, 1);
    gc_check(&c, loom_concat(c.g, (loom_tensor[]){c.x.t, c.y.t}, 2, 1), 2, NULL, 0);
    gc_free(&c);
    return c.g;
}

/* cross_entropy, and cross_entropy_grad, the op its gradient is made of */
static loom_graph *gc_cross_entropy(void)
{
    gc c = gc_new(loom_shape3(2, 3, 4), S2, -2, 2);
    loom_tensor t = loom_input_i32(c.g, "t", loom_shape2(2, 3));
    int32_t tv[6] = {0, 3, 2, 2, 1, 0};
    loom_tensor loss = loom_cross_entropy(c.g, c.x.t, t, LOOM_NO_MASK);
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(c.g, loss, &c.x.b, 1, (loom_binding[]){{t, tv}}, 1, NULL, &r), LOOM_OK);
    cr_assert(r.passed && r.checked == 24);
    gc_free(&c);
    return c.g;
}

/* gather and scatter_add (a repeated index sums), argmax (no gradient:
 * the table's only), one_hot and sequence_mask (index inputs: none) */
static loom_graph *gc_index(void)
{
    gc c = gc_new(S2, loom_shape3(2, 2, 4), -2, 2);
    loom_graph *g = c.g;
    loom_tensor idx = loom_input_i32(g, "idx", loom_shape2(2, 2)), len = loom_input_i32(g, "len", loom_shape1(4));
    int32_t iv[4] = {2, 0, 2, 1}, lv[4] = {1, 3, 2, 3};
    loom_binding fixed[2] = {{idx, iv}, {len, lv}};
    loom_tensor gathered = loom_gather(g, c.x.t, loom_argmax(g, loom_transpose2(g, c.y.t)));
    loom_tensor y = loom_add(g, loom_sum_all(g, loom_gather(g, c.x.t, idx)), loom_sum_all(g, gathered));
    y = loom_add(g, y, loom_sum_all(g, loom_mul(g, loom_scatter_add(g, c.y.t, idx, 3), c.x.t)));
    y = loom_add(g, y, loom_sum_all(g, loom_mul(g, loom_one_hot(g, len, 4), loom_slice(g, c.x.t, 0, 0, 1))));
    y = loom_add(g, y, loom_sum_all(g, loom_mul(g, loom_sequence_mask(g, len, 3), c.x.t)));
    gc_check(&c, y, 2, fixed, 2);
    gc_free(&c);
    return g;
}

/* stop_gradient: d/dx (x·c) with c = x held constant is x, not 2x (the
 * check sees the difference); scale_grad: w[k] times the gradient */
static loom_graph *gc_stop_gradient(void)
{
    gc c = gc_new(S2, S2, 0.5f, 2);
    loom_tensor loss = loom_sum_all(c.g, loom_mul(c.g, c.x.t, loom_stop_gradient(c.g, c.x.t)));
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(c.g, loss, &c.x.b, 1, NULL, 0, NULL, &r), LOOM_OK);
    cr_assert(!r.passed);
    cr_assert_float_eq(r.worst_numeric, 2 * r.worst_analytic, 1e-2);
    gc_free(&c);
    return c.g;
}

static loom_graph *gc_scale_grad(void)
{
    gc c = gc_new(S2, S2, -2, 2);
    tin w = in_vals(c.g, "w", loom_shape1(3), (float[]){0.5f, 1, 0});
    gc_check(&c, loom_tanh(c.g, loom_scale_grad(c.g, c.x.t, w.t, 1)), 1, &w.b, 1);
    loom_tensor loss = loom_sum_all(c.g, loom_tanh(c.g, loom_scale_grad(c.g, c.x.t, w.t, 0)));
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(c.g, loss, &c.x.b, 1, &w.b, 1, NULL, &r), LOOM_OK);
    cr_assert_float_eq(r.worst_analytic, 0.5 * r.worst_numeric, 1e-3, "w[0] = 0.5 halves the gradient");
    free(w.d);
    gc_free(&c);
    return c.g;
}

Test(ops, every_op_has_a_gradient_check, .timeout = 60)
{
    static const struct {
        const char *op;
        loom_graph *(*check)(void);
    } checks[] = {
        {"input", gc_input},     {"param", gc_param},
        {"const", gc_const},     {"fill", gc_fill},
        {"add", gc_add},         {"sub", gc_sub},
        {"mul", gc_mul},         {"div", gc_div},
        {"add_n", gc_add_n},     {"affine", gc_affine},
        {"tanh", gc_tanh},       {"sigmoid", gc_sigmoid},
        {"relu", gc_relu},       {"exp", gc_exp},
        {"log", gc_log},         {"step", gc_step},
        {"where", gc_where},     {"matmul", gc_matmul},
        {"sum", gc_sum},         {"sum_to", gc_sum_to},
        {"broadcast_to", gc_broadcast_to}, {"softmax", gc_softmax},
        {"log_softmax", gc_log_softmax},   {"cross_entropy", gc_cross_entropy},
        {"cross_entropy_grad", gc_cross_entropy}, {"concat", gc_concat},
        {"slice", gc_slice},     {"pad", gc_pad},
        {"reshape", gc_reshape}, {"transpose", gc_transpose},
        {"stop_gradient", gc_stop_gradient}, {"gather", gc_index},
        {"scatter_add", gc_index}, {"one_hot", gc_index},
        {"argmax", gc_index},    {"dropout", gc_dropout},
        {"sequence_mask", gc_index}, {"scale_grad", gc_scale_grad},
        {"sqrt", gc_sqrt},       {"rsqrt", gc_rsqrt},
        {"pow", gc_pow},         {"softplus", gc_softplus},
        {"elu", gc_elu},         {"hard_sigmoid", gc_hard_sigmoid},
        {"layer_norm", gc_layer_norm}, {"layer_norm_grad", gc_layer_norm},
    };
    int n = (int)(sizeof checks / sizeof *checks);
    for (int op = 0; op < loom_op_count(); op++) {
        const char *name = loom_op_name(op);
        int k = 0;
        while (k < n && strcmp(checks[k].op, name)) k++;
        cr_assert_lt(k, n, "op '%s' (ops/ops.def) has no gradient check: add one here", name);
        loom_graph *g = checks[k].check();
        bool holds = false;
        for (int32_t i = 0; i < loom_graph_size(g) && !holds; i++) holds = loom_graph_node(g, loom_at(i))->op == op;
        cr_assert(holds, "the gradient check for '%s' does not use it", name);
        loom_graph_free(g);
    }
}
