/* Plans: reuse, memory placement, views, parallel ready sets, and both GEMM
 * paths (CBLAS and the portable kernel) agreeing. */
#include "helpers.h"
#include "mgu_cell.h"
#include "ops/op.h"

#include <omp.h>

Test(runtime, plan_is_reused_across_runs_and_bindings)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(3)), w = loom_param(g, "w", loom_shape1(3));
    loom_tensor y = loom_sum_all(g, loom_mul(g, x, w));
    loom_plan *p = loom_plan_new(g, &y, 1, NULL);
    float xv[3] = {1, 2, 3}, w1[3] = {1, 1, 1}, w2[3] = {0, 0, 2};
    loom_bind(p, x, xv);
    loom_bind(p, w, w1);
    cr_assert_eq(loom_run(p), LOOM_OK);
    cr_assert_float_eq(loom_plan_output(p, y)[0], 6, 0);
    xv[0] = 10; /* bound by reference: the next run sees new values */
    cr_assert_eq(loom_run(p), LOOM_OK);
    cr_assert_float_eq(loom_plan_output(p, y)[0], 15, 0);
    loom_bind(p, w, w2);
    cr_assert_eq(loom_run(p), LOOM_OK);
    cr_assert_float_eq(loom_plan_output(p, y)[0], 6, 0);
    cr_assert_null(loom_plan_output(p, x), "only requested outputs are readable");
    /* nodes added after planning do not disturb the plan */
    loom_tanh(g, y);
    cr_assert_eq(loom_run(p), LOOM_OK);
    cr_assert_float_eq(loom_plan_output(p, y)[0], 6, 0);
    loom_plan_free(p);
    loom_graph_free(g);
}

/* x → 100 steps of 0.5·tanh(h) + 0.01·i: 200 elementwise ops in a chain. */
static loom_tensor tanh_chain(loom_graph *g, loom_tensor x)
{
    loom_tensor h = x;
    for (int i = 0; i < 100; i++) h = loom_affine(g, loom_tanh(g, h), 0.5f, 0.01f * (float)(i + 1));
    return h;
}

/* Runs plan p of tanh_chain (x of n floats) and checks h against the same
 * steps in C. */
static void check_chain(loom_plan *p, loom_tensor x, loom_tensor h, int n)
{
    float *xv = rnd_buf(n, -1, 1);
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK);
    const float *v = loom_plan_output(p, h);
    for (int j = 0; j < n; j += 97) {
        float want = xv[j];
        for (int i = 0; i < 100; i++) want = 0.5f * tanhf(want) + 0.01f * (float)(i + 1);
        cr_assert_float_eq(v[j], want, 1e-5);
    }
    free(xv);
}

/* The fuse rewrite: a chain of 200 elementwise ops runs as groups of at
 * most LOOM_FUSE_MAX in one pass each; only each group's last value is
 * written out. */
Test(rewrites, elementwise_chains_fuse)
{
    unsetenv("LOOM_REWRITES"); /* these count what the rewrites do */
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(5000)), h = tanh_chain(g, x);
    loom_plan *p = loom_plan_new(g, &h, 1, NULL);
    loom_plan_stats s = loom_plan_get_stats(p);
    int groups = (200 + LOOM_FUSE_MAX - 1) / LOOM_FUSE_MAX;
    cr_assert_eq(s.nodes, groups);
    cr_assert_eq(s.fused, 200 - groups);
    cr_assert_eq(s.fused_temps, 200 - groups);
    cr_assert_leq(s.arena_bytes, 2 * 5008 * sizeof(float), "two live buffers, got %zu", s.arena_bytes);
    check_chain(p, x, h, 5000);
    loom_plan_free(p);
    loom_graph_free(g);
}

/* Operands read through broadcasting (a bias row, a column, a scalar) and
 * rows longer than a chunk: the fused kernel computes exactly what the
 * op kernels compute, at any thread count. */
Test(rewrites, fused_groups_equal_their_kernels)
{
    unsetenv("LOOM_REWRITES"); /* these count what the rewrites do */
    enum { R = 70, C = 300 };
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(R, C)), b = loom_input(g, "b", loom_shape1(C));
    loom_tensor m = loom_input(g, "m", loom_shape2(R, 1));
    loom_tensor y = loom_mul(g, loom_tanh(g, loom_add(g, x, b)), m);
    loom_tensor z = loom_div(g, loom_sub(g, loom_sigmoid(g, y), loom_scalar(g, 0.25f)), loom_affine(g, m, 0.0f, 3.0f));
    loom_tensor outs[2] = {y, loom_mul(g, z, x)};
    loom_plan *p[2] = {loom_plan_new(g, outs, 2, NULL),
                       loom_plan_new(g, outs, 2, &(loom_plan_opts){.no_rewrites = LOOM_REWRITE_FUSE})};
    cr_assert_geq(loom_plan_get_stats(p[0]).fused, 5);
    cr_assert_eq(loom_plan_get_stats(p[1]).fused, 0);
    float *xv = rnd_buf(R * C, -2, 2), *bv = rnd_buf(C, -1, 1), *mv = rnd_buf(R, 0, 1);
    int threads = omp_get_max_threads();
    for (int t = 1; t <= 3; t++) {
        omp_set_num_threads(t);
        for (int k = 0; k < 2; k++) {
            loom_bind(p[k], x, xv), loom_bind(p[k], b, bv), loom_bind(p[k], m, mv);
            cr_assert_eq(loom_run(p[k]), LOOM_OK, "%s", loom_plan_error(p[k]));
        }
        for (int o = 0; o < 2; o++)
            cr_assert_eq(memcmp(loom_plan_output(p[0], outs[o]), loom_plan_output(p[1], outs[o]), R * C * sizeof(float)), 0,
                         "output %d at %d threads", o, t);
    }
    omp_set_num_threads(threads);
    free(xv), free(bv), free(mv);
    loom_plan_free(p[0]), loom_plan_free(p[1]);
    loom_graph_free(g);
}

Test(runtime, dead_buffers_are_reused)
{
    unsetenv("LOOM_REWRITES"); /* these count what the rewrites do */
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape1(4096)), h = tanh_chain(g, x);
    loom_plan *p = loom_plan_new(g, &h, 1, &(loom_plan_opts){.no_rewrites = LOOM_REWRITE_FUSE});
    loom_plan_stats s = loom_plan_get_stats(p);
    cr_assert_eq(s.nodes, 200);
    cr_assert_eq(s.levels, 200);
    cr_assert_eq(s.naive_bytes, 200 * 4096 * sizeof(float));
    cr_assert_leq(s.arena_bytes, 2 * 4096 * sizeof(float), "a chain needs two live buffers, got %zu", s.arena_bytes);
    /* each step writes over its input (the in-place rewrite): one buffer */
    cr_assert_eq(s.in_place, 199);
    cr_assert_eq(s.arena_bytes, 4096 * sizeof(float));
    check_chain(p, x, h, 4096);
    loom_plan_free(p);
    loom_graph_free(g);
}

