/* User mistakes give the sticky first error with a message naming the op,
 * the shapes and the nodes; nothing aborts. */
#include "helpers.h"

static void expect_error(loom_graph *g, loom_tensor t, loom_status st, const char *const *parts)
{
    cr_assert(!loom_valid(t), "the builder returns the invalid handle");
    cr_assert(loom_graph_failed(g));
    cr_assert_eq(loom_graph_status(g), st, "status %d, message: %s", loom_graph_status(g), loom_graph_error(g));
    for (int i = 0; parts[i]; i++)
        cr_assert(strstr(loom_graph_error(g), parts[i]), "'%s' is not in: %s", parts[i], loom_graph_error(g));
}

#define EXPECT(g, t, st, ...) expect_error((g), (t), (st), (const char *const[]){__VA_ARGS__, NULL})

Test(errors, add_shapes_that_do_not_broadcast)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape2(2, 3)), b = loom_input(g, "b", loom_shape1(4));
    EXPECT(g, loom_add(g, a, b), LOOM_ERR_SHAPE, "add", "'a' (2,3)", "'b' (4,)");
    loom_graph_free(g);
}

Test(errors, matmul_inner_dimensions)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "x", loom_shape2(3, 4)), b = loom_param(g, "w", loom_shape2(5, 6));
    EXPECT(g, loom_matmul(g, a, b, false, false), LOOM_ERR_SHAPE, "matmul", "(3,4)", "(5,6)", "4", "5");
    loom_graph_free(g);
}

Test(errors, matmul_batch_and_rank)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape3(2, 3, 4)), b = loom_input(g, "b", loom_shape3(3, 4, 5));
    EXPECT(g, loom_matmul(g, a, b, false, false), LOOM_ERR_SHAPE, "matmul", "batch", "(2,3,4)", "(3,4,5)");
    loom_graph_free(g);
    g = loom_graph_new();
    a = loom_input(g, "v", loom_shape1(4));
    EXPECT(g, loom_matmul(g, a, a, false, false), LOOM_ERR_SHAPE, "matmul", "rank", "(4,)");
    loom_graph_free(g);
}

Test(errors, first_error_sticks)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape2(2, 3)), b = loom_input(g, "b", loom_shape2(3, 2));
    loom_tensor bad = loom_mul(g, a, b);
    cr_assert(!loom_valid(bad));
    char first[1024];
    strcpy(first, loom_graph_error(g));
    int32_t size = loom_graph_size(g);
    /* later calls, valid or not, return invalid and keep the first message */
    cr_assert(!loom_valid(loom_tanh(g, a)));
    cr_assert(!loom_valid(loom_matmul(g, a, a, false, false)));
    cr_assert(!loom_valid(loom_tanh(g, bad)));
    cr_assert(!loom_valid(loom_input(g, "c", loom_shape1(1))));
    cr_assert_str_eq(loom_graph_error(g), first);
    cr_assert_eq(loom_graph_size(g), size, "nothing is added after the error");
    loom_tensor grad;
    cr_assert_neq(loom_backward(g, a, &a, 1, &grad), LOOM_OK);
    cr_assert_null(loom_plan_new(g, &a, 1, NULL));
    cr_assert(strstr(first, "mul"));
    loom_graph_free(g);
}

Test(errors, invalid_and_foreign_handles)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape1(2));
    EXPECT(g, loom_add(g, a, LOOM_INVALID), LOOM_ERR_ARG, "add", "input 1", "not a tensor");
    loom_graph_free(g);
    g = loom_graph_new();
    a = loom_input(g, "a", loom_shape1(2));
    EXPECT(g, loom_tanh(g, (loom_tensor){999}), LOOM_ERR_ARG, "tanh", "999");
    loom_graph_free(g);
}

Test(errors, shape_op_mistakes)
{
    struct {
        const char *what;
        int kind;
    } cases[] = {{"reshape", 0}, {"slice", 1}, {"concat", 2}, {"transpose", 3}, {"sum", 4}, {"pad", 5}, {"rank", 6}};
    for (unsigned c = 0; c < sizeof cases / sizeof *cases; c++) {
        loom_graph *g = loom_graph_new();
        loom_tensor x = loom_input(g, "x", loom_shape2(2, 3)), y = loom_input(g, "y", loom_shape2(3, 3)), r;
        switch (cases[c].kind) {
        case 0: r = loom_reshape(g, x, loom_shape2(4, 2)); break;
        case 1: r = loom_slice(g, x, 1, 2, 2); break;
        case 2: r = loom_concat(g, (loom_tensor[]){x, y}, 2, 1); break;
        case 3: r = loom_transpose(g, x, (int[]){0, 0}); break;
        case 4: r = loom_sum(g, x, 2, false); break;
        case 5: r = loom_pad(g, x, 0, 1, 2); break;
        default: r = loom_input(g, "z", (loom_shape){5, {1, 1, 1, 1}}); break;
        }
        cr_assert(!loom_valid(r), "case %s", cases[c].what);
        cr_assert(strstr(loom_graph_error(g), cases[c].what) && strstr(loom_graph_error(g), c == 6 ? "5" : "(2,3)"),
                  "case %s: %s", cases[c].what, loom_graph_error(g));
        loom_graph_free(g);
    }
}

