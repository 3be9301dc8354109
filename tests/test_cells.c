/* Cells from equations: the parser's errors, every shipped cell
 * gradient-checked with the defaults, the built-ins written as equations
 * equal to the C cells. */
#include "helpers.h"
#include "tool.h"

#include <dirent.h>

static const loom_cell_def *cell_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", LOOM_CELLS_DIR, name);
    char *text = slurp(path);
    loom_error err = {0};
    const loom_cell_def *c = loom_cell_parse(text, name, &err);
    free(text);
    cr_assert(c, "%s", err.msg);
    return c;
}

/* A 2-layer bidirectional stack of the cell over (T, B, I), its weighted
 * output as the loss, gradient-checked with loom_gradcheck's defaults
 * (inputs, every parameter). */
static loom_gradcheck_result check_cell(const loom_cell_def *cell, int I, int H)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = I, .hidden_size = H, .layers = 2, .bidirectional = true});
    loom_tensor x = loom_input(g, "x", loom_shape3(4, 2, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    cr_assert(!loom_graph_failed(g), "%s: %s", cell->name, loom_graph_error(g));
    loom_tensor loss = weighted_loss(g, o.output);
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 5);
    loom_binding *wrt = malloc((1 + 4 * (size_t)rnn.n_params) * sizeof *wrt);
    float *xv = rnd_buf(8 * I, -1, 1);
    int n = 0;
    wrt[n++] = (loom_binding){x, xv};
    for (int l = 0; l < 2; l++)
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < rnn.n_params; i++) {
                loom_tensor p = rnn.param[l][d][i];
                float *v = loom_store_data(st, p);
                /* weights away from PyTorch's small start, so every nonlinearity bends */
                for (int64_t k = 0; k < loom_tensor_numel(g, p); k++) v[k] += rnd(-0.3f, 0.3f);
                wrt[n++] = (loom_binding){p, v};
            }
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, wrt, n, NULL, 0, NULL, &r), LOOM_OK, "%s: %s", cell->name, loom_graph_error(g));
    free(xv);
    free(wrt);
    loom_store_free(st);
    loom_graph_free(g);
    return r;
}

Test(cells, every_shipped_cell_passes_gradcheck_with_the_defaults, .timeout = 280)
{
    DIR *dir = opendir(LOOM_CELLS_DIR);
    cr_assert(dir, "%s", LOOM_CELLS_DIR);
    int n = 0;
    for (struct dirent *d; (d = readdir(dir));) {
        size_t len = strlen(d->d_name);
        if (len < 6 || strcmp(d->d_name + len - 5, ".cell")) continue;
        const loom_cell_def *c = cell_file(d->d_name);
        loom_gradcheck_result r = check_cell(c, 3, 4);
        cr_assert(r.passed, "%s: wrt[%d][%lld] analytic %.9g numeric %.9g (f32 %.3g at wrt[%d])", d->d_name, r.worst_tensor,
                  (long long)r.worst_index, r.worst_analytic, r.worst_numeric, r.f32_max_err, r.f32_worst_tensor);
        cr_assert_gt(r.checked, 100);
        /* and through the command, as a user runs it: loom gradcheck --cell FILE --layers 2 --bidirectional
         * (a sample of each tensor, to keep the suite short; tolerances and step are the defaults) */
        char path[600];
        snprintf(path, sizeof path, "%s/%s", LOOM_CELLS_DIR, d->d_name);
        char *argv[] = {"--cell", path, "--layers", "2", "--bidirectional", "--max-checks", "12"};
        cr_assert_eq(cmd_gradcheck(7, argv), 0, "loom gradcheck --cell %s --layers 2 --bidirectional", d->d_name);
        n++;
    }
    closedir(dir);
    cr_assert_geq(n, 14, "the cells folder holds %d cells", n);
}

static int cmp_op(const void *a, const void *b) { return *(const uint16_t *)a - *(const uint16_t *)b; }

/* The built-ins as equations build the same graph (the same nodes; the C
 * cells' order is their compiler's, which leaves a call's argument order
 * open) and the same plan, so they give the same
 * outputs and gradients, bit for bit, from the same weights (copied by
 * name: the equations name them as PyTorch does). */