Test(runtime, views_share_storage)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(2, 3));
    loom_tensor v = loom_stop_gradient(g, loom_reshape(g, x, loom_shape1(6)));
    loom_plan *p = loom_plan_new(g, &v, 1, NULL);
    float xv[6] = {1, 2, 3, 4, 5, 6};
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK);
    cr_assert_eq(loom_plan_output(p, v), xv, "a view of an input is the input's buffer");
    loom_plan_stats s = loom_plan_get_stats(p);
    cr_assert_eq(s.nodes, 0);
    cr_assert_eq(s.views, 2);
    cr_assert_eq(s.arena_bytes, 0);
    loom_plan_free(p);
    loom_graph_free(g);
}

/* Sixteen independent branches form wide ready sets that run side by side;
 * results must not depend on the thread count. */
Test(runtime, parallel_ready_sets_match_serial)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(64, 16)), acc = LOOM_INVALID;
    loom_tensor w = loom_param(g, "w", loom_shape2(16, 16));
    for (int b = 0; b < 16; b++) {
        loom_tensor h = loom_affine(g, x, 1.0f + (float)b / 16, 0);
        for (int d = 0; d < 4; d++) h = loom_tanh(g, loom_matmul(g, h, w, false, d % 2));
        acc = b ? loom_add(g, acc, h) : h;
    }
    loom_tensor loss = loom_sum_all(g, acc), gw;
    cr_assert_eq(loom_backward(g, loss, &w, 1, &gw), LOOM_OK);
    loom_plan *p = loom_plan_new(g, (loom_tensor[]){loss, gw}, 2, NULL);
    loom_plan_set_team(p, LOOM_TEAM_TEAM); /* the team's threads, side by side */
    loom_plan_stats s = loom_plan_get_stats(p);
    cr_assert_lt(s.levels, s.nodes / 4, "wide ready sets: %d levels for %d nodes", s.levels, s.nodes);
    float *xv = rnd_buf(64 * 16, -1, 1), *wv = rnd_buf(16 * 16, -0.3f, 0.3f);
    loom_bind(p, x, xv);
    loom_bind(p, w, wv);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    cr_assert_eq(loom_run(p), LOOM_OK);
    float serial_loss = loom_plan_output(p, loss)[0], *serial_gw = malloc(256 * sizeof(float));
    memcpy(serial_gw, loom_plan_output(p, gw), 256 * sizeof(float));
    omp_set_num_threads(saved > 1 ? saved : 2);
    cr_assert_eq(loom_plan_get_stats(p).side_by_side, 0, "one thread: nothing runs side by side");
    for (int rep = 0; rep < 5; rep++) {
        cr_assert_eq(loom_run(p), LOOM_OK);
        cr_assert_gt(loom_plan_get_stats(p).side_by_side, 0, "wide ready sets ran in parallel");
        cr_assert_float_eq(loom_plan_output(p, loss)[0], serial_loss, 1e-4);
        assert_close(loom_plan_output(p, gw), serial_gw, 256, 1e-5f);
    }
    omp_set_num_threads(saved);
    free(xv), free(wv), free(serial_gw);
    loom_plan_free(p);
    loom_graph_free(g);
}

/* A plan made while one thread is allowed, run with four: the per-thread
 * scratch follows the threads that run, not those of planning time. */
Test(runtime, thread_count_may_change_between_plan_and_run)
{
    int saved = omp_get_max_threads();
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(64, 64)), parts[32];
    for (int b = 0; b < 32; b++) parts[b] = loom_sum_all(g, loom_tanh(g, loom_affine(g, x, 1.0f + (float)b, 0)));
    loom_tensor y = loom_add_n(g, parts, 32);
    omp_set_num_threads(1);
    loom_plan *p = loom_plan_new(g, &y, 1, NULL);
    loom_plan_set_team(p, LOOM_TEAM_TEAM);
    float *xv = rnd_buf(64 * 64, -1, 1);
    loom_bind(p, x, xv);
    cr_assert_eq(loom_run(p), LOOM_OK);
    float serial = loom_plan_output(p, y)[0];
    omp_set_num_threads(4);
    for (int rep = 0; rep < 3; rep++) {
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        cr_assert_gt(loom_plan_get_stats(p).side_by_side, 0, "the wide ready sets ran on four threads");
        cr_assert_float_eq(loom_plan_output(p, y)[0], serial, 1e-3);
    }
    omp_set_num_threads(saved);
    free(xv);
    loom_plan_free(p);
    loom_graph_free(g);
}

/* A run with two threads goes as a team or alone (the calling thread runs
 * every share of a split kernel in turn, cut as the team cuts them): the
 * same results to the bit, whichever way — so that AUTO, which picks the
 * faster way by timing (alone when another program keeps a core busy), can
 * switch between them without changing a training run. An LSTM step,
 * forward and backward, big enough that GEMMs, sums and elementwise kernels
 * split; a loss (a team sum) among the outputs. */
Test(runtime, alone_is_the_team_to_the_bit)
{
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 64, .hidden_size = 256});
    loom_tensor x = loom_input(g, "x", loom_shape3(12, 32, 64));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){0});
    loom_tensor loss = loom_sum_all(g, loom_mul(g, o.output, o.output));
    int n = loom_graph_params(g, NULL, 0);
    loom_tensor outs[8];
    outs[0] = loss;
    loom_tensor params[4];
    loom_graph_params(g, params, n);
    cr_assert_eq(loom_backward(g, loss, params, n, outs + 1), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 5);
    float *xv = rnd_buf(12 * 32 * 64, -1, 1);
    float *want[8] = {0};
    static const loom_team_use uses[] = {LOOM_TEAM_TEAM, LOOM_TEAM_ALONE, LOOM_TEAM_AUTO};
    for (unsigned u = 0; u < 3; u++) {
        loom_plan *p = loom_plan_new(g, outs, 1 + n, NULL);
        cr_assert(p, "%s", loom_graph_error(g));
        loom_plan_set_team(p, uses[u]);
        loom_store_bind(st, p);
        loom_bind(p, x, xv);
        for (int run = 0; run < (uses[u] == LOOM_TEAM_AUTO ? 6 : 2); run++) {
            cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
            if (uses[u] != LOOM_TEAM_AUTO) cr_assert_eq(loom_plan_ran_alone(p), uses[u] == LOOM_TEAM_ALONE);
            else if (run == 2) cr_assert(loom_plan_ran_alone(p), "AUTO tries alone on its third run");
            for (int i = 0; i < 1 + n; i++) {
                int64_t k = loom_tensor_numel(g, outs[i]);
                const float *v = loom_plan_output(p, outs[i]);
                if (!want[i]) {
                    want[i] = malloc((size_t)k * sizeof(float));
                    memcpy(want[i], v, (size_t)k * sizeof(float));
                    continue;
                }
                cr_assert(!memcmp(v, want[i], (size_t)k * sizeof(float)), "%s, run %d: output %d differs from the team's",
                          uses[u] == LOOM_TEAM_TEAM ? "team" : uses[u] == LOOM_TEAM_ALONE ? "alone" : "auto", run, i);
            }
        }
        loom_plan_free(p);
    }
    for (int i = 0; i < 8; i++) free(want[i]);
    free(xv);
    loom_store_free(st);
    loom_graph_free(g);
    omp_set_num_threads(saved);
}

