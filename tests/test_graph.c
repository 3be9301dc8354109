/* The IR: shapes, names, tags, hash-consing, fingerprints. */
#include "helpers.h"

Test(graph, shapes_and_strings)
{
    char buf[64];
    cr_assert_eq(loom_shape_numel(loom_shape0()), 1);
    cr_assert_eq(loom_shape_numel(loom_shape4(2, 3, 4, 5)), 120);
    cr_assert_str_eq(loom_shape_str(loom_shape3(2, 3, 4), buf, sizeof buf), "(2,3,4)");
    cr_assert_str_eq(loom_shape_str(loom_shape1(7), buf, sizeof buf), "(7,)");
    cr_assert_str_eq(loom_shape_str(loom_shape0(), buf, sizeof buf), "()");
    cr_assert(loom_shape_eq(loom_shape2(2, 3), loom_shape2(2, 3)));
    cr_assert(!loom_shape_eq(loom_shape2(2, 3), loom_shape3(1, 2, 3)));
}

Test(graph, nodes_names_and_roles)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(2, 3));
    loom_tensor w = loom_param(g, "weight_ih_l0", loom_shape2(4, 3));
    loom_tensor c = loom_scalar(g, 2.0f);
    loom_tensor y = loom_tensor_set_name(g, loom_matmul(g, x, w, false, true), "gates");
    cr_assert_eq(loom_graph_size(g), 4);
    cr_assert_str_eq(loom_tensor_name(g, w), "weight_ih_l0");
    cr_assert_str_eq(loom_tensor_name(g, y), "gates");
    cr_assert_null(loom_tensor_name(g, c));
    cr_assert_eq(loom_graph_find(g, "weight_ih_l0").id, w.id);
    cr_assert(!loom_valid(loom_graph_find(g, "gates")), "only inputs and parameters are found by name");
    cr_assert_eq(loom_graph_node(g, x)->tags.role, LOOM_ROLE_INPUT);
    cr_assert_eq(loom_graph_node(g, w)->tags.role, LOOM_ROLE_PARAM);
    cr_assert_eq(loom_graph_node(g, c)->tags.role, LOOM_ROLE_CONST);
    cr_assert_eq(loom_graph_node(g, y)->tags.role, LOOM_ROLE_FORWARD);
    cr_assert_str_eq(loom_op_name(loom_graph_node(g, y)->op), "matmul");
    cr_assert_eq(loom_node_input(g, y, 1).id, w.id);
    cr_assert(!loom_valid(loom_node_input(g, y, 2)));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, y), loom_shape2(2, 4)));
    char buf[160];
    cr_assert_str_eq(loom_tensor_str(g, y, buf, sizeof buf), "'gates' (2,4)");
    loom_graph_free(g);
}

Test(graph, tags_are_stamped_on_new_nodes)
{
    loom_graph *g = loom_graph_new();
    loom_tensor h = loom_input(g, "h0", loom_shape2(1, 2));
    loom_tensor hs[3];
    for (int t = 0; t < 3; t++) {
        loom_graph_set_tags(g, (loom_tags){t, 1, 0, LOOM_ROLE_FORWARD, 0, 0, 0});
        h = hs[t] = loom_tanh(g, h);
    }
    loom_graph_set_tags(g, LOOM_TAGS_NONE);
    for (int t = 0; t < 3; t++) {
        cr_assert_eq(loom_graph_node(g, hs[t])->tags.step, t);
        cr_assert_eq(loom_graph_node(g, hs[t])->tags.layer, 1);
    }
    cr_assert_eq(loom_graph_node(g, loom_relu(g, h))->tags.step, -1);
    loom_graph_free(g);
}