Test(cells, builtins_as_equations_equal_the_c_cells)
{
    const struct {
        const loom_cell_def *c;
        const char *file;
    } pairs[] = {{&loom_cell_rnn_tanh, "rnn_tanh_eq.cell"},
                 {&loom_cell_rnn_relu, "rnn_relu_eq.cell"},
                 {&loom_cell_gru, "gru_eq.cell"},
                 {&loom_cell_lstm, "lstm_eq.cell"}};
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        const loom_cell_def *cells[2] = {pairs[k].c, cell_file(pairs[k].file)};
        float *out[2][3], *shared[64];
        int32_t size[2];
        uint16_t *ops[2];
        loom_plan_stats ps[2];
        char names[64][64];
        int n_shared = 0;
        float *xv = rnd_buf(5 * 3 * 6, -1, 1);
        for (int e = 0; e < 2; e++) {
            loom_graph *g = loom_graph_new();
            loom_rnn rnn;
            loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cells[e], .input_size = 6, .hidden_size = 8, .layers = 2,
                                                    .bidirectional = true});
            loom_tensor x = loom_input(g, "x", loom_shape3(5, 3, 6));
            loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
            loom_tensor loss = loom_sum_all(g, loom_tanh(g, o.output)), grads[2];
            loom_tensor wrt[2] = {x, rnn.param[0][1][1]}; /* the input and weight_hh_l0_reverse */
            cr_assert_eq(loom_backward(g, loss, wrt, 2, grads), LOOM_OK, "%s", loom_graph_error(g));
            size[e] = loom_graph_size(g);
            ops[e] = malloc((size_t)size[e] * sizeof **ops);
            for (int32_t i = 0; i < size[e]; i++) ops[e][i] = loom_graph_node(g, loom_at(i))->op;
            qsort(ops[e], (size_t)size[e], sizeof **ops, cmp_op);

            loom_store *st = loom_store_new(g);
            loom_store_init(st, 9);
            loom_tensor outs[3] = {o.output, grads[0], grads[1]};
            loom_plan *p = loom_plan_new(g, outs, 3, NULL);
            cr_assert(p, "%s", loom_graph_error(g));
            ps[e] = loom_plan_get_stats(p);
            if (e == 0) {
                n_shared = loom_store_count(st);
                for (int i = 0; i < n_shared; i++) {
                    loom_tensor t = loom_store_tensor(st, i);
                    snprintf(names[i], sizeof names[i], "%s", loom_tensor_name(g, t));
                    int64_t m = loom_tensor_numel(g, t);
                    shared[i] = malloc((size_t)m * sizeof(float));
                    memcpy(shared[i], loom_store_data(st, t), (size_t)m * sizeof(float));
                }
            } else {
                cr_assert_eq(loom_store_count(st), n_shared, "%s: the same parameters", pairs[k].file);
                for (int i = 0; i < n_shared; i++) {
                    float *d = loom_store_data_by_name(st, names[i]);
                    cr_assert(d, "%s has no parameter %s", pairs[k].file, names[i]);
                    memcpy(d, shared[i], (size_t)loom_tensor_numel(g, loom_store_tensor(st, i)) * sizeof(float));
                }
                for (int i = 0; i < n_shared; i++) free(shared[i]);
            }
            cr_assert_eq(loom_store_bind(st, p), LOOM_OK);
            cr_assert_eq(loom_bind(p, x, xv), LOOM_OK);
            cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
            for (int j = 0; j < 3; j++) {
                int64_t m = loom_tensor_numel(g, outs[j]);
                out[e][j] = malloc((size_t)m * sizeof(float));
                memcpy(out[e][j], loom_plan_output(p, outs[j]), (size_t)m * sizeof(float));
            }
            loom_plan_free(p);
            loom_store_free(st);
            loom_graph_free(g);
        }
        cr_assert(size[0] == size[1] && !memcmp(ops[0], ops[1], (size_t)size[0] * sizeof **ops), "%s builds the graph of %s",
                  pairs[k].file, pairs[k].c->name);
        free(ops[0]), free(ops[1]);
        /* and the same plan after the rewrites: kernels, folds, batches, fusions, the memory BPTT keeps (the
         * arena's first-fit placement follows node order: within 1 %) */
        cr_assert(ps[0].nodes == ps[1].nodes && ps[0].views == ps[1].views && ps[0].levels == ps[1].levels &&
                      fabs((double)ps[0].arena_bytes - (double)ps[1].arena_bytes) <= 0.01 * (double)ps[0].arena_bytes &&
                      ps[0].folded == ps[1].folded && ps[0].batched == ps[1].batched &&
                      ps[0].in_place == ps[1].in_place && ps[0].fused == ps[1].fused && ps[0].fused_temps == ps[1].fused_temps &&
                      ps[0].matmul_flops == ps[1].matmul_flops && ps[0].kept_bytes == ps[1].kept_bytes,
                  "%s: plan of %d kernels, %zu bytes, %d fused; the C cell's %d, %zu, %d", pairs[k].file, ps[1].nodes,
                  ps[1].arena_bytes, ps[1].fused, ps[0].nodes, ps[0].arena_bytes, ps[0].fused);
        int64_t sizes[3] = {5 * 3 * 16, 5 * 3 * 6, 0};
        sizes[2] = pairs[k].c == &loom_cell_lstm ? 32 * 8 : pairs[k].c == &loom_cell_gru ? 24 * 8 : 8 * 8;
        for (int j = 0; j < 3; j++) {
            cr_assert(!memcmp(out[0][j], out[1][j], (size_t)sizes[j] * sizeof(float)), "%s: output %d differs", pairs[k].file, j);
            free(out[0][j]), free(out[1][j]);
        }
        free(xv);
    }
}