Test(runtime, big_kernels_split_across_threads)
{
    loom_graph *g = loom_graph_new();
    const int n = 1 << 20;
    loom_tensor x = loom_input(g, "x", loom_shape2(1024, 1024));
    loom_tensor y = loom_sum(g, loom_mul(g, loom_sigmoid(g, x), x), 0, false);
    float *xv = rnd_buf(n, -3, 3);
    float *v = eval(g, y, (loom_binding[]){{x, xv}}, 1);
    for (int j = 0; j < 1024; j += 111) {
        double want = 0;
        for (int i = 0; i < 1024; i++) {
            float a = xv[i * 1024 + j];
            want += a / (1 + exp(-a));
        }
        cr_assert_float_eq(v[j], want, 1e-3 * (1 + fabs(want)));
    }
    free(v), free(xv);
    loom_graph_free(g);
}

/* ---- plan rewrites: same results, fewer buffers ---- */

/* Loss and every gradient of a 2-layer bidirectional recurrent stack with
 * variable lengths, planned with and without rewrites. */
static void rewrites_match(const loom_cell_def *cell)
{
    enum { T = 6, B = 3, I = 5, H = 7 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = I, .hidden_size = H, .layers = 2,
                                                         .bidirectional = true}), LOOM_OK);
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I)), len = loom_input_i32(g, "len", loom_shape1(B));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.lengths = len});
    loom_tensor loss = loom_sum_all(g, loom_tanh(g, o.output)), wrt[2 * 2 * LOOM_CELL_MAX_PARAMS + 1], outs[64];
    int n = 0;
    for (int l = 0; l < 2; l++)
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < rnn.n_params; i++) wrt[n++] = rnn.param[l][d][i];
    wrt[n++] = x;
    outs[0] = loss;
    cr_assert_eq(loom_backward(g, loss, wrt, n, outs + 1), LOOM_OK, "%s", loom_graph_error(g));
    loom_plan *p[2] = {loom_plan_new(g, outs, n + 1, NULL),
                       loom_plan_new(g, outs, n + 1, &(loom_plan_opts){.no_rewrites = LOOM_REWRITE_ALL})};
    cr_assert(p[0] && p[1], "%s", loom_graph_error(g));
    float *vals[64];
    int32_t lens[B] = {T, 2, 5};
    for (int i = 0; i < n; i++) vals[i] = rnd_buf(loom_tensor_numel(g, wrt[i]), -0.5f, 0.5f);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < n; i++) loom_bind(p[k], wrt[i], vals[i]);
        loom_bind(p[k], len, lens);
        cr_assert_eq(loom_run(p[k]), LOOM_OK, "%s", loom_plan_error(p[k]));
    }
    loom_plan_stats on = loom_plan_get_stats(p[0]), off = loom_plan_get_stats(p[1]);
    cr_assert_eq(on.rewrites, LOOM_REWRITE_ALL);
    cr_assert_eq(off.rewrites, 0);
    cr_assert_eq(off.folded, 0);
    /* every weight-gradient term of every step folds into its sum */
    cr_assert_geq(on.folded, 2 * 2 * 2 * (T - 1), "%s: %d terms folded", cell->name, on.folded);
    cr_assert_eq(on.nodes + on.folded + on.batched + on.fused, off.nodes);
    /* the gate arithmetic of every step, forward and backward, runs fused;
     * some of it never leaves the fused kernels */
    cr_assert_geq(on.fused, 2 * 2 * 2 * (T - 1), "%s: %d fused", cell->name, on.fused);
    cr_assert_geq(on.fused_temps, 2 * 2 * (T - 1), "%s: %d fused temps", cell->name, on.fused_temps);
    cr_assert_eq(off.fused, 0);
    /* every step's input projection joins its layer and direction's batch, run as one GEMM */
    cr_assert_geq(on.batched, 2 * 2 * (T - 1), "%s: %d batched", cell->name, on.batched);
    cr_assert_eq(on.batched_run, on.batched, "%s: %d of %d batched ran as one GEMM", cell->name, on.batched_run,
                 on.batched);
    cr_assert_eq(off.batched, 0);
    /* the weight-gradient terms' operands lie end to end: one GEMM per weight
     * (the shared zero initial state may break one run per weight) */
    cr_assert_geq(on.stacked, 2 * 2 * 2 * (T - 2), "%s: %d of %d folded terms stacked", cell->name, on.stacked,
                  on.folded);
    cr_assert_eq(off.stacked, 0);
    cr_assert_lt(on.arena_bytes, off.arena_bytes, "%s: arena %zu vs %zu", cell->name, on.arena_bytes, off.arena_bytes);
    for (int i = 0; i <= n; i++) {
        const float *a = loom_plan_output(p[0], outs[i]), *b = loom_plan_output(p[1], outs[i]);
        for (int64_t j = 0; j < loom_tensor_numel(g, outs[i]); j++)
            cr_assert(fabsf(a[j] - b[j]) <= 1e-5f * (1 + fabsf(b[j])), "%s: output %d [%lld]: %g with rewrites, %g without",
                      cell->name, i, (long long)j, a[j], b[j]);
    }
    for (int i = 0; i < n; i++) free(vals[i]);
    loom_plan_free(p[0]), loom_plan_free(p[1]);
    loom_graph_free(g);
}

Test(rewrites, match_the_plain_plan_for_every_cell)
{
    unsetenv("LOOM_REWRITES");
    cr_assert_eq(loom_cell_register(&mgu_cell), LOOM_OK);
    int n;
    const loom_cell_def *const *cells = loom_cells(&n);
    for (int i = 0; i < n; i++) rewrites_match(cells[i]);
}