Test(errors, dtype_mistakes)
{
    loom_graph *g = loom_graph_new();
    loom_tensor i = loom_input_i32(g, "targets", loom_shape1(3));
    EXPECT(g, loom_tanh(g, i), LOOM_ERR_ARG, "tanh", "'targets'", "i32", "f32");
    loom_graph_free(g);
    g = loom_graph_new();
    loom_tensor f = loom_input(g, "idx", loom_shape1(3)), t = loom_param(g, "emb", loom_shape2(4, 2));
    EXPECT(g, loom_gather(g, t, f), LOOM_ERR_ARG, "gather", "'idx'", "i32");
    loom_graph_free(g);
}

Test(errors, cross_entropy_mistakes)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "logits", loom_shape3(2, 3, 5)), t = loom_input_i32(g, "targets", loom_shape1(6));
    EXPECT(g, loom_cross_entropy(g, x, t, LOOM_NO_MASK), LOOM_ERR_SHAPE, "cross_entropy", "(6,)", "(2,3,5)");
    loom_graph_free(g);
    g = loom_graph_new();
    x = loom_input(g, "logits", loom_shape2(2, 5));
    t = loom_input_i32(g, "targets", loom_shape1(2));
    loom_tensor m = loom_input(g, "mask", loom_shape1(3));
    EXPECT(g, loom_cross_entropy(g, x, t, m), LOOM_ERR_SHAPE, "mask", "(3,)", "(2,)");
    loom_graph_free(g);
}

Test(errors, bad_arguments)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(3));
    EXPECT(g, loom_dropout(g, x, 1.5f, 1), LOOM_ERR_ARG, "dropout", "1.5");
    loom_graph_free(g);
    g = loom_graph_new();
    x = loom_input_i32(g, "i", loom_shape1(3));
    EXPECT(g, loom_one_hot(g, x, 0), LOOM_ERR_ARG, "one_hot", "depth");
    loom_graph_free(g);
    g = loom_graph_new();
    EXPECT(g, loom_input(g, "zero", loom_shape2(0, 3)), LOOM_ERR_SHAPE, "input", "(0,3)");
    loom_graph_free(g);
    g = loom_graph_new();
    EXPECT(g, loom_constant(g, loom_shape1(2), NULL), LOOM_ERR_ARG, "const", "NULL");
    loom_graph_free(g);
}

Test(errors, backward_mistakes)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(3)), gx;
    cr_assert_eq(loom_backward(g, loom_tanh(g, x), &x, 1, &gx), LOOM_ERR_SHAPE);
    cr_assert(strstr(loom_graph_error(g), "scalar"), "%s", loom_graph_error(g));
    cr_assert(!loom_valid(gx));
    loom_graph_free(g);

    /* a second derivative through cross-entropy is refused, clearly */
    g = loom_graph_new();
    x = loom_input(g, "logits", loom_shape2(2, 3));
    loom_tensor t = loom_input_i32(g, "t", loom_shape1(2));
    loom_tensor loss = loom_cross_entropy(g, x, t, LOOM_NO_MASK);
    cr_assert_eq(loom_backward(g, loss, &x, 1, &gx), LOOM_OK);
    loom_tensor gg;
    cr_assert_neq(loom_backward(g, loom_sum_all(g, loom_mul(g, gx, gx)), &x, 1, &gg), LOOM_OK);
    cr_assert(strstr(loom_graph_error(g), "cross_entropy_grad") && strstr(loom_graph_error(g), "no gradient rule"),
              "%s", loom_graph_error(g));
    loom_graph_free(g);
}

Test(errors, run_time_mistakes)
{
    loom_graph *g = loom_graph_new();
    loom_tensor emb = loom_param(g, "emb", loom_shape2(4, 2)), idx = loom_input_i32(g, "idx", loom_shape1(3));
    loom_tensor y = loom_gather(g, emb, idx);
    loom_plan *p = loom_plan_new(g, &y, 1, NULL);
    cr_assert_eq(loom_run(p), LOOM_ERR_STATE, "unbound inputs are reported");
    cr_assert(strstr(loom_plan_error(p), "'emb'") && strstr(loom_plan_error(p), "not bound"), "%s", loom_plan_error(p));
    float e[8] = {0};
    int32_t bad[3] = {0, 4, 1};
    loom_bind(p, emb, e);
    loom_bind(p, idx, bad);
    cr_assert_eq(loom_run(p), LOOM_ERR_VALUE);
    cr_assert(strstr(loom_plan_error(p), "gather") && strstr(loom_plan_error(p), "index 4"), "%s", loom_plan_error(p));
    cr_assert_eq(loom_bind(p, y, e), LOOM_ERR_ARG, "only inputs and parameters are bound");
    cr_assert(strstr(loom_plan_error(p), "not an input"), "%s", loom_plan_error(p));
    bad[1] = 3;
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    loom_plan_free(p);
    loom_graph_free(g);
}

Test(errors, null_arguments)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(2, 3));
    cr_assert(!loom_valid(loom_transpose(g, x, NULL)));
    cr_assert(strstr(loom_graph_error(g), "NULL"), "%s", loom_graph_error(g));
    loom_graph_free(g);
    g = loom_graph_new();
    x = loom_input(g, "x", loom_shape0());
    cr_assert_eq(loom_backward(g, x, NULL, 1, NULL), LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "NULL"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}
