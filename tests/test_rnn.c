/* Recurrent frontends: PyTorch golden cases through rnn-run's code path,
 * gradient checks of every cell through a 5-step unroll, truncated BPTT,
 * variable lengths, tags, layer dropout, and mistakes. */
#include "helpers.h"
#include <criterion/parameterized.h>
#include "loom/safetensors.h"
#include "mgu_cell.h"
#include "tool.h"

#include <unistd.h>

/* ---------------- golden cases against PyTorch ---------------- */

/* Runs every golden case of `cell` through rnn-run and compares all outputs
 * and gradients with PyTorch's: max |loom − torch| ≤ 1e-5 · max(1, max |torch|). */
static void golden_cell(const char *cell)
{
    FILE *list = fopen(LOOM_GOLDEN_DIR "/cases.txt", "r");
    cr_assert(list, "cannot open the golden case list");
    char name[256], out[64];
    int cases = 0;
    double worst = 0;
    char worst_at[512] = "";
    snprintf(out, sizeof out, "/tmp/loom-golden-%d-%s.safetensors", (int)getpid(), cell);
    while (fscanf(list, "%255s", name) == 1) {
        if (strncmp(name, cell, strlen(cell)) || name[strlen(cell)] != '_') continue;
        char path[512], err[1024];
        snprintf(path, sizeof path, "%s/%s", LOOM_GOLDEN_DIR, name);
        cr_assert_eq(rnn_run(path, out, false, err, sizeof err), 0, "%s", err);
        loom_st *want = st_read(path, err, sizeof err), *got = st_read(out, err, sizeof err);
        cr_assert(want && got, "%s", err);
        int compared = 0;
        for (int i = 0; i < got->n; i++) {
            const loom_st_tensor *g = &got->tensors[i];
            char key[300];
            snprintf(key, sizeof key, "expected.%s", g->name);
            const loom_st_tensor *w = loom_st_get(want, key);
            cr_assert(w, "%s: PyTorch has no %s", name, key);
            cr_assert(loom_shape_eq(w->shape, g->shape), "%s: %s shape differs", name, g->name);
            int64_t n = loom_shape_numel(g->shape);
            const float *a = g->data, *b = w->data;
            double scale = 1, err_max = 0;
            for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(b[k]));
            for (int64_t k = 0; k < n; k++) err_max = fmax(err_max, fabs((double)a[k] - b[k]));
            cr_assert_leq(err_max / scale, 1e-5, "%s: %s differs from PyTorch by %g (scale %g)", name, g->name, err_max, scale);
            if (err_max / scale > worst) {
                worst = err_max / scale;
                snprintf(worst_at, sizeof worst_at, "%s %s", name, g->name);
            }
            compared++;
        }
        int expected = 0;
        for (int i = 0; i < want->n; i++) expected += !strncmp(want->tensors[i].name, "expected.", 9);
        cr_assert_eq(compared, expected, "%s: loom wrote %d of PyTorch's %d results", name, compared, expected);
        loom_st_free(want);
        loom_st_free(got);
        cases++;
    }
    fclose(list);
    unlink(out);
    cr_assert_geq(cases, 6, "%s: only %d golden cases found", cell, cases);
    cr_log_info("%s: %d cases, worst relative error %.2e (%s)\n", cell, cases, worst, worst_at);
}

/* Every built-in cell (the registry before any user cell is registered)
 * has golden cases, and matches them. */
ParameterizedTestParameters(golden, builtin_cell)
{
    static int index[LOOM_MAX_CELLS];
    int n;
    loom_cells(&n);
    for (int i = 0; i < n; i++) index[i] = i;
    return cr_make_param_array(int, index, (size_t)n);
}

ParameterizedTest(int *i, golden, builtin_cell) { golden_cell(loom_cells(NULL)[*i]->name); }

/* ---------------- gradient checks through a 5-step unroll ---------------- */

static void check_stack(const loom_cell_def *cell, int layers, bool bi, bool lengths, float dropout, loom_stacking stacking)
{
    enum { T = 5, B = 2, I = 3, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = I, .hidden_size = H,
                                                        .layers = layers, .bidirectional = bi, .dropout = dropout,
                                                        .seed = 5, .stacking = stacking}),
                 LOOM_OK, "%s", loom_graph_error(g));
    int D = bi ? 2 : 1, S = cell->n_states;
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I)), init[2] = {LOOM_INVALID, LOOM_INVALID};
    loom_binding wrt[2 + 2 + LOOM_RNN_MAX_LAYERS * (2 * LOOM_CELL_MAX_PARAMS + 2)], fixed[1];
    int nw = 0, nf = 0;
    wrt[nw++] = (loom_binding){x, rnd_buf(T * B * I, -1, 1)};
    for (int s = 0; s < S; s++) {
        init[s] = loom_input(g, s ? "c0" : "h0", loom_shape3(layers * D, B, H));
        wrt[nw++] = (loom_binding){init[s], rnd_buf(layers * D * B * H, -0.5f, 0.5f)};
    }
    loom_tensor len = lengths ? loom_input_i32(g, "lengths", loom_shape1(B)) : LOOM_INVALID;
    int32_t lv[B] = {5, 3};
    if (lengths) fixed[nf++] = (loom_binding){len, lv};
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.init = {init[0], init[1]}, .lengths = len});
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    for (int l = 0; l < layers; l++)
        for (int d = 0; d < D; d++)
            for (int i = 0; i < rnn.n_params; i++) {
                loom_tensor p = rnn.param[l][d][i];
                /* sizeable weights, so that the gradient check sees real nonlinearity */
                wrt[nw++] = (loom_binding){p, rnd_buf(loom_tensor_numel(g, p), -0.8f, 0.8f)};
            }
    for (int l = 0; l < layers; l++) /* highway gates */
        for (int k = 0; k < 2; k++)
            if (loom_valid(rnn.highway[l][k]))
                wrt[nw++] = (loom_binding){rnn.highway[l][k], rnd_buf(loom_tensor_numel(g, rnn.highway[l][k]), -0.8f, 0.8f)};
    /* the loss reads the output and every final state */
    loom_tensor y = o.output;
    for (int s = 0; s < S; s++) y = loom_add(g, loom_sum_all(g, loom_mul(g, o.final[s], o.final[s])), loom_sum_all(g, y));
    loom_tensor loss = loom_add(g, weighted_loss(g, o.output), y);
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, wrt, nw, fixed, nf, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "%s: wrt[%d] element %lld: analytic %g numeric %g", cell->name, r.worst_tensor,
              (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
    for (int i = 0; i < nw; i++) free(wrt[i].data);
    loom_graph_free(g);
}

static void check_cell(const loom_cell_def *cell, int layers, bool bi, bool lengths, float dropout)
{
    check_stack(cell, layers, bi, lengths, dropout, LOOM_STACK_PLAIN);
}

Test(gradcheck, rnn_tanh) { check_cell(&loom_cell_rnn_tanh, 2, true, false, 0); }
Test(gradcheck, rnn_relu) { check_cell(&loom_cell_rnn_relu, 1, false, true, 0); }
Test(gradcheck, gru) { check_cell(&loom_cell_gru, 2, true, true, 0); }
Test(gradcheck, lstm) { check_cell(&loom_cell_lstm, 2, true, true, 0); }
Test(gradcheck, lstm_with_layer_dropout) { check_cell(&loom_cell_lstm, 2, false, false, 0.3f); }
Test(gradcheck, example_mgu_cell) { check_cell(&mgu_cell, 2, true, true, 0); }
/* the ways of joining stacked layers: unidirectional, the first layer joined
 * too (its input as wide as its output); bidirectional, only the later ones */