/* LOOM_REWRITES chooses before the plan options; a bad value is an error. */
Test(rewrites, environment_variable)
{
    loom_graph *g = loom_graph_new();
    loom_tensor w = loom_param(g, "w", loom_shape2(4, 4)), x = loom_input(g, "x", loom_shape2(2, 4)), gw;
    loom_tensor loss = loom_sum_all(g, loom_tanh(g, loom_matmul(g, loom_tanh(g, loom_matmul(g, x, w, false, true)), w,
                                                                false, true)));
    cr_assert_eq(loom_backward(g, loss, &w, 1, &gw), LOOM_OK);
    const struct {
        const char *env;
        unsigned no, want;
    } cases[] = {{"none", 0, 0}, {"all", 0, LOOM_REWRITE_ALL}, {"accumulate", 0, LOOM_REWRITE_ACCUMULATE},
                 {"accumulate", LOOM_REWRITE_ACCUMULATE, 0}, {"batch,accumulate", LOOM_REWRITE_BATCH, LOOM_REWRITE_ACCUMULATE},
                 {NULL, 0, LOOM_REWRITE_ALL}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (cases[i].env) setenv("LOOM_REWRITES", cases[i].env, 1);
        else unsetenv("LOOM_REWRITES");
        loom_plan *p = loom_plan_new(g, &gw, 1, &(loom_plan_opts){.no_rewrites = cases[i].no});
        cr_assert(p, "%s", loom_graph_error(g));
        loom_plan_stats s = loom_plan_get_stats(p);
        cr_assert_eq(s.rewrites, cases[i].want, "LOOM_REWRITES=%s", cases[i].env ? cases[i].env : "(unset)");
        cr_assert_eq(s.folded, cases[i].want & LOOM_REWRITE_ACCUMULATE ? 2 : 0, "both uses of w fold into its gradient's sum");
        loom_plan_free(p);
    }
    setenv("LOOM_REWRITES", "accumulate,fusion", 1);
    cr_assert_null(loom_plan_new(g, &gw, 1, NULL));
    cr_assert(strstr(loom_graph_error(g), "LOOM_REWRITES='accumulate,fusion': unknown rewrite 'fusion'"), "%s",
              loom_graph_error(g));
    unsetenv("LOOM_REWRITES");
    loom_graph_free(g);
}

/* ---- GEMM: CBLAS (when built with it) and the portable kernel agree ---- */

static void naive(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                  int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = (float)(alpha * s + beta * c[i * ldc + j]);
        }
}

Test(gemm, blas_and_portable_kernel_agree)
{
    int sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 64, 64}, {130, 70, 90}, {20, 700, 800}, {32, 300, 500}};
    for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
            int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1; /* padded leading dims */
            float *a = rnd_buf((ta ? k : m) * lda, -1, 1), *b = rnd_buf((tb ? n : k) * ldb, -1, 1);
            float *c0 = rnd_buf(m * ldc, -1, 1);
            float *c1 = malloc((size_t)(m * ldc) * sizeof(float)), *c2 = malloc((size_t)(m * ldc) * sizeof(float));
            memcpy(c1, c0, (size_t)(m * ldc) * sizeof(float));
            memcpy(c2, c0, (size_t)(m * ldc) * sizeof(float));
            naive(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c0, ldc);
            loom_gemm(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c1, ldc);
            loom_gemm_ref(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c2, ldc);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    cr_assert_float_eq(c1[i * ldc + j], c0[i * ldc + j], 1e-4, "dispatching gemm %dx%dx%d t%d", m, n, k, t);
                    cr_assert_float_eq(c2[i * ldc + j], c0[i * ldc + j], 1e-4, "portable gemm %dx%dx%d t%d", m, n, k, t);
                }
            free(a), free(b), free(c0), free(c1), free(c2);
        }
}

Test(gemm, beta_zero_ignores_garbage_in_c)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {NAN, NAN, INFINITY, NAN};
    loom_gemm_ref(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2);
    assert_close(c, a, 4, 0);
    float d[4] = {NAN, NAN, NAN, NAN};
    loom_gemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, d, 2);
    assert_close(d, a, 4, 0);
}

/* A language model's loss and gradients at 1 and 2 threads agree within
 * 1e-5 (sizes past the kernels' parallel thresholds), and two runs at one
 * thread count are bit-identical. */
Test(rewrites, thread_counts_agree_and_runs_repeat)
{
    enum { T = 3, B = 64, H = 600, V = 13 };
    grad_plan m;
    grad_plan_make(&m, &(loom_lm_opts){.cell = &loom_cell_lstm, .vocab = V, .hidden = H, .layers = 1, .steps = T, .batch = B}, 7,
                   NULL, NULL);
    int32_t x[T * B], y[T * B];
    for (int i = 0; i < T * B; i++) x[i] = (i * 7) % V, y[i] = (i * 5 + 3) % V;
    float *zero[2] = {calloc(B * H, sizeof(float)), calloc(B * H, sizeof(float))};
    loom_bind(m.p, m.lm.tokens, x), loom_bind(m.p, m.lm.targets, y);
    loom_bind(m.p, m.lm.init[0], zero[0]), loom_bind(m.p, m.lm.init[1], zero[1]);
    int64_t total = 0;
    float *r[3];
    int saved = omp_get_max_threads(), threads[3] = {1, 2, 2};
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(threads[k]);
        cr_assert_eq(loom_run(m.p), LOOM_OK, "%s", loom_plan_error(m.p));
        r[k] = grad_plan_values(&m, &total);
    }
    omp_set_num_threads(saved);
    for (int64_t j = 0; j < total; j++)
        cr_assert(fabsf(r[0][j] - r[1][j]) <= 1e-5f * (1 + fabsf(r[0][j])), "[%lld]: %.9g at 1 thread, %.9g at 2",
                  (long long)j, r[0][j], r[1][j]);
    cr_assert(!memcmp(r[1], r[2], (size_t)total * sizeof(float)), "two runs at 2 threads differ");
    for (int k = 0; k < 3; k++) free(r[k]);
    free(zero[0]), free(zero[1]);
    grad_plan_free(&m);
}

/* Two batches that would wait on each other — X = {A·W1, D·W1} needs
 * D = tanh(C·W2) from Y, Y = {B·W2, C·W2} needs B = tanh(A·W1) from X — make
 * the plan run without batches, with the same values. */
Test(rewrites, batches_waiting_on_each_other_are_dropped)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape2(3, 4)), c = loom_input(g, "c", loom_shape2(3, 4));
    loom_tensor w1 = loom_param(g, "w1", loom_shape2(4, 4)), w2 = loom_param(g, "w2", loom_shape2(4, 4));
    loom_tensor b = loom_tanh(g, loom_matmul(g, a, w1, false, false));
    loom_tensor d = loom_tanh(g, loom_matmul(g, c, w2, false, false));
    loom_tensor y = loom_sum_all(g, loom_add(g, loom_matmul(g, b, w2, false, false), loom_matmul(g, d, w1, false, false)));
    float av[12], cv[12], w1v[16], w2v[16];
    for (int i = 0; i < 16; i++) {
        if (i < 12) av[i] = 0.1f * (float)i - 0.5f, cv[i] = 0.3f - 0.05f * (float)i;
        w1v[i] = 0.07f * (float)(i % 5) - 0.1f, w2v[i] = 0.2f - 0.03f * (float)i;
    }
    float got[2];
    for (int k = 0; k < 2; k++) {
        loom_plan *p = loom_plan_new(g, &y, 1, &(loom_plan_opts){.no_rewrites = k ? LOOM_REWRITE_ALL : 0});
        cr_assert(p, "%s", loom_graph_error(g));
        loom_bind(p, a, av), loom_bind(p, c, cv), loom_bind(p, w1, w1v), loom_bind(p, w2, w2v);
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        got[k] = loom_plan_output(p, y)[0];
        cr_assert_eq(loom_plan_get_stats(p).batched, 0);
        loom_plan_free(p);
    }
    cr_assert_float_eq(got[0], got[1], 1e-6);
    loom_graph_free(g);
}