/* MGU as the issue writes it: parameters named and shaped from their use,
 * with the unroller's suffixes; the op view's names come from the
 * equations; the cell keeps its text. */
Test(cells, parameters_names_and_source)
{
    const char *text = "cell mgu_t(x; h)            # inputs; carried states\n"
                       "  f  = sigmoid(W_f @ x + U_f @ h + b_f)\n"
                       "  hc = tanh(W_h @ x + U_h @ (f * h) + b_h)\n"
                       "  h  = (1 - f) * h + f * hc\n";
    loom_error err = {0};
    const loom_cell_def *c = loom_cell_parse(text, NULL, &err);
    cr_assert(c, "%s", err.msg);
    cr_assert_eq(loom_cell_parse(text, NULL, &err), c, "the same text again is the same cell");
    cr_assert_eq(loom_cell_by_name("mgu_t"), c);
    cr_assert_str_eq(loom_cell_source(c), text);
    cr_assert_null(loom_cell_source(&loom_cell_lstm));
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = c, .input_size = 3, .hidden_size = 5, .layers = 2, .bidirectional = true});
    const char *want[] = {"W_f_l1_reverse", "U_f_l1_reverse", "b_f_l1_reverse", "W_h_l1_reverse", "U_h_l1_reverse", "b_h_l1_reverse"};
    loom_shape shapes[] = {loom_shape2(5, 10), loom_shape2(5, 5), loom_shape1(5), loom_shape2(5, 10), loom_shape2(5, 5), loom_shape1(5)};
    cr_assert_eq(rnn.n_params, 6);
    for (int i = 0; i < 6; i++) {
        char nm[64];
        cr_assert_str_eq(loom_rnn_param_name(&rnn, 1, 1, i, nm, sizeof nm), want[i]);
        cr_assert(loom_shape_eq(loom_tensor_shape(g, rnn.param[1][1][i]), shapes[i]), "%s", want[i]);
    }
    loom_rnn_apply(g, &rnn, loom_input(g, "x", loom_shape3(3, 2, 3)), NULL);
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    bool f0 = false, hc2 = false;
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const char *nm = loom_tensor_name(g, loom_at(i));
        f0 |= nm && !strcmp(nm, "f[0]");
        hc2 |= nm && !strcmp(nm, "hc[2]");
    }
    cr_assert(f0 && hc2, "nodes are named after the equations");
    loom_graph_free(g);
    /* another cell under a taken name is refused */
    cr_assert_null(loom_cell_parse("cell lstm(x; h)\n h = tanh(W @ x + U @ h)\n", "mine.cell", &err));
    cr_assert(strstr(err.msg, "mine.cell: a cell named 'lstm' is already known (a cell written in C)"), "%s", err.msg);
}

/* A cell's statements as one line each (comments dropped, a statement
 * over several lines joined); every node a statement builds carries its
 * number, and its gradient nodes too. */