Test(gradcheck, residual_stack) { check_stack(&loom_cell_gru, 3, false, true, 0, LOOM_STACK_RESIDUAL); }
Test(gradcheck, residual_stack_bidirectional) { check_stack(&loom_cell_lstm, 2, true, false, 0, LOOM_STACK_RESIDUAL); }
Test(gradcheck, highway_stack) { check_stack(&mgu_cell, 2, false, false, 0, LOOM_STACK_HIGHWAY); }
Test(gradcheck, highway_stack_bidirectional) { check_stack(&loom_cell_lstm, 2, true, true, 0, LOOM_STACK_HIGHWAY); }
Test(gradcheck, dense_stack) { check_stack(&loom_cell_rnn_tanh, 3, true, true, 0, LOOM_STACK_DENSE); }
Test(gradcheck, dense_stack_with_dropout) { check_stack(&loom_cell_gru, 3, false, false, 0.3f, LOOM_STACK_DENSE); }

/* `loom gradcheck` of every cell it knows (the example user cell too),
 * stacked and bidirectional. */
Test(gradcheck, every_known_cell_through_the_command)
{
    loom_cell_register(&mgu_cell);
    int n;
    const loom_cell_def *const *cells = loom_cells(&n);
    cr_assert_geq(n, 5, "the built-ins and the example cell");
    cr_assert_eq(loom_cell_by_name("mgu"), &mgu_cell);
    for (int i = 0; i < n; i++) {
        char *argv[] = {"--cell", (char *)cells[i]->name, "--layers", "2", "--bidirectional"};
        cr_assert_eq(cmd_gradcheck(5, argv), 0, "loom gradcheck --cell %s", cells[i]->name);
    }
}

Test(rnn, cell_registry)
{
    static const loom_cell_def other_mgu = {"mgu", 1, NULL, NULL, NULL};
    cr_assert_null(loom_cell_by_name("mgu"), "user cells are unknown until registered");
    cr_assert_eq(loom_cell_register(&mgu_cell), LOOM_OK);
    cr_assert_eq(loom_cell_register(&mgu_cell), LOOM_OK, "registering the same cell twice is harmless");
    cr_assert_eq(loom_cell_register(&other_mgu), LOOM_ERR_ARG, "incomplete");
    loom_cell_def clash = mgu_cell;
    cr_assert_eq(loom_cell_register(&clash), LOOM_ERR_ARG, "a name another cell has");
    cr_assert_eq(loom_cell_register(NULL), LOOM_ERR_ARG);
    int n;
    const loom_cell_def *const *cells = loom_cells(&n);
    cr_assert_eq(n, 5);
    cr_assert_eq(cells[4], &mgu_cell);
    cr_assert_eq(loom_cell_by_name("lstm"), &loom_cell_lstm);
    cr_assert_null(loom_cell_by_name("transformer"));
}

/* ---------------- structure ---------------- */

Test(rnn, parameters_have_pytorch_names_and_shapes)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 4, .layers = 2,
                                            .bidirectional = true, .prefix = "encoder."});
    struct { const char *name; loom_shape s; } want[] = {
        {"encoder.weight_ih_l0", loom_shape2(16, 3)},         {"encoder.weight_hh_l0", loom_shape2(16, 4)},
        {"encoder.bias_ih_l0", loom_shape1(16)},              {"encoder.bias_hh_l0", loom_shape1(16)},
        {"encoder.weight_ih_l0_reverse", loom_shape2(16, 3)}, {"encoder.weight_ih_l1", loom_shape2(16, 8)},
        {"encoder.weight_hh_l1_reverse", loom_shape2(16, 4)}, {"encoder.bias_hh_l1_reverse", loom_shape1(16)},
    };
    for (unsigned i = 0; i < sizeof want / sizeof *want; i++) {
        loom_tensor t = loom_graph_find(g, want[i].name);
        cr_assert(loom_valid(t), "%s is missing", want[i].name);
        cr_assert(loom_shape_eq(loom_tensor_shape(g, t), want[i].s), "%s has the wrong shape", want[i].name);
    }
    cr_assert_eq(loom_graph_find(g, "encoder.weight_ih_l1_reverse").id, rnn.param[1][1][0].id);
    cr_assert_eq(loom_graph_size(g), 16, "2 layers × 2 directions × 4 parameters");
    loom_graph_free(g);
}

Test(rnn, steps_are_tagged_and_weights_shared)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = 2, .hidden_size = 3, .layers = 2,
                                            .bidirectional = true});
    int32_t params = loom_graph_size(g);
    loom_tensor x = loom_input(g, "x", loom_shape3(4, 1, 2));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    cr_assert(loom_valid(o.output));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, o.output), loom_shape3(4, 1, 6)));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, o.final[0]), loom_shape3(4, 1, 3)));
    int seen[4][2][2] = {{{0}}};
    int matmuls_of_w[2][2] = {{0}};
    for (int32_t i = params; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        if (n->tags.step >= 0) {
            /* layer −1: the step's input row; dir 2: where the directions meet */
            cr_assert(n->tags.layer >= -1 && n->tags.layer < 2 && n->tags.dir >= 0 && n->tags.dir <= 2);
            cr_assert(n->tags.layer >= 0 || !strcmp(loom_op_name(n->op), "slice") || !strcmp(loom_op_name(n->op), "reshape"));
            if (n->tags.layer >= 0 && n->tags.dir < 2) seen[n->tags.step][n->tags.layer][n->tags.dir]++;
        }
        if (!strcmp(loom_op_name(n->op), "matmul"))
            for (int l = 0; l < 2; l++)
                for (int d = 0; d < 2; d++)
                    if (loom_node_input(g, loom_at(i), 1).id == rnn.param[l][d][1].id) matmuls_of_w[l][d]++;
    }
    for (int t = 0; t < 4; t++)
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < 2; d++) cr_assert_gt(seen[t][l][d], 0, "step %d layer %d dir %d has nodes", t, l, d);
    for (int l = 0; l < 2; l++)
        for (int d = 0; d < 2; d++) cr_assert_eq(matmuls_of_w[l][d], 4, "one weight_hh node serves all 4 steps");
    loom_graph_free(g);
}

/* Outputs at padded steps are 0 and each final state is the state at the
 * sequence's own last step — also for the reverse direction, which starts at
 * each sequence's last valid step. Checked against running each sequence
 * alone with its own length. */