/* Sinking: the decoder's gradient sliced per step is made just before each
 * step's backward, not all at the start of the backward; same values. */
/* A forward-only plan of a 2-layer stack to its final state keeps memory
 * flat in T: the batched input projections are made chunk by chunk just
 * before their steps, each step's values die with the next. */
static size_t inference_arena(const loom_cell_def *cell, int T)
{
    enum { B = 64, I = 8, H = 32 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = I, .hidden_size = H, .layers = 2}),
                 LOOM_OK);
    loom_rnn_out o = loom_rnn_apply(g, &rnn, loom_input(g, "x", loom_shape3(T, B, I)), NULL);
    loom_plan *p = loom_plan_new(g, &o.final[0], 1, &(loom_plan_opts){.eval = true});
    cr_assert(p, "%s", loom_graph_error(g));
    size_t arena = loom_plan_get_stats(p).arena_bytes;
    loom_plan_free(p);
    loom_graph_free(g);
    return arena;
}

Test(rewrites, inference_memory_is_flat_in_T)
{
    unsetenv("LOOM_REWRITES");
    for (int c = 0; c < 3; c++) {
        const loom_cell_def *cell = c == 0 ? &loom_cell_rnn_tanh : c == 1 ? &loom_cell_gru : &loom_cell_lstm;
        size_t short_run = inference_arena(cell, 200), long_run = inference_arena(cell, 1600);
        cr_assert_leq(long_run, short_run + short_run / 4, "%s: arena %zu bytes at T=200, %zu at T=1600", cell->name,
                      short_run, long_run);
    }
}

/* A 1-layer language model with its loss (outs[0]) and the gradients of
 * its n parameters (outs[1..n]), fixed tokens and targets, zero initial
 * states. */
typedef struct {
    loom_graph *g;
    loom_lm lm;
    loom_store *s;
    loom_tensor outs[9];
    int n;
    int32_t *x, *y;
    float *zeros;
} lm_case;

static void lm_case_build(lm_case *c, const loom_cell_def *cell, int T, int B, int H, int V, uint64_t seed)
{
    loom_graph *g = c->g = loom_graph_new();
    cr_assert_eq(loom_lm_build(g, &c->lm, &(loom_lm_opts){.cell = cell, .vocab = V, .hidden = H, .layers = 1, .steps = T,
                                                           .batch = B}), LOOM_OK);
    c->s = loom_store_new(g);
    loom_store_init(c->s, seed);
    c->n = loom_store_count(c->s);
    c->outs[0] = c->lm.loss;
    cr_assert_eq(loom_backward(g, c->lm.loss, loom_store_tensors(c->s), c->n, c->outs + 1), LOOM_OK);
    c->x = malloc((size_t)T * B * sizeof *c->x), c->y = malloc((size_t)T * B * sizeof *c->y);
    c->zeros = calloc((size_t)B * H, sizeof *c->zeros);
    for (int i = 0; i < T * B; i++) c->x[i] = (i * 5) % V, c->y[i] = (i * 7 + 2) % V;
}

/* Binds the parameters, tokens, targets and initial states; runs. */
static void lm_case_run(const lm_case *c, loom_plan *p)
{
    loom_store_bind(c->s, p);
    loom_bind(p, c->lm.tokens, c->x), loom_bind(p, c->lm.targets, c->y);
    for (int i = 0; i < c->lm.rnn.o.cell->n_states; i++) loom_bind(p, c->lm.init[i], c->zeros);
    cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
}

static void lm_case_free(lm_case *c)
{
    free(c->x), free(c->y), free(c->zeros);
    loom_store_free(c->s);
    loom_graph_free(c->g);
}

/* A long sequence's weight gradients run in chunks of steps as their
 * operands are ready (pieces): the same loss and gradients as the plain
 * plan, less memory than without them (the accumulate rewrite off). */
Test(rewrites, weight_gradients_run_in_pieces)
{
    unsetenv("LOOM_REWRITES");
    lm_case c;
    lm_case_build(&c, &loom_cell_lstm, 400, 4, 24, 9, 5);
    loom_graph *g = c.g;
    int n = c.n;
    loom_tensor *outs = c.outs;
    loom_plan *p[2] = {loom_plan_new(g, outs, n + 1, NULL),
                       loom_plan_new(g, outs, n + 1, &(loom_plan_opts){.no_rewrites = LOOM_REWRITE_ALL})};
    for (int k = 0; k < 2; k++) lm_case_run(&c, p[k]);
    loom_plan_stats on = loom_plan_get_stats(p[0]);
    cr_assert_geq(on.pieces, 2, "%d pieces", on.pieces);
    for (int i = 0; i <= n; i++) {
        const float *a = loom_plan_output(p[0], outs[i]), *b = loom_plan_output(p[1], outs[i]);
        for (int64_t j = 0; j < loom_tensor_numel(g, outs[i]); j++)
            cr_assert(fabsf(a[j] - b[j]) <= 1e-5f * (1 + fabsf(b[j])), "output %d [%lld]: %g in pieces, %g plain", i,
                      (long long)j, a[j], b[j]);
    }
    loom_plan *whole = loom_plan_new(g, outs, n + 1, &(loom_plan_opts){.no_rewrites = LOOM_REWRITE_ACCUMULATE});
    cr_assert_eq(loom_plan_get_stats(whole).pieces, 0);
    cr_assert_lt(on.arena_bytes, loom_plan_get_stats(whole).arena_bytes);
    loom_plan_free(whole), loom_plan_free(p[0]), loom_plan_free(p[1]);
    lm_case_free(&c);
}

Test(rewrites, sinking_lowers_the_peak)
{
    unsetenv("LOOM_REWRITES"); /* these count what the rewrites do */
    lm_case c;
    lm_case_build(&c, &loom_cell_gru, 200, 4, 16, 11, 3);
    float loss[2];
    size_t arena[2];
    for (int k = 0; k < 2; k++) {
        loom_plan *p = loom_plan_new(c.g, c.outs, c.n + 1, &(loom_plan_opts){.no_rewrites = k ? LOOM_REWRITE_SINK : 0});
        lm_case_run(&c, p);
        loss[k] = loom_plan_output(p, c.lm.loss)[0];
        arena[k] = loom_plan_get_stats(p).arena_bytes;
        loom_plan_free(p);
    }
    cr_assert_eq(loss[0], loss[1], "the same kernels on the same values");
    cr_assert_lt(arena[0], arena[1], "sunk %zu bytes, not sunk %zu", arena[0], arena[1]);
    lm_case_free(&c);
}