Test(cells, equations_and_the_nodes_they_build)
{
    const char *text = "cell eq_t(x; h)  # a comment\n"
                       "  W: matrix(H, I)\n"
                       "  a = sigmoid(W @ x +    # the input\n"
                       "              U @ h)     # and the state\n"
                       "  h = a * h + (1 - a) * tanh(V @ x)\n";
    loom_error err = {0};
    const loom_cell_def *c = loom_cell_parse(text, NULL, &err);
    cr_assert(c, "%s", err.msg);
    cr_assert_eq(loom_cell_equations(c), 2);
    cr_assert_eq(loom_cell_equations(&loom_cell_gru), 0, "a cell written in C has none");
    char buf[128], small[8];
    cr_assert_str_eq(loom_cell_equation(c, 0, buf, sizeof buf), "a = sigmoid(W @ x + U @ h)");
    cr_assert_str_eq(loom_cell_equation(c, 1, buf, sizeof buf), "h = a * h + (1 - a) * tanh(V @ x)");
    cr_assert_str_eq(loom_cell_equation(c, 1, small, sizeof small), "h = a *", "cut to the buffer");
    cr_assert_null(loom_cell_equation(c, 2, buf, sizeof buf));
    cr_assert_null(loom_cell_equation(&loom_cell_gru, 0, buf, sizeof buf));
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = c, .input_size = 3, .hidden_size = 4});
    loom_tensor x = loom_input(g, "x", loom_shape3(2, 2, 3));
    loom_tensor loss = loom_sum_all(g, loom_rnn_apply(g, &rnn, x, NULL).output);
    loom_tensor grads[3];
    loom_tensor params[3] = {rnn.param[0][0][0], rnn.param[0][0][1], rnn.param[0][0][2]};
    cr_assert_eq(loom_backward(g, loss, params, 3, grads), LOOM_OK, "%s", loom_graph_error(g));
    int by_eq[2][3] = {{0}}; /* [forward, backward][eq] */
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        const char *nm = loom_tensor_name(g, loom_at(i));
        if (nm && !strcmp(nm, "a[1]")) cr_assert_eq(n->tags.eq, 1, "a[1] comes from statement 1");
        if (nm && !strcmp(nm, "h[0]")) cr_assert_eq(n->tags.eq, 2, "h[0] from statement 2");
        if (n->tags.step >= 0 && n->tags.layer == 0 && n->tags.eq < 3) by_eq[n->tags.role == LOOM_ROLE_BACKWARD][n->tags.eq]++;
    }
    cr_assert(by_eq[0][1] >= 4 && by_eq[0][2] >= 4, "each statement's forward ops: %d, %d", by_eq[0][1], by_eq[0][2]);
    cr_assert(by_eq[1][1] > 0 && by_eq[1][2] > 0, "and their gradients: %d, %d", by_eq[1][1], by_eq[1][2]);
    loom_graph_free(g);
}

/* Ba et al.'s LN-LSTM has nine parameters: three layer norms' gains (1)
 * and biases (0) among them, named after the equations. */
Test(cells, layer_norm_lstm_has_nine_parameters)
{
    const loom_cell_def *c = cell_file("ln_lstm.cell");
    loom_param_spec s[LOOM_CELL_MAX_PARAMS];
    cr_assert_eq(c->params(c, 6, 8, s, LOOM_CELL_MAX_PARAMS), 9);
    cr_assert_eq(c->params(c, 6, 8, s, 4), 9, "the count, with less room than it needs");
    const char *names[] = {"weight_ih", "weight_hh", "bias", "ln_z_weight", "ln_z_bias", "ln_z2_weight", "ln_z2_bias",
                           "ln_h_weight", "ln_h_bias"};
    c->params(c, 6, 8, s, LOOM_CELL_MAX_PARAMS);
    for (int i = 0; i < 9; i++) cr_assert_str_eq(s[i].name, names[i]);
    cr_assert(loom_shape_eq(s[0].shape, loom_shape2(32, 6)) && loom_shape_eq(s[3].shape, loom_shape1(32)) &&
              loom_shape_eq(s[7].shape, loom_shape1(8)));
    cr_assert(s[2].init == LOOM_INIT_ZEROS && s[3].init == LOOM_INIT_ONES && s[4].init == LOOM_INIT_ZEROS);
    cr_assert(s[0].init == LOOM_INIT_UNIFORM && fabsf(s[0].scale - 1 / sqrtf(8)) < 1e-7f);
    const loom_cell_def *ind = cell_file("indrnn.cell");
    cr_assert_eq(ind->params(ind, 6, 8, s, LOOM_CELL_MAX_PARAMS), 3);
    cr_assert(s[0].init == LOOM_INIT_UNIFORM_RANGE && s[0].scale == 0 && s[0].b == 1, "u: vector init uniform(0, 1)");
}