Test(rnn, variable_lengths_match_sequences_run_alone)
{
    enum { T = 5, B = 3, I = 2, H = 3 };
    int32_t lens[B] = {5, 2, 4};
    float *xv = rnd_buf(T * B * I, -1, 1);
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = I, .hidden_size = H, .bidirectional = true});
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 3);
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I)), len = loom_input_i32(g, "len", loom_shape1(B));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.lengths = len});
    loom_plan *p = loom_plan_new(g, (loom_tensor[]){o.output, o.final[0], o.final[1]}, 3, NULL);
    loom_store_bind(st, p);
    loom_bind(p, x, xv);
    loom_bind(p, len, lens);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    const float *out = loom_plan_output(p, o.output), *hn = loom_plan_output(p, o.final[0]);
    for (int b = 0; b < B; b++) {
        int Tb = lens[b];
        loom_graph *g1 = loom_graph_new();
        loom_rnn r1;
        loom_rnn_init(g1, &r1, &rnn.o);
        loom_tensor x1 = loom_input(g1, "x", loom_shape3(Tb, 1, I));
        loom_rnn_out o1 = loom_rnn_apply(g1, &r1, x1, NULL);
        float *x1v = malloc((size_t)(Tb * I) * sizeof(float));
        for (int t = 0; t < Tb; t++) memcpy(x1v + t * I, xv + (t * B + b) * I, I * sizeof(float));
        loom_plan *p1 = loom_plan_new(g1, (loom_tensor[]){o1.output, o1.final[0]}, 2, NULL);
        for (int l = 0; l < 1; l++)
            for (int d = 0; d < 2; d++)
                for (int i = 0; i < rnn.n_params; i++) loom_bind(p1, r1.param[l][d][i], loom_store_data(st, rnn.param[l][d][i]));
        loom_bind(p1, x1, x1v);
        cr_assert_eq(loom_run(p1), LOOM_OK);
        const float *out1 = loom_plan_output(p1, o1.output), *hn1 = loom_plan_output(p1, o1.final[0]);
        for (int t = 0; t < T; t++)
            for (int k = 0; k < 2 * H; k++) {
                float got = out[(t * B + b) * 2 * H + k], want = t < Tb ? out1[t * 2 * H + k] : 0.0f;
                cr_assert_float_eq(got, want, 1e-6, "seq %d step %d unit %d", b, t, k);
            }
        for (int d = 0; d < 2; d++)
            for (int k = 0; k < H; k++) cr_assert_float_eq(hn[(d * B + b) * H + k], hn1[d * H + k], 1e-6);
        free(x1v);
        loom_plan_free(p1);
        loom_graph_free(g1);
    }
    free(xv);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* Padded steps contribute no gradient: the input gradient at t ≥ length is 0. */
Test(rnn, padded_steps_get_no_gradient)
{
    enum { T = 4, B = 2, I = 2, H = 2 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = I, .hidden_size = H, .bidirectional = true});
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 9);
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I)), len = loom_input_i32(g, "len", loom_shape1(B)), gx;
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.lengths = len});
    loom_tensor loss = loom_add(g, weighted_loss(g, o.output), loom_sum_all(g, o.final[0]));
    cr_assert_eq(loom_backward(g, loss, &x, 1, &gx), LOOM_OK);
    float *xv = rnd_buf(T * B * I, -1, 1);
    int32_t lv[B] = {4, 1};
    loom_binding b[2 + 2 * 4] = {{x, xv}, {len, lv}};
    for (int i = 0; i < loom_store_count(st); i++)
        b[2 + i] = (loom_binding){loom_store_tensor(st, i), loom_store_data(st, loom_store_tensor(st, i))};
    float *v = eval(g, gx, b, 2 + loom_store_count(st));
    for (int t = 0; t < T; t++)
        for (int k = 0; k < I; k++) {
            if (t >= 1) cr_assert_eq(v[(t * B + 1) * I + k], 0.0f, "padded step %d of sequence 1", t);
            cr_assert_neq(v[(t * B + 0) * I + k], 0.0f);
        }
    free(xv), free(v);
    loom_store_free(st);
    loom_graph_free(g);
}

/* ---------------- truncated BPTT ---------------- */

/* With cuts every 3 steps, the gradient of a loss on the second segment
 * equals the full-BPTT gradient of that segment run alone from the incoming
 * state taken as a constant, and nothing reaches the first segment's inputs. */
Test(rnn, truncated_bptt_segment_equals_detached_run)
{
    enum { T = 6, K = 3, B = 2, I = 2, H = 3 };
    float *xv = rnd_buf(T * B * I, -1, 1);
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = I, .hidden_size = H});
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 4);
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.trunc = LOOM_TRUNC_FIXED, .truncate = K});
    cr_assert_eq(o.n_cuts, 1);
    cr_assert_eq(o.cuts[0], K);
    loom_tensor seg2 = loom_slice(g, o.output, 0, K, T - K);
    float *w = rnd_buf((T - K) * B * H, -1, 1);
    loom_tensor wc = loom_constant(g, loom_shape3(T - K, B, H), w);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, seg2, wc));
    loom_tensor wrt[5] = {x, rnn.param[0][0][0], rnn.param[0][0][1], rnn.param[0][0][2], rnn.param[0][0][3]}, gr[5];
    cr_assert_eq(loom_backward(g, loss, wrt, 5, gr), LOOM_OK);
    /* the state entering segment 2: (h, c) after step K−1 of the same run */
    loom_rnn_out first = loom_rnn_apply(g, &rnn, loom_slice(g, x, 0, 0, K), NULL);
    loom_tensor outs[7] = {gr[0], gr[1], gr[2], gr[3], gr[4], first.final[0], first.final[1]};
    loom_plan *p = loom_plan_new(g, outs, 7, NULL);
    loom_store_bind(st, p);
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK);
    const float *gx = loom_plan_output(p, gr[0]);
    for (int i = 0; i < K * B * I; i++) cr_assert_eq(gx[i], 0.0f, "no gradient crosses the cut (x[%d])", i);

    /* segment 2 alone, its initial state a bound constant */
    loom_graph *g2 = loom_graph_new();
    loom_rnn r2;
    loom_rnn_init(g2, &r2, &rnn.o);
    loom_tensor x2 = loom_input(g2, "x", loom_shape3(T - K, B, I));
    loom_tensor h0 = loom_input(g2, "h0", loom_shape3(1, B, H)), c0 = loom_input(g2, "c0", loom_shape3(1, B, H));
    loom_rnn_out o2 = loom_rnn_apply(g2, &r2, x2, &(loom_rnn_args){.init = {h0, c0}});
    loom_tensor loss2 = loom_sum_all(g2, loom_mul(g2, o2.output, loom_constant(g2, loom_shape3(T - K, B, H), w)));
    loom_tensor wrt2[5] = {x2, r2.param[0][0][0], r2.param[0][0][1], r2.param[0][0][2], r2.param[0][0][3]}, gr2[5];
    cr_assert_eq(loom_backward(g2, loss2, wrt2, 5, gr2), LOOM_OK);
    loom_plan *p2 = loom_plan_new(g2, gr2, 5, NULL);
    for (int i = 0; i < 4; i++) loom_bind(p2, r2.param[0][0][i], loom_store_data(st, rnn.param[0][0][i]));
    loom_bind(p2, x2, xv + K * B * I);
    loom_bind(p2, h0, loom_plan_output(p, first.final[0]));
    loom_bind(p2, c0, loom_plan_output(p, first.final[1]));
    cr_assert_eq(loom_run(p2), LOOM_OK, "%s", loom_plan_error(p2));
    assert_close(gx + K * B * I, loom_plan_output(p2, gr2[0]), (T - K) * B * I, 1e-5f);
    for (int i = 1; i < 5; i++)
        assert_close(loom_plan_output(p, gr[i]), loom_plan_output(p2, gr2[i]), loom_tensor_numel(g, gr[i]), 1e-5f);
    free(xv), free(w);
    loom_plan_free(p2);
    loom_graph_free(g2);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* The gradients of every parameter of a 2-layer bidirectional stack under
 * truncation weights xi (random: N draws of loom_trunc_draw, or a fixed
 * array), as per-element means and standard errors over the runs. */
typedef struct {
    loom_graph *g;
    loom_plan *p;
    loom_store *st;
    loom_tensor xi, gr[64];
    int n, D, T;
    int64_t total;
    float *xv, *rv;
} trunc_model;