/* An LSTM of T steps (input 2, hidden 3, batch 2) with the gradients of
 * its four parameters (wrt) of Σ y²; x its input. */
static loom_graph *lstm_with_grads(int T, loom_tensor *x, loom_tensor *wrt, loom_tensor *grads)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 2, .hidden_size = 3});
    *x = loom_input(g, "x", loom_shape3(T, 2, 2));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, *x, NULL);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, o.output, o.output));
    for (int i = 0; i < 4; i++) wrt[i] = rnn.param[0][0][i];
    cr_assert_eq(loom_backward(g, loss, wrt, 4, grads), LOOM_OK);
    return g;
}

/* loom_plan_ranks: when each node gets its value. Every computed node comes
 * no earlier than the computed nodes it reads (one kernel call may compute
 * both: a fused group, a sum's terms), sources have none, and BPTT visits
 * the steps last to first: the gradient of step t's state is computed
 * after that of step t + 1. */
Test(runtime, plan_ranks_follow_the_dataflow_and_bptt)
{
    enum { T = 5 };
    loom_tensor x, wrt[4], grads[4];
    loom_graph *g = lstm_with_grads(T, &x, wrt, grads);
    for (int rewrites = 0; rewrites < 2; rewrites++) {
        loom_plan *p = loom_plan_new(g, grads, 4, &(loom_plan_opts){.no_rewrites = rewrites ? 0 : LOOM_REWRITE_ALL});
        cr_assert(p, "%s", loom_graph_error(g));
        int32_t n = loom_graph_size(g), *rank = malloc((size_t)n * sizeof *rank);
        cr_assert_eq(loom_plan_ranks(p, rank, n - 1), -1, "too small an array is refused");
        int32_t calls = loom_plan_ranks(p, rank, n);
        cr_assert_gt(calls, 0);
        int computed = 0, state_grad[T];
        for (int t = 0; t < T; t++) state_grad[t] = -1;
        for (int32_t i = 0; i < n; i++) {
            const loom_node *v = loom_graph_node(g, loom_at(i));
            if (loom_op(v->op)->flags & OPF_SOURCE) cr_assert_eq(rank[i], -1, "a source (input, parameter, constant) is not computed");
            if (rank[i] < 0) continue;
            computed++;
            cr_assert_lt(rank[i], calls);
            for (int j = 0; j < v->n_in; j++) {
                int32_t u = loom_index(loom_node_input(g, loom_at(i), j));
                cr_assert(rank[u] <= rank[i], "node %d (rank %d) reads node %d (rank %d)", i, rank[i], u, rank[u]);
            }
            if (v->tags.role == LOOM_ROLE_BACKWARD && v->tags.state == 1 && v->tags.step >= 0 && rank[i] > state_grad[v->tags.step])
                state_grad[v->tags.step] = rank[i];
        }
        cr_assert_gt(computed, 50);
        for (int t = 0; t + 1 < T; t++)
            if (state_grad[t] >= 0 && state_grad[t + 1] >= 0)
                cr_assert_gt(state_grad[t], state_grad[t + 1], "∂L/∂h at t = %d after t = %d", t + 1, t + 2);
        cr_assert(state_grad[0] >= 0, "the state gradients are tagged and computed");
        free(rank);
        loom_plan_free(p);
    }
    loom_graph_free(g);
}

/* loom_plan_watch: every watched output is reported once per run, in the
 * order the call gave, holding its final value already — with one thread,
 * a team and alone, with and without rewrites; between ready sets the
 * caller gets its turns (−1); a tensor that is not an output is refused. */
typedef struct {
    loom_plan *p;
    const loom_tensor *ts;
    int calls[8], order[8], n_order, ticks;
    float *seen[8]; /* each output's value when it was reported */
    loom_graph *g;
} watch_log;

static void on_ready(void *ctx, int i)
{
    watch_log *w = ctx;
    if (i < 0) {
        w->ticks++;
        return;
    }
    w->calls[i]++, w->order[w->n_order++] = i;
    int64_t n = loom_tensor_numel(w->g, w->ts[i]);
    w->seen[i] = realloc(w->seen[i], (size_t)n * sizeof(float));
    memcpy(w->seen[i], loom_plan_output(w->p, w->ts[i]), (size_t)n * sizeof(float));
}

Test(runtime, watched_outputs_are_reported_when_final)
{
    enum { T = 6 };
    loom_tensor x, wrt[4], grads[4];
    loom_graph *g = lstm_with_grads(T, &x, wrt, grads);
    float xs[T * 4];
    for (int i = 0; i < T * 4; i++) xs[i] = sinf((float)i);
    float *ws[4];
    for (int i = 0; i < 4; i++) {
        int64_t n = loom_tensor_numel(g, wrt[i]);
        ws[i] = malloc((size_t)n * sizeof(float));
        for (int64_t k = 0; k < n; k++) ws[i][k] = 0.3f * cosf((float)(k + 7 * i));
    }
    int max_threads = omp_get_max_threads();
    for (int rewrites = 0; rewrites < 2; rewrites++)
        for (int way = 0; way < 3; way++) { /* one thread, the team, alone */
            omp_set_num_threads(way ? 2 : 1);
            loom_plan *p = loom_plan_new(g, grads, 4, &(loom_plan_opts){.no_rewrites = rewrites ? 0 : LOOM_REWRITE_ALL});
            cr_assert(p, "%s", loom_graph_error(g));
            loom_plan_set_team(p, way == 2 ? LOOM_TEAM_ALONE : LOOM_TEAM_TEAM);
            loom_bind(p, x, xs);
            for (int i = 0; i < 4; i++) loom_bind(p, wrt[i], ws[i]);
            cr_assert_eq(loom_plan_watch(p, &x, 1, on_ready, NULL, NULL), LOOM_ERR_ARG, "an input is not an output");
            watch_log w = {.p = p, .ts = grads, .g = g};
            int order[4];
            cr_assert_eq(loom_plan_watch(p, grads, 4, on_ready, &w, order), LOOM_OK, "%s", loom_plan_error(p));
            for (int run = 0; run < 2; run++) {
                w.n_order = 0;
                cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
                cr_assert_eq(w.n_order, 4);
                for (int i = 0; i < 4; i++) {
                    cr_assert_eq(w.calls[i], run + 1, "output %d reported once a run", i);
                    cr_assert_eq(w.order[i], order[i], "reported in the order given");
                    cr_assert(!memcmp(w.seen[i], loom_plan_output(p, grads[i]), (size_t)loom_tensor_numel(g, grads[i]) * sizeof(float)),
                              "output %d was final when reported", i);
                }
            }
            cr_assert_gt(w.ticks, 2 * T, "turns between ready sets");
            cr_assert_eq(loom_plan_watch(p, NULL, 0, NULL, NULL, NULL), LOOM_OK);
            int before = w.n_order;
            cr_assert_eq(loom_run(p), LOOM_OK);
            cr_assert_eq(w.n_order, before, "no more reports once watching stopped");
            for (int i = 0; i < 4; i++) free(w.seen[i]);
            loom_plan_free(p);
        }
    omp_set_num_threads(max_threads);
    for (int i = 0; i < 4; i++) free(ws[i]);
    loom_graph_free(g);
}