/* Errors name the line and column and what was expected. */
Test(cells, parse_errors_say_where_and_what)
{
    const struct {
        const char *text, *says;
    } bad[] = {
        {"", "1:1: expected 'cell NAME(x; h, ...)', found the end of the text"},
        {"cell a(x; h)\n h = sigmoid(W @ x + U @ h\n", "3:1: expected ')' after the arguments, found the end of the text"},
        {"cell a(x; h)\n h = tanh(W @ x\n       + U @ h + b)\n h = tanh(h) $\n", "4:14: the character '$' has no meaning here"},
        {"cell a(x, y; h)\n h = x\n", "1:9: a cell has one input"},
        {"cell a(x; h)\n h = sigmod(W @ x)\n", "2:6: unknown function 'sigmod'"},
        {"cell a(x; h)\n f = tanh(W @ x)\n", "1:11: the state 'h' is never given its new value"},
        {"cell a(x; h)\n hc = tanh(W @ x)\n h = tanh(h + hx)\n", "2:2: 'hc' is given a value but never used"},
        {"cell a(x; h)\n h = tanh(W @ x + U @ g)\n g = h\n", "2:23: 'g' is used before it is given a value (on line 3)"},
        {"cell a(x; h)\n h = tanh(W @ x + b * 2)\n", "2:21: the shape of 'b' cannot be told from this use; declare it"},
        {"cell a(x; h)\n h = tanh(W @ x + U @ h)[0:2*H]\n", "2:25: the slice [0:74] is not inside [0:37]"},
        {"cell a(x; h)\n h = W @ x + h @ U\n", "2:16: '@' multiplies a matrix by a value, and its right side is a parameter"},
        {"cell a(x; h)\n h = tanh(W @ x) + x\n", "2:18: '+' joins widths 37 and 23"},
        {"cell a(x; h)\n u: vector(H) init uniform(1, 2, 3)\n h = u * h\n", "2:34: uniform takes at most 2 numbers"},
        {"cell a(x; h)\n u: tensor\n h = u * h\n", "2:5: expected 'vector' or 'matrix' after 'u:', found 'tensor'"},
        {"cell a(x; h)\n v: vector\n h = tanh(W @ x)\n", "2:2: the parameter 'v' is declared but never used"},
        {"cell a(x; h)\n h = tanh(W @ x) ^ h\n", "2:18: the exponent of '^' must be a number"},
        {"cell a(x; h)\n H = h\n", "2:2: 'H' is a size and cannot be given a value"},
        {"cell a(x; h)\n h = layer_norm(h, g)\n", "2:6: layer_norm takes 1 argument (x) or 3 (x, gain, bias), not 2"},
        {"cell a(x; h)\n h = tanh(W @ x) * sqrt(1 - H)\n", "2:20: sqrt of these numbers is not a number"},
        {"cell a(x; h)\n h = tanh(W @ x) * 10 ^ 400\n", "2:23: the numbers give an infinite one"},
        {"cell a(x; h)\n W = h\n W: matrix\n h = W\n", "3:2: 'W' is a variable (it is given a value), not a parameter"},
        {"cell a(x; h)\n W: matrix(H, I)\n h = tanh(W @ h)\n", "3:13: '@' joins a matrix of 23 columns with a value of width 37"},
        /* U's first use is open until the right side settles it a matrix: not then made a vector too */
        {"cell a(x; h)\n h = layer_norm(tanh(U + U @ h), g, b) * r\n", "2:24: '+' joins a parameter matrix with a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        loom_error err = {0};
        cr_assert_null(loom_cell_parse(bad[i].text, "t.cell", &err), "case %zu parsed", i);
        cr_assert(strstr(err.msg, bad[i].says) && !strncmp(err.msg, "t.cell:", 7), "case %zu: %s (want %s)", i, err.msg, bad[i].says);
    }
}

/* A declared output is what the layer above and the outputs see; the
 * state goes on as the state. Numbers of H fold (a scale of 1/√H). */
Test(cells, a_declared_output)
{
    loom_error err = {0};
    const loom_cell_def *c = loom_cell_parse("cell twice(x; h)\n"
                                             "  h = tanh(W @ x + U @ h + b)\n"
                                             "  output h * 2 / sqrt(H) * sqrt(H)   # 2h\n",
                                             NULL, &err);
    cr_assert(c, "%s", err.msg);
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = c, .input_size = 3, .hidden_size = 4});
    loom_tensor x = loom_input(g, "x", loom_shape3(2, 2, 3));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 1);
    loom_tensor outs[2] = {o.output, o.final[0]};
    loom_plan *p = loom_plan_new(g, outs, 2, NULL);
    float *xv = rnd_buf(12, -1, 1);
    loom_store_bind(st, p);
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
    const float *y = loom_plan_output(p, o.output), *h = loom_plan_output(p, o.final[0]);
    for (int i = 0; i < 8; i++) cr_assert_float_eq(y[8 + i], 2 * h[i], 1e-6, "output = 2·h at the last step");
    free(xv);
    loom_plan_free(p);
    loom_store_free(st);
    loom_graph_free(g);
}