static void trunc_model_new(trunc_model *m, const loom_cell_def *cell, int T, loom_trunc kind, int K)
{
    enum { B = 2, I = 2, H = 3 };
    m->g = loom_graph_new();
    m->T = T, m->D = 2;
    loom_rnn rnn;
    loom_rnn_init(m->g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = I, .hidden_size = H, .layers = 2,
                                                .bidirectional = true});
    loom_tensor x = loom_input(m->g, "x", loom_shape3(T, B, I)), r = loom_input(m->g, "r", loom_shape3(T, B, 2 * H));
    m->xi = kind == LOOM_TRUNC_RANDOM ? loom_input(m->g, "xi", loom_shape1(2 * T)) : LOOM_INVALID;
    loom_rnn_out o = loom_rnn_apply(m->g, &rnn, x, &(loom_rnn_args){.trunc = kind, .truncate = K, .trunc_xi = m->xi});
    /* a loss on every step of both directions */
    loom_tensor loss = loom_sum_all(m->g, loom_mul(m->g, o.output, r));
    m->st = loom_store_new(m->g);
    loom_store_init(m->st, 3);
    m->n = loom_store_count(m->st);
    cr_assert_eq(loom_backward(m->g, loss, loom_store_tensors(m->st), m->n, m->gr), LOOM_OK, "%s", loom_graph_error(m->g));
    m->p = loom_plan_new(m->g, m->gr, m->n, NULL);
    cr_assert(m->p, "%s", loom_graph_error(m->g));
    loom_store_bind(m->st, m->p);
    test_rng = 0x853c49e6748fea9bull;
    m->xv = rnd_buf(T * B * I, -1, 1), m->rv = rnd_buf(T * B * 2 * H, -1, 1);
    loom_bind(m->p, x, m->xv), loom_bind(m->p, r, m->rv);
    m->total = 0;
    for (int i = 0; i < m->n; i++) m->total += loom_store_numel(m->st, i);
}

/* Runs once with the weights xi (NULL: none); the gradients, flattened, into g. */
static void trunc_model_grads(trunc_model *m, float *xi, double *g)
{
    if (xi) loom_bind(m->p, m->xi, xi);
    cr_assert_eq(loom_run(m->p), LOOM_OK, "%s", loom_plan_error(m->p));
    int64_t k = 0;
    for (int i = 0; i < m->n; i++) {
        const float *v = loom_plan_output(m->p, m->gr[i]);
        for (int64_t j = 0; j < loom_store_numel(m->st, i); j++) g[k++] = v[j];
    }
}

static void trunc_model_free(trunc_model *m)
{
    loom_plan_free(m->p), loom_store_free(m->st), loom_graph_free(m->g);
    free(m->xv), free(m->rv);
}

/* The elements whose mean over `runs` draws lies more than 5 standard
 * errors (and 1e-5) from `full`; the draws: keep = 0 draws loom_trunc_draw,
 * else ξ ∈ {0, keep} without reweighting (keep = 1: the old, biased
 * random truncation). */
static int64_t off_by_more_than_chance(trunc_model *m, const double *full, int K, int runs, float keep)
{
    double *g = malloc((size_t)m->total * sizeof *g), *sum = calloc((size_t)m->total, sizeof *sum),
           *sq = calloc((size_t)m->total, sizeof *sq);
    float *xi = malloc((size_t)(m->D * m->T) * sizeof *xi);
    for (int run = 0; run < runs; run++) {
        loom_trunc_draw(11, run, K, xi, m->D * m->T);
        for (int i = 0; keep > 0 && i < m->D * m->T; i++) xi[i] = xi[i] > 0 ? keep : 0;
        trunc_model_grads(m, xi, g);
        for (int64_t k = 0; k < m->total; k++) sum[k] += g[k], sq[k] += g[k] * g[k];
    }
    int64_t off = 0;
    for (int64_t k = 0; k < m->total; k++) {
        double mean = sum[k] / runs, var = (sq[k] / runs - mean * mean) * runs / (runs - 1);
        double se = sqrt(var > 0 ? var / runs : 0);
        if (fabs(mean - full[k]) > 5 * se + 1e-5) off++;
    }
    free(g), free(sum), free(sq), free(xi);
    return off;
}

/* Randomised truncation is unbiased (Tallec & Ollivier; d2l 9.7.1.2): the
 * mean of many randomly truncated gradients of a 2-layer bidirectional
 * stack is its full-BPTT gradient within sampling error, for every
 * parameter element — where the same cuts without the reweighting, and
 * fixed truncation, are off. Paths that cross a boundary in both
 * directions are why each direction has its own draws. */
Test(rnn, random_truncation_is_unbiased, .timeout = 120)
{
    enum { T = 7, K = 3, RUNS = 6000 };
    const loom_cell_def *cells[] = {&loom_cell_rnn_tanh, &loom_cell_lstm};
    for (int c = 0; c < 2; c++) {
        trunc_model full, rnd, fixed;
        trunc_model_new(&full, cells[c], T, LOOM_TRUNC_NONE, 0);
        trunc_model_new(&rnd, cells[c], T, LOOM_TRUNC_RANDOM, K);
        trunc_model_new(&fixed, cells[c], T, LOOM_TRUNC_FIXED, K);
        cr_assert_eq(full.total, rnd.total);
        double *gf = malloc((size_t)full.total * sizeof *gf), *gx = malloc((size_t)full.total * sizeof *gx);
        trunc_model_grads(&full, NULL, gf);
        /* ξ all 1: the full gradient; all 0: truncation after every step */
        float *ones = malloc((size_t)(2 * T) * sizeof *ones);
        for (int i = 0; i < 2 * T; i++) ones[i] = 1;
        trunc_model_grads(&rnd, ones, gx);
        for (int64_t k = 0; k < full.total; k++) cr_assert_float_eq(gx[k], gf[k], 1e-6 + 1e-5 * fabs(gf[k]));
        cr_assert_eq(off_by_more_than_chance(&rnd, gf, K, RUNS, 0), 0, "%s: random truncation is biased", cells[c]->name);
        cr_assert_gt(off_by_more_than_chance(&rnd, gf, K, RUNS / 4, 1), 0, "%s: the test must see the unweighted cuts' bias",
                     cells[c]->name);
        trunc_model_grads(&fixed, NULL, gx);
        int64_t differ = 0;
        for (int64_t k = 0; k < full.total; k++) differ += fabs(gx[k] - gf[k]) > 1e-4;
        cr_assert_gt(differ, full.total / 4, "fixed truncation changes the gradient");
        free(gf), free(gx), free(ones);
        trunc_model_free(&full), trunc_model_free(&rnd), trunc_model_free(&fixed);
    }
}

Test(rnn, truncation_keeps_forward_values_and_random_cuts_are_seeded)
{
    enum { T = 40, B = 1, I = 2, H = 2 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = I, .hidden_size = H});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_out full = loom_rnn_apply(g, &rnn, x, NULL);
    loom_rnn_out cut = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.trunc = LOOM_TRUNC_RANDOM, .truncate = 5, .trunc_seed = 1});
    loom_rnn_out again = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.trunc = LOOM_TRUNC_RANDOM, .truncate = 5, .trunc_seed = 1});
    loom_rnn_out other = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.trunc = LOOM_TRUNC_RANDOM, .truncate = 5, .trunc_seed = 2});
    cr_assert_gt(cut.n_cuts, 3);
    cr_assert_eq(cut.n_cuts, again.n_cuts);
    bool same = cut.n_cuts == other.n_cuts;
    for (int i = 0; i < cut.n_cuts; i++) {
        cr_assert_eq(cut.cuts[i], again.cuts[i]);
        cr_assert(cut.cuts[i] > (i ? cut.cuts[i - 1] : 0));
        same = same && cut.cuts[i] == other.cuts[i];
    }
    cr_assert(!same, "another seed, other cuts");
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 1);
    float *xv = rnd_buf(T * B * I, -1, 1);
    loom_plan *p = loom_plan_new(g, (loom_tensor[]){full.output, cut.output}, 2, NULL);
    loom_store_bind(st, p);
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK);
    assert_close(loom_plan_output(p, cut.output), loom_plan_output(p, full.output), T * B * H, 0);
    free(xv);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* ---------------- layer dropout ---------------- */