Test(graph, hash_consing_merges_pure_nodes)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape2(2, 3)), b = loom_input(g, "b", loom_shape1(3));
    loom_tensor s1 = loom_add(g, a, b), s2 = loom_add(g, a, b);
    cr_assert_eq(s1.id, s2.id);
    cr_assert_neq(loom_add(g, b, a).id, s1.id, "operand order is part of the key");
    cr_assert_eq(loom_tanh(g, s1).id, loom_tanh(g, s2).id);
    cr_assert_eq(loom_matmul(g, a, a, false, true).id, loom_matmul(g, a, a, false, true).id);
    cr_assert_neq(loom_matmul(g, a, a, false, true).id, loom_matmul(g, a, a, true, false).id, "attributes count");
    cr_assert_eq(loom_fill(g, loom_shape2(2, 2), 1.0f).id, loom_fill(g, loom_shape2(2, 2), 1.0f).id);
    cr_assert_neq(loom_fill(g, loom_shape2(2, 2), 1.0f).id, loom_fill(g, loom_shape2(2, 2), 2.0f).id);
    cr_assert_neq(loom_fill(g, loom_shape2(2, 2), 1.0f).id, loom_fill(g, loom_shape1(4), 1.0f).id);
    int32_t before = loom_graph_size(g);
    for (int i = 0; i < 100; i++) loom_sum(g, loom_mul(g, a, b), -1, false);
    cr_assert_eq(loom_graph_size(g), before + 2, "100 identical expressions are 2 nodes");
    loom_graph_free(g);
}

Test(graph, stateful_nodes_are_never_merged)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, NULL, loom_shape1(3)), b = loom_input(g, NULL, loom_shape1(3));
    cr_assert(loom_valid(a) && loom_valid(b) && a.id != b.id, "inputs are never merged");
    loom_tensor w1 = loom_param(g, NULL, loom_shape1(3)), w2 = loom_param(g, NULL, loom_shape1(3));
    cr_assert(loom_valid(w1) && loom_valid(w2) && w1.id != w2.id);
    float d[3] = {1, 2, 3};
    cr_assert_neq(loom_constant(g, loom_shape1(3), d).id, loom_constant(g, loom_shape1(3), d).id);
    cr_assert_neq(loom_dropout(g, a, 0.5f, 1).id, loom_dropout(g, a, 0.5f, 1).id, "each dropout has its own mask");
    loom_graph_free(g);
}

/* A second input or parameter of one name is refused where it is made,
 * naming both shapes; renaming into a taken name likewise. */
Test(graph, input_and_parameter_names_are_unique)
{
    loom_graph *g = loom_graph_new();
    loom_param(g, "w", loom_shape2(2, 3));
    cr_assert(!loom_valid(loom_param(g, "w", loom_shape1(4))));
    cr_assert(strstr(loom_graph_error(g), "parameter 'w' (4,)") && strstr(loom_graph_error(g), "taken by the parameter 'w' (2,3)") &&
                  strstr(loom_graph_error(g), "prefix"),
              "%s", loom_graph_error(g));
    loom_graph_free(g);
    g = loom_graph_new();
    loom_input(g, "x", loom_shape1(2));
    loom_tensor y = loom_input(g, "y", loom_shape1(2));
    cr_assert(loom_valid(y));
    loom_tensor_set_name(g, y, "x");
    cr_assert(strstr(loom_graph_error(g), "input 'x' (2,): the name is taken by the input 'x'"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}

Test(graph, many_nodes_and_table_growth)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(4));
    for (int i = 0; i < 5000; i++) x = loom_affine(g, loom_tanh(g, x), 1.0f, (float)(i + 1));
    cr_assert(!loom_graph_failed(g));
    cr_assert_eq(loom_graph_size(g), 1 + 2 * 5000);
    /* every node still found after the table grew */
    loom_tensor y = loom_input(g, "y", loom_shape1(4));
    loom_tensor again = loom_tanh(g, y);
    cr_assert_eq(loom_tanh(g, y).id, again.id);
    loom_graph_free(g);
}

static uint64_t build_fp(int hidden, const char *wname)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(2, 3));
    loom_tensor w = loom_param(g, wname, loom_shape2(hidden, 3));
    loom_tanh(g, loom_matmul(g, x, w, false, true));
    uint64_t fp = loom_graph_fingerprint(g);
    loom_graph_free(g);
    return fp;
}

Test(graph, fingerprint_identifies_structure)
{
    cr_assert_eq(build_fp(4, "w"), build_fp(4, "w"));
    cr_assert_neq(build_fp(4, "w"), build_fp(5, "w"), "shapes count");
    cr_assert_neq(build_fp(4, "w"), build_fp(4, "v"), "parameter names count");
}