/* An output that a later kernel still reads is reported after that kernel:
 * the caller may then write it (the gradients' exchange writes the mean
 * into it while the run goes on). */
typedef struct {
    loom_plan *p;
    loom_tensor y, z;
    float z_seen[64];
    int reported_y;
} reader_log;

static void on_y(void *ctx, int i)
{
    reader_log *w = ctx;
    if (i != 0) return;
    w->reported_y++;
    memcpy(w->z_seen, loom_plan_output(w->p, w->z), sizeof w->z_seen);
}

Test(runtime, watched_output_is_reported_after_its_last_reader)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(8, 8));
    loom_tensor y = loom_tanh(g, x), a = loom_sigmoid(g, x);
    for (int k = 0; k < 6; k++) a = loom_matmul(g, a, a, false, false); /* a chain of later ready sets */
    loom_tensor z = loom_mul(g, a, y);                      /* reads y last */
    loom_tensor outs[2] = {y, z};
    float xs[64];
    for (int i = 0; i < 64; i++) xs[i] = 0.1f * sinf((float)i);
    for (int rewrites = 0; rewrites < 2; rewrites++) {
        loom_plan *p = loom_plan_new(g, outs, 2, &(loom_plan_opts){.no_rewrites = rewrites ? 0 : LOOM_REWRITE_ALL});
        cr_assert(p, "%s", loom_graph_error(g));
        loom_bind(p, x, xs);
        reader_log w = {.p = p, .y = y, .z = z};
        cr_assert_eq(loom_plan_watch(p, outs, 1, on_y, &w, NULL), LOOM_OK);
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        cr_assert_eq(w.reported_y, 1);
        cr_assert(!memcmp(w.z_seen, loom_plan_output(p, z), sizeof w.z_seen), "y was reported before z, its last reader, ran");
        loom_plan_free(p);
    }
    loom_graph_free(g);
}

/* A plan may be asked for any nodes as outputs — every node of an unrolled
 * LSTM with its gradients, intermediate ones a rewrite would fuse, fold
 * or batch included — and computes each as the plain plan does. */
Test(runtime, every_node_an_output)
{
    enum { T = 4 };
    loom_tensor x, wrt[4], grads[4];
    loom_graph *g = lstm_with_grads(T, &x, wrt, grads);
    int32_t n = loom_graph_size(g), n_out = 0;
    loom_tensor *out = malloc((size_t)n * sizeof *out);
    for (int32_t i = 0; i < n; i++) {
        const loom_node *v = loom_graph_node(g, loom_at(i));
        if (!(loom_op(v->op)->flags & OPF_SOURCE) && v->dtype == LOOM_F32) out[n_out++] = loom_at(i);
    }
    float xv[T * 2 * 2], w[4][48];
    for (int i = 0; i < T * 4; i++) xv[i] = rnd(-1, 1);
    loom_binding b[5] = {{x, xv}};
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 48; k++) w[i][k] = rnd(-0.5f, 0.5f);
        b[1 + i] = (loom_binding){wrt[i], w[i]};
    }
    loom_plan *plain = loom_plan_new(g, out, n_out, &(loom_plan_opts){.no_rewrites = LOOM_REWRITE_ALL});
    loom_plan *rewritten = loom_plan_new(g, out, n_out, NULL);
    cr_assert(plain && rewritten, "%s", loom_graph_error(g));
    cr_assert_eq(loom_bind_all(plain, b, 5), LOOM_OK);
    cr_assert_eq(loom_bind_all(rewritten, b, 5), LOOM_OK);
    cr_assert_eq(loom_run(plain), LOOM_OK, "%s", loom_plan_error(plain));
    cr_assert_eq(loom_run(rewritten), LOOM_OK, "%s", loom_plan_error(rewritten));
    for (int k = 0; k < n_out; k++) {
        const float *a = loom_plan_output(plain, out[k]), *c = loom_plan_output(rewritten, out[k]);
        cr_assert(a && c);
        for (int64_t e = 0; e < loom_tensor_numel(g, out[k]); e++)
            cr_assert(fabsf(a[e] - c[e]) <= 1e-5f * (1 + fabsf(a[e])), "node %d element %lld: %g vs %g", loom_index(out[k]),
                      (long long)e, a[e], c[e]);
    }
    loom_plan_free(plain), loom_plan_free(rewritten);
    free(out);
    loom_graph_free(g);
}

/* The FP32 peak is measured with the vector unit the CPU reports: a
 * positive, finite figure and the unit's name. */
Test(runtime, fp32_peak_is_measured)
{
    const char *isa = NULL;
    double g = loom_fp32_peak(1, 0.02, &isa);
    cr_assert(isfinite(g) && g > 0.1, "%g GFLOP/s", g);
    cr_assert(isa && (!strcmp(isa, "AVX-512F") || !strcmp(isa, "AVX2+FMA") || !strcmp(isa, "scalar")), "%s", isa ? isa : "(null)");
}

/* A cross-entropy over many logits splits across the team (its one output
 * element is no measure of its work): value and gradient as one thread
 * computes them, and as the double path does. */