Test(rnn, layer_dropout_only_in_training)
{
    enum { T = 3, B = 2, I = 3, H = 4 };
    loom_graph *g = loom_graph_new();
    loom_rnn with, without;
    loom_rnn_opts o = {.cell = &loom_cell_gru, .input_size = I, .hidden_size = H, .layers = 2, .dropout = 0.5f, .seed = 3};
    loom_rnn_init(g, &with, &o);
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_out a = loom_rnn_apply(g, &with, x, NULL);
    without = with;
    without.o.dropout = 0;
    loom_rnn_out b = loom_rnn_apply(g, &without, x, NULL);
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 2);
    float *xv = rnd_buf(T * B * I, -1, 1);
    loom_plan *p = loom_plan_new(g, (loom_tensor[]){a.output, b.output}, 2, NULL);
    loom_store_bind(st, p);
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK);
    int differ = 0;
    for (int i = 0; i < T * B * H; i++) differ += loom_plan_output(p, a.output)[i] != loom_plan_output(p, b.output)[i];
    cr_assert_gt(differ, 0, "training: dropout between the layers changes the output");
    loom_plan_set_eval(p, true);
    cr_assert_eq(loom_run(p), LOOM_OK);
    assert_close(loom_plan_output(p, a.output), loom_plan_output(p, b.output), T * B * H, 0);
    free(xv);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}

/* ---------------- mistakes ---------------- */

Test(rnn, build_mistakes)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    cr_assert_neq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 0, .hidden_size = 4}), LOOM_OK);
    cr_assert(strstr(loom_graph_error(g), "input_size 0"), "%s", loom_graph_error(g));
    loom_graph_free(g);

    g = loom_graph_new();
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 4});
    loom_rnn_out o = loom_rnn_apply(g, &rnn, loom_input(g, "x", loom_shape3(5, 2, 4)), NULL);
    cr_assert(!loom_valid(o.output));
    cr_assert(strstr(loom_graph_error(g), "lstm") && strstr(loom_graph_error(g), "(5,2,4)") &&
              strstr(loom_graph_error(g), "(T, B, 3)"), "%s", loom_graph_error(g));
    loom_graph_free(g);

    g = loom_graph_new();
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = 3, .hidden_size = 4, .layers = 2});
    loom_tensor h0 = loom_input(g, "h0", loom_shape3(1, 2, 4));
    o = loom_rnn_apply(g, &rnn, loom_input(g, "x", loom_shape3(5, 2, 3)), &(loom_rnn_args){.init = {h0}});
    cr_assert(!loom_valid(o.output));
    cr_assert(strstr(loom_graph_error(g), "'h0' (1,2,4)") && strstr(loom_graph_error(g), "(2,2,4)"), "%s",
              loom_graph_error(g));
    loom_graph_free(g);
}

Test(rnn, run_time_length_errors)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = 1, .hidden_size = 1});
    loom_tensor x = loom_input(g, "x", loom_shape3(3, 2, 1)), len = loom_input_i32(g, "len", loom_shape1(2));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.lengths = len});
    loom_plan *p = loom_plan_new(g, &o.output, 1, NULL);
    float xv[6] = {0}, w[1] = {0};
    int32_t lv[2] = {3, 4};
    for (int i = 0; i < 4; i++) loom_bind(p, rnn.param[0][0][i], w);
    loom_bind(p, x, xv);
    loom_bind(p, len, lv);
    cr_assert_eq(loom_run(p), LOOM_ERR_VALUE);
    cr_assert(strstr(loom_plan_error(p), "length 4") && strstr(loom_plan_error(p), "[1, 3]"), "%s", loom_plan_error(p));
    loom_plan_free(p);
    loom_graph_free(g);
}

/* ---------------- a user's cell, as a user meets it ---------------- */

/* A cell whose step makes a shape mistake at its third step. */
static int bad_params(const loom_cell_def *def, int input_size, int hidden_size, loom_param_spec *s, int max)
{
    if (max < 2) return 2;
    s[0] = (loom_param_spec){.name = "w", .shape = loom_shape2(hidden_size, input_size), .init = LOOM_INIT_UNIFORM, .scale = 0.1f};
    s[1] = (loom_param_spec){.name = "b", .shape = loom_shape1(2 * hidden_size), .init = LOOM_INIT_ZEROS, .scale = 0};
    return 2;
}

static loom_tensor bad_step(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x,
                            const loom_tensor *state, loom_tensor *next)
{
    loom_tensor a = loom_matmul(g, x, p[0], false, true);
    /* from the third step on, the bias (2H,) does not broadcast with (B, H) */
    next[0] = loom_graph_tags(g).step >= 2 ? loom_add(g, a, p[1]) : loom_tanh(g, a);
    return next[0];
}

Test(rnn, a_cell_error_says_where)
{
    static const loom_cell_def bad = {"leaky", 1, bad_params, bad_step, NULL};
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &bad, .input_size = 3, .hidden_size = 4, .layers = 2});
    loom_rnn_apply(g, &rnn, loom_input(g, "x", loom_shape3(5, 2, 3)), NULL);
    cr_assert(strstr(loom_graph_error(g), "cell leaky, step 3 of 5, layer 0, forward: add: ") &&
                  strstr(loom_graph_error(g), "(8,)") && strstr(loom_graph_error(g), "(2,4)"),
              "%s", loom_graph_error(g));
    loom_graph_free(g);
}

/* A cell with more parameters than loom has room for is told the room and
 * refused before any parameter is made; one with many (but not too many)
 * parameters works. */
static int many_params(const loom_cell_def *def, int input_size, int hidden_size, loom_param_spec *s, int max)
{
    int n = *(const int *)def->user;
    if (n > max) return n;
    for (int i = 0; i < n; i++) {
        s[i] = (loom_param_spec){.shape = loom_shape1(hidden_size), .init = LOOM_INIT_CONSTANT, .scale = 0.01f * i};
        snprintf(s[i].name, sizeof s[i].name, "b%d", i);
    }
    return n;
}

static loom_tensor many_step(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x,
                             const loom_tensor *state, loom_tensor *next)
{
    loom_tensor h = state[0];
    for (int i = 0; i < *(const int *)def->user; i++) h = loom_add(g, h, p[i]);
    return next[0] = loom_tanh(g, h);
}

Test(rnn, cells_may_have_many_parameters_and_are_told_the_limit)
{
    static const int twenty = 20, too_many = LOOM_CELL_MAX_PARAMS + 1;
    static const loom_cell_def wide = {"wide", 1, many_params, many_step, &twenty};
    static const loom_cell_def wider = {"wider", 1, many_params, many_step, &too_many};
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &wide, .input_size = 3, .hidden_size = 4, .layers = 2,
                                                          .bidirectional = true}), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert_eq(rnn.n_params, 20);
    char nm[64];
    cr_assert_str_eq(loom_rnn_param_name(&rnn, 1, 1, 19, nm, sizeof nm), "b19_l1_reverse");
    loom_graph_free(g);
    g = loom_graph_new();
    cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &wider, .input_size = 3, .hidden_size = 4}), LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "rnn wider: the cell declares 65 parameters"), "%s", loom_graph_error(g));
    cr_assert_eq(loom_graph_params(g, NULL, 0), 0, "no parameter was made");
    loom_graph_free(g);
}

/* Parameters listed, their gradients found by handle or name after
 * loom_backward, a store's buffers as the bindings gradcheck takes, and
 * binding checked for type and size. */
Test(rnn, parameters_and_gradients_by_name)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &mgu_cell, .input_size = 3, .hidden_size = 4, .layers = 2});
    loom_tensor x = loom_input(g, "x", loom_shape3(4, 2, 3));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_sum_all(g, loom_tanh(g, o.output));
    int n = loom_graph_params(g, NULL, 0);
    cr_assert_eq(n, 6);
    loom_tensor params[6], grads[6];
    cr_assert_eq(loom_graph_params(g, params, 6), 6);
    cr_assert_str_eq(loom_tensor_name(g, params[0]), "weight_ih_l0");
    cr_assert_str_eq(loom_tensor_name(g, params[5]), "bias_l1");
    cr_assert_eq(loom_backward(g, loss, params, n, grads), LOOM_OK);
    for (int i = 0; i < n; i++) cr_assert_eq(loom_grad(g, params[i]).id, grads[i].id);
    cr_assert_eq(loom_grad(g, loom_graph_find(g, "weight_hh_l1")).id, grads[4].id, "by name");
    cr_assert(!loom_valid(loom_grad(g, x)), "x's gradient was not asked for");

    loom_store *s = loom_store_new(g);
    loom_store_init(s, 5);
    cr_assert_eq(loom_store_bindings(s, NULL, 0), 6);
    loom_binding b[7];
    cr_assert_eq(loom_store_bindings(s, b, 6), 6);
    b[6] = (loom_binding){x, rnd_buf(4 * 2 * 3, -1, 1)};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, b, 6, b + 6, 1, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed);

    loom_tensor idx = loom_input_i32(g, "idx", loom_shape1(3));
    loom_tensor y = loom_sum_all(g, loom_one_hot(g, idx, 5));
    loom_plan *p = loom_plan_new(g, &y, 1, NULL);
    float fidx[3] = {1, 2, 3};
    int32_t iidx[3] = {1, 2, 3};
    cr_assert_eq(loom_bind_f32(p, idx, fidx, 3), LOOM_ERR_TYPE, "a float buffer for an i32 input");
    cr_assert(strstr(loom_plan_error(p), "'idx'") && strstr(loom_plan_error(p), "i32"), "%s", loom_plan_error(p));
    cr_assert_eq(loom_bind_i32(p, idx, iidx, 2), LOOM_ERR_SHAPE, "too few elements");
    cr_assert_eq(loom_bind_i32(p, idx, iidx, 3), LOOM_OK);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    cr_assert_float_eq(loom_plan_output(p, y)[0], 3.0f, 0);
    loom_plan_free(p);
    free(b[6].data);
    loom_store_free(s);
    loom_graph_free(g);
}

/* LSTM with projections (PyTorch's proj_size; golden cases above) is
 * gradient-checked 2 layers deep and bidirectional, and loom_rnn_step runs
 * it; unit_forget_bias starts the forget gate's bias at 1 (bias_ih) + 0
 * (bias_hh); both are refused for another cell, and a projection no
 * narrower than the cell. */
Test(rnn, lstm_projections_and_unit_forget_bias)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 5, .proj_size = 2,
                                                          .layers = 2, .bidirectional = true, .unit_forget_bias = true}),
                 LOOM_OK, "%s", loom_graph_error(g));
    cr_assert_eq(rnn.n_params, 5);
    cr_assert_eq(rnn.out_size, 2);
    char nm[64];
    cr_assert_str_eq(loom_rnn_param_name(&rnn, 1, 1, 4, nm, sizeof nm), "weight_hr_l1_reverse");
    cr_assert(loom_shape_eq(loom_tensor_shape(g, rnn.param[1][0][4]), loom_shape2(2, 5)));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, rnn.param[1][0][1]), loom_shape2(20, 2)));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, rnn.param[1][0][0]), loom_shape2(20, 4)), "layer 1 reads 2·P features");
    loom_tensor x = loom_input(g, "x", loom_shape3(4, 2, 3));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, o.output), loom_shape3(4, 2, 4)));
    cr_assert(loom_shape_eq(loom_tensor_shape(g, o.final[0]), loom_shape3(4, 2, 2)) &&
              loom_shape_eq(loom_tensor_shape(g, o.final[1]), loom_shape3(4, 2, 5)));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 3);
    const float *bih = loom_store_data(st, rnn.param[0][0][2]), *bhh = loom_store_data(st, rnn.param[0][0][3]);
    for (int i = 0; i < 20; i++) {
        bool forget = i >= 5 && i < 10;
        cr_assert(forget ? bih[i] == 1 && bhh[i] == 0 : fabsf(bih[i]) <= 1 / sqrtf(5) && fabsf(bhh[i]) <= 1 / sqrtf(5), "row %d", i);
    }
    loom_binding wrt[1 + 20];
    int n = 0;
    float *xv = rnd_buf(24, -1, 1);
    wrt[n++] = (loom_binding){x, xv};
    for (int l = 0; l < 2; l++)
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < 5; i++) wrt[n++] = (loom_binding){rnn.param[l][d][i], loom_store_data(st, rnn.param[l][d][i])};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, weighted_loss(g, o.output), wrt, n, NULL, 0, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "wrt[%d][%lld]: analytic %g numeric %g", r.worst_tensor, (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
    free(xv);
    loom_store_free(st);
    loom_graph_free(g);

    g = loom_graph_new(); /* one step of a one-direction projected stack (a decoder's) */
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 5, .proj_size = 2, .layers = 2});
    loom_tensor state[2][LOOM_RNN_MAX_LAYERS];
    for (int l = 0; l < 2; l++) state[0][l] = loom_fill(g, loom_shape2(2, 2), 0), state[1][l] = loom_fill(g, loom_shape2(2, 5), 0);
    loom_tensor y = loom_rnn_step(g, &rnn, 0, loom_input(g, "x1", loom_shape2(2, 3)), state);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, y), loom_shape2(2, 2)), "%s", loom_graph_error(g));
    loom_graph_free(g);

    const struct {
        loom_rnn_opts o;
        const char *says;
    } bad[] = {
        {{.cell = &loom_cell_gru, .input_size = 3, .hidden_size = 5, .proj_size = 2}, "proj_size is the LSTM's"},
        {{.cell = &loom_cell_gru, .input_size = 3, .hidden_size = 5, .unit_forget_bias = true}, "unit_forget_bias is the LSTM's"},
        {{.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 5, .proj_size = 5}, "proj_size 5 must be in [1, hidden_size 5)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        g = loom_graph_new();
        cr_assert_eq(loom_rnn_init(g, &rnn, &bad[i].o), LOOM_ERR_ARG);
        cr_assert(strstr(loom_graph_error(g), bad[i].says), "%s", loom_graph_error(g));
        loom_graph_free(g);
    }
}