Test(runtime, cross_entropy_splits_and_agrees)
{
    enum { R = 96, C = 3001 };
    loom_graph *g = loom_graph_new();
    loom_tensor w = loom_param(g, "w", loom_shape2(R, C)), t = loom_input_i32(g, "t", loom_shape1(R));
    loom_tensor loss = loom_cross_entropy(g, loom_mul(g, w, w), t, LOOM_INVALID), gw;
    cr_assert_eq(loom_backward(g, loss, &w, 1, &gw), LOOM_OK, "%s", loom_graph_error(g));
    float *wv = rnd_buf((int64_t)R * C, -3, 3), *got[2][2];
    int32_t tv[R];
    for (int r = 0; r < R; r++) tv[r] = (r * 977) % C;
    int threads = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 2 : 1);
        loom_plan *p = loom_plan_new(g, (loom_tensor[]){loss, gw}, 2, NULL);
        cr_assert(p, "%s", loom_graph_error(g));
        loom_bind(p, w, wv), loom_bind(p, t, tv);
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        for (int o = 0; o < 2; o++) {
            int64_t n = o ? (int64_t)R * C : 1;
            got[k][o] = malloc((size_t)n * sizeof(float));
            memcpy(got[k][o], loom_plan_output(p, o ? gw : loss), (size_t)n * sizeof(float));
        }
        loom_plan_free(p);
    }
    omp_set_num_threads(threads);
    double want = 0;
    for (int r = 0; r < R; r++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < C; j++) mx = fmax(mx, (double)wv[r * C + j] * wv[r * C + j]);
        for (int j = 0; j < C; j++) s += exp((double)wv[r * C + j] * wv[r * C + j] - mx);
        double lse = mx + log(s);
        want += lse - (double)wv[r * C + tv[r]] * wv[r * C + tv[r]];
        for (int j = 0; j < C; j += 7) { /* ∂/∂w = 2w (softmax − onehot) / R */
            double x = (double)wv[r * C + j] * wv[r * C + j];
            double gr = 2 * wv[r * C + j] * (exp(x - lse) - (j == tv[r])) / R;
            cr_assert(fabs(got[1][1][r * C + j] - gr) <= 1e-6 + 1e-5 * fabs(gr), "[%d,%d]: %g, want %g", r, j,
                      got[1][1][r * C + j], gr);
        }
    }
    want /= R;
    cr_assert(fabs(got[1][0][0] - want) <= 1e-5 * fabs(want), "%g, want %g", got[1][0][0], want);
    cr_assert(fabs(got[0][0][0] - got[1][0][0]) <= 1e-6f * fabsf(got[1][0][0]), "%g on 1 thread, %g on 2", got[0][0][0],
              got[1][0][0]);
    assert_close(got[1][1], got[0][1], (int64_t)R * C, 1e-7f);
    for (int k = 0; k < 2; k++) free(got[k][0]), free(got[k][1]);
    free(wv);
    loom_graph_free(g);
}

/* The profile: every kernel call counted by kind, thread 0's time within
 * the runs' wall time; switched off it stops counting, on again it starts
 * from zero. Only matrix products count as GEMM flops. */
Test(runtime, profile_counts_kernels_by_kind)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(64, 32)), w = loom_param(g, "w", loom_shape2(32, 48));
    loom_tensor t = loom_input_i32(g, "t", loom_shape1(64));
    loom_tensor y = loom_layer_norm(g, loom_matmul(g, x, w, false, false), LOOM_INVALID, LOOM_INVALID, 1e-5f);
    loom_tensor loss = loom_cross_entropy(g, y, t, LOOM_INVALID);
    loom_plan *p = loom_plan_new(g, &loss, 1, NULL);
    cr_assert(p, "%s", loom_graph_error(g));
    cr_assert_eq(loom_plan_get_stats(p).matmul_flops, 2 * 64 * 32 * 48, "layer norm is no GEMM");
    float *xv = rnd_buf(64 * 32, -1, 1), *wv = rnd_buf(32 * 48, -1, 1);
    int32_t tv[64] = {0};
    loom_bind(p, x, xv), loom_bind(p, w, wv), loom_bind(p, t, tv);
    loom_profile_row rows[8];
    double wall;
    int64_t runs;
    cr_assert_eq(loom_plan_profile(p, rows, 8, &wall, &runs), 0);
    loom_plan_set_profile(p, true);
    for (int i = 0; i < 3; i++) cr_assert_eq(loom_run(p), LOOM_OK);
    int n = loom_plan_profile(p, rows, 8, &wall, &runs);
    cr_assert_eq(runs, 3);
    double busy = 0;
    bool seen[3] = {false};
    for (int i = 0; i < n; i++) {
        if (i) cr_assert_geq(rows[i - 1].seconds, rows[i].seconds, "slowest first");
        busy += rows[i].seconds;
        const char *names[3] = {"matmul", "layer_norm", "cross_entropy"};
        for (int k = 0; k < 3; k++)
            if (!strcmp(rows[i].kind, names[k])) {
                seen[k] = true;
                cr_assert_eq(rows[i].calls, 3, "%s", names[k]);
            }
    }
    cr_assert(seen[0] && seen[1] && seen[2]);
    cr_assert(busy > 0 && busy <= wall, "%g s in kernels of %g s", busy, wall);
    cr_assert_eq(loom_plan_profile(p, rows, 1, NULL, NULL), n, "the count of kinds, beyond the rows asked for");
    loom_plan_set_profile(p, false);
    cr_assert_eq(loom_run(p), LOOM_OK);
    loom_plan_profile(p, rows, 8, NULL, &runs);
    cr_assert_eq(runs, 3);
    loom_plan_set_profile(p, true);
    cr_assert_eq(loom_plan_profile(p, rows, 8, NULL, &runs), 0);
    cr_assert_eq(runs, 0);
    free(xv), free(wv);
    loom_plan_free(p);
    loom_graph_free(g);
}

/* A recurrent product h·Wᵀ of few rows reads a copy of W packed at each
 * run's start (with oneDNN): the same values as the product through CBLAS
 * (the weight through a computed node, which gets no copy), and the copy
 * remade when the weight changes between runs. */
Test(gemm, few_row_products_read_a_packed_weight)
{
    enum { T = 4, B = 8, H = 48 };
    loom_graph *g = loom_graph_new();
    loom_tensor w = loom_param(g, "w", loom_shape2(H, H)), h0 = loom_input(g, "h0", loom_shape2(B, H));
    loom_tensor w2 = loom_mul(g, w, loom_fill(g, loom_shape2(H, H), 1.0f)); /* the same values, computed */
    loom_tensor h = h0, k = h0;
    for (int t = 0; t < T; t++) {
        h = loom_tanh(g, loom_matmul(g, h, w, false, true));
        k = loom_tanh(g, loom_matmul(g, k, w2, false, true));
    }
    loom_tensor outs[2] = {h, k};
    loom_plan *p = loom_plan_new(g, outs, 2, NULL);
    cr_assert(p, "%s", loom_graph_error(g));
    float *wv = rnd_buf(H * H, -0.3f, 0.3f), *hv = rnd_buf(B * H, -1, 1);
    loom_bind(p, w, wv), loom_bind(p, h0, hv);
    for (int run = 0; run < 2; run++) {
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        assert_close(loom_plan_output(p, h), loom_plan_output(p, k), B * H, 1e-6f);
        cr_assert_eq(loom_plan_get_stats(p).packed, loom_dnnl_enabled() ? 1 : 0);
        for (int i = 0; i < H * H; i++) wv[i] = -wv[i] * 0.5f; /* an update between runs */
    }
    loom_plan_free(p);
    free(wv), free(hv);
    loom_graph_free(g);
}