/* Stacked layers joined as loom_stacking says: a residual stack is its
 * layers run one by one with their inputs added to their outputs; a dense
 * stack's layers read the input and every layer below (weight_ih widens),
 * its output the last layer's; a highway gate per layer whose input is as
 * wide as its output, its bias starting at −1. */
Test(rnn, stacking_joins_layers_as_documented)
{
    enum { T = 4, B = 2, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn r, a, b;
    loom_rnn_init(g, &r, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = H, .hidden_size = H, .layers = 2,
                                          .stacking = LOOM_STACK_RESIDUAL});
    loom_rnn_init(g, &a, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = H, .hidden_size = H, .prefix = "a."});
    loom_rnn_init(g, &b, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = H, .hidden_size = H, .prefix = "b."});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, H));
    loom_tensor x1 = loom_add(g, loom_rnn_apply(g, &a, x, NULL).output, x);
    loom_tensor by_hand = loom_add(g, loom_rnn_apply(g, &b, x1, NULL).output, x1);
    loom_tensor diff = loom_sub(g, loom_rnn_apply(g, &r, x, NULL).output, by_hand);
    loom_tensor err = loom_sum_all(g, loom_mul(g, diff, diff));
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    loom_binding bind[1 + 2 * 2 * 4];
    int n = 0;
    bind[n++] = (loom_binding){x, rnd_buf(T * B * H, -1, 1)};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 4; i++) { /* the same weights: layer l of the stack, and stack a or b */
            float *w = rnd_buf(loom_tensor_numel(g, r.param[l][0][i]), -0.6f, 0.6f);
            bind[n++] = (loom_binding){r.param[l][0][i], w};
            bind[n++] = (loom_binding){(l ? b : a).param[0][0][i], w};
        }
    float e = -1;
    cr_assert_eq(loom_node_values(g, err, bind, n, &e, 1), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(e >= 0 && e < 1e-10f, "residual stack = its layers by hand: %g", e);
    free((void *)bind[0].data);
    for (int k = 1; k < n; k += 2) free((void *)bind[k].data);
    loom_graph_free(g);

    g = loom_graph_new();
    loom_rnn_init(g, &r, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = 2, .hidden_size = H, .layers = 3,
                                          .bidirectional = true, .stacking = LOOM_STACK_DENSE});
    cr_assert(loom_shape_eq(loom_tensor_shape(g, r.param[2][1][0]), loom_shape2(H, 2 + 2 * 2 * H)), "layer 2 reads 2 + 2·6");
    loom_rnn_out o = loom_rnn_apply(g, &r, loom_input(g, "x", loom_shape3(T, B, 2)), NULL);
    cr_assert(loom_shape_eq(loom_tensor_shape(g, o.output), loom_shape3(T, B, 2 * H)), "the output: the last layer's");
    loom_graph_free(g);

    g = loom_graph_new();
    loom_rnn_init(g, &r, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 2, .hidden_size = H, .layers = 2,
                                          .bidirectional = true, .stacking = LOOM_STACK_HIGHWAY, .prefix = "rnn."});
    cr_assert(!loom_valid(r.highway[0][0]), "layer 0 reads 2 features, writes 6: no gate");
    cr_assert_str_eq(loom_tensor_name(g, r.highway[1][0]), "rnn.highway_l1.weight");
    cr_assert(loom_shape_eq(loom_tensor_shape(g, r.highway[1][0]), loom_shape2(2 * H, 2 * H)));
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 3);
    const float *bias = loom_store_data_by_name(s, "rnn.highway_l1.bias");
    cr_assert(bias && bias[0] == -1.0f && bias[2 * H - 1] == -1.0f, "the gate starts by carrying its input");
    loom_store_free(s);
    loom_graph_free(g);
    g = loom_graph_new();
    cr_assert_eq(loom_rnn_init(g, &r, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = 2, .hidden_size = H, .stacking = 7}),
                 LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "stacking 7"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}

/* ---- recurrent regularisation ---- */

/* Gradients that check through every regulariser (its masks fixed by the
 * run's seed), for built-in cells and a user cell. */
static void check_regs(const loom_cell_def *cell, bool bi, loom_rnn_opts r)
{
    enum { T = 4, B = 2, I = 3, H = 3, L = 2 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    r.cell = cell, r.input_size = I, r.hidden_size = H, r.layers = L, r.bidirectional = bi, r.seed = 9;
    cr_assert_eq(loom_rnn_init(g, &rnn, &r), LOOM_OK, "%s", loom_graph_error(g));
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_binding wrt[1 + LOOM_RNN_MAX_LAYERS * 2 * LOOM_CELL_MAX_PARAMS];
    int nw = 0;
    wrt[nw++] = (loom_binding){x, rnd_buf(T * B * I, -1, 1)};
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    for (int l = 0; l < L; l++)
        for (int d = 0; d < (bi ? 2 : 1); d++)
            for (int i = 0; i < rnn.n_params; i++)
                wrt[nw++] = (loom_binding){rnn.param[l][d][i], rnd_buf(loom_tensor_numel(g, rnn.param[l][d][i]), -0.8f, 0.8f)};
    loom_tensor loss = loom_add(g, weighted_loss(g, o.output), loom_sum_all(g, loom_mul(g, o.final[0], o.final[0])));
    loom_gradcheck_result res;
    cr_assert_eq(loom_gradcheck(g, loss, wrt, nw, NULL, 0, NULL, &res), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(res.passed, "%s: wrt[%d] element %lld: analytic %g numeric %g", cell->name, res.worst_tensor,
              (long long)res.worst_index, res.worst_analytic, res.worst_numeric);
    for (int i = 0; i < nw; i++) free(wrt[i].data);
    loom_graph_free(g);
}
Test(gradcheck, state_dropout) { check_regs(&loom_cell_lstm, true, (loom_rnn_opts){.state_dropout = 0.4f}); }
Test(gradcheck, weight_drop) { check_regs(&loom_cell_gru, false, (loom_rnn_opts){.weight_drop = 0.5f}); }
Test(gradcheck, weight_drop_user_cell) { check_regs(&mgu_cell, true, (loom_rnn_opts){.weight_drop = 0.3f}); }
Test(gradcheck, zoneout) { check_regs(&loom_cell_lstm, false, (loom_rnn_opts){.zoneout = 0.3f}); }
Test(gradcheck, variational_layer_dropout)
{
    check_regs(&loom_cell_rnn_tanh, true, (loom_rnn_opts){.dropout = 0.4f, .variational = true, .zoneout = 0.2f});
}

/* How many dropout nodes a graph has. */
static int dropouts(const loom_graph *g)
{
    int n = 0;
    for (int32_t i = 0; i < loom_graph_size(g); i++) n += !strcmp(loom_op_name(loom_graph_node(g, loom_at(i))->op), "dropout");
    return n;
}

/* A stack with regularisers built over x; its output's values in a training or an evaluation plan. */
static float *regs_output(loom_rnn_opts r, int T, const float *xv, const float *const *w, bool train, int *n_dropouts)
{
    enum { B = 4, I = 3, H = 5 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    r.cell = &loom_cell_gru, r.input_size = I, r.hidden_size = H, r.layers = r.layers ? r.layers : 2, r.seed = 11;
    cr_assert_eq(loom_rnn_init(g, &rnn, &r), LOOM_OK, "%s", loom_graph_error(g));
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_plan *p = loom_plan_new(g, &o.output, 1, &(loom_plan_opts){.eval = !train, .seed = 3});
    cr_assert(p, "%s", loom_graph_error(g));
    loom_bind(p, x, xv);
    for (int l = 0; l < r.layers; l++)
        for (int i = 0; i < 4; i++) loom_bind(p, rnn.param[l][0][i], w[l * 4 + i]);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    size_t n = (size_t)T * B * H;
    float *out = malloc(n * sizeof *out);
    memcpy(out, loom_plan_output(p, o.output), n * sizeof *out);
    if (n_dropouts) *n_dropouts = dropouts(g);
    loom_plan_free(p);
    loom_graph_free(g);
    return out;
}

/* Each regulariser: masks shared as documented (one per sequence or run,
 * not one per step: the dropout nodes do not grow with T), the plain
 * stack's values in evaluation (zoneout: s_t = p s_{t−1} + (1 − p) s̃_t),
 * and something else in training. */
Test(rnn, regularisers_share_their_masks_and_vanish_in_evaluation)
{
    enum { T = 6, B = 4, I = 3, H = 5 };
    float *xv = rnd_buf(T * B * I, -1, 1), *w[8];
    int sizes[4] = {3 * H * I, 3 * H * H, 3 * H, 3 * H};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 4; i++) w[l * 4 + i] = rnd_buf(l && !i ? 3 * H * H : sizes[i], -0.7f, 0.7f);
    float *plain = regs_output((loom_rnn_opts){0}, T, xv, (const float *const *)w, false, NULL);
    const struct {
        const char *what;
        loom_rnn_opts r;
        int dropouts; /* for T steps, 2 layers */
    } cases[] = {
        {"variational layer dropout", {.dropout = 0.5f, .variational = true}, 1},
        {"state dropout", {.state_dropout = 0.5f}, 2},
        {"weight drop", {.weight_drop = 0.5f}, 2}, /* a GRU's weight_hh, per layer */
    };
    for (unsigned k = 0; k < sizeof cases / sizeof *cases; k++) {
        int nd = 0, nd2 = 0;
        float *ev = regs_output(cases[k].r, T, xv, (const float *const *)w, false, &nd);
        float *tr = regs_output(cases[k].r, T, xv, (const float *const *)w, true, NULL);
        free(regs_output(cases[k].r, 2, xv, (const float *const *)w, false, &nd2));
        cr_assert_eq(nd, cases[k].dropouts, "%s: %d masks for %d steps", cases[k].what, nd, T);
        cr_assert_eq(nd2, nd, "%s: as many for 2 steps", cases[k].what);
        /* the same numbers, to rounding: a plain stack's recurrent products may read a packed copy of the
         * weight (oneDNN), a dropped weight's (a computed value) run on CBLAS */
        assert_close(ev, plain, T * B * H, 1e-6f);
        cr_assert(memcmp(tr, plain, sizeof(float) * T * B * H), "%s: training is not", cases[k].what);
        free(ev), free(tr);
    }
    int nd = 0;
    free(regs_output((loom_rnn_opts){.dropout = 0.5f}, T, xv, (const float *const *)w, true, &nd));
    cr_assert_eq(nd, T, "per-step layer dropout: a mask per step");
    /* zoneout at the first step of one layer, from zero states: evaluation (1 − p) s̃_1; training each unit 0 or s̃_1 */
    float *ev = regs_output((loom_rnn_opts){.layers = 1, .zoneout = 0.25f}, 1, xv, (const float *const *)w, false, NULL);
    float *tr = regs_output((loom_rnn_opts){.layers = 1, .zoneout = 0.25f}, 1, xv, (const float *const *)w, true, NULL);
    float *one = regs_output((loom_rnn_opts){.layers = 1}, 1, xv, (const float *const *)w, false, NULL);
    int kept = 0;
    for (int i = 0; i < B * H; i++) {
        cr_assert_float_eq(ev[i], 0.75f * one[i], 1e-6f, "unit %d", i);
        cr_assert(tr[i] == 0.0f || fabsf(tr[i] - one[i]) < 1e-6f, "unit %d: %g, neither 0 nor %g", i, tr[i], one[i]);
        kept += tr[i] == 0.0f;
    }
    cr_assert(kept > 0 && kept < B * H, "some units keep their old value, not all (%d of %d)", kept, B * H);
    free(ev), free(tr), free(one), free(plain), free(xv);
    for (int i = 0; i < 8; i++) free(w[i]);
}

/* ---- many-to-one pooling (loom_rnn_pool) ---- */

/* A bidirectional 2-layer stack over sequences of lengths 5 and 3: LAST is
 * [forward h at each sequence's last valid step; reverse h after step 0],
 * MEAN the outputs' mean over the valid steps — read against the stack's
 * own output; and the gradients through both check. */
Test(rnn, pooling_picks_the_last_valid_state_and_means_the_valid_steps)
{
    enum { T = 5, B = 2, I = 3, H = 4 };
    for (int pool = 0; pool < 2; pool++) {
        loom_graph *g = loom_graph_new();
        loom_rnn rnn;
        cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = I, .hidden_size = H,
                                                             .layers = 2, .bidirectional = true}),
                     LOOM_OK);
        loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I)), len = loom_input_i32(g, "lengths", loom_shape1(B));
        loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.lengths = len});
        loom_tensor v = loom_rnn_pool(g, &rnn, &o, len, (loom_pool)pool);
        cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
        cr_assert(loom_shape_eq(loom_tensor_shape(g, v), loom_shape2(B, 2 * H)));
        int32_t lv[B] = {5, 3};
        loom_binding wrt[1 + 2 * 2 * LOOM_CELL_MAX_PARAMS];
        int nw = 0;
        wrt[nw++] = (loom_binding){x, rnd_buf(T * B * I, -1, 1)};
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < 2; d++)
                for (int i = 0; i < rnn.n_params; i++)
                    wrt[nw++] = (loom_binding){rnn.param[l][d][i], rnd_buf(loom_tensor_numel(g, rnn.param[l][d][i]), -0.8f, 0.8f)};
        loom_tensor outs[2] = {o.output, v};
        loom_plan *p = loom_plan_new(g, outs, 2, &(loom_plan_opts){.eval = true});
        cr_assert(p, "%s", loom_graph_error(g));
        for (int i = 0; i < nw; i++) loom_bind(p, wrt[i].t, wrt[i].data);
        loom_bind(p, len, lv);
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        const float *out = loom_plan_output(p, o.output), *pooled = loom_plan_output(p, v);
        for (int b = 0; b < B; b++)
            for (int k = 0; k < 2 * H; k++) {
                double want = 0;
                if (pool == LOOM_POOL_LAST) /* forward half: step len − 1; reverse half: step 0 */
                    want = out[((size_t)(k < H ? lv[b] - 1 : 0) * B + b) * 2 * H + k];
                else {
                    for (int t = 0; t < lv[b]; t++) want += out[((size_t)t * B + b) * 2 * H + k];
                    want /= lv[b];
                }
                cr_assert_float_eq(pooled[b * 2 * H + k], want, 1e-5, "pool %d, row %d, feature %d", pool, b, k);
            }
        loom_plan_free(p);
        loom_gradcheck_result r;
        loom_tensor loss = weighted_loss(g, v);
        cr_assert_eq(loom_gradcheck(g, loss, wrt, nw, &(loom_binding){len, lv}, 1, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
        cr_assert(r.passed, "pool %d: wrt[%d] element %lld: analytic %g numeric %g", pool, r.worst_tensor, (long long)r.worst_index,
                  r.worst_analytic, r.worst_numeric);
        for (int i = 0; i < nw; i++) free(wrt[i].data);
        loom_graph_free(g);
    }
}
