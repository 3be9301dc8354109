/* Recomputation (loom_backward_opts.recompute): the same gradients as
 * keeping every value, for every cell, stacked and bidirectional, with the
 * random draws of dropout and zoneout; less memory on a long sequence; a
 * bad segment length refused. */
#include "helpers.h"

#include <dirent.h>

/* A run's loss and gradients, one array of all of them. */
typedef struct {
    float *v;
    int64_t n;
    int copies; /* recomputed nodes in the graph */
    size_t arena, kept;
} run_result;

static void result_free(run_result *r) { free(r->v); }

static int count_copies(const loom_graph *g)
{
    int k = 0;
    for (int32_t i = 0; i < loom_graph_size(g); i++) k += loom_graph_node(g, loom_at(i))->tags.role == LOOM_ROLE_RECOMPUTE;
    return k;
}

/* Loss and gradients of a language model (tokens and targets a fixed
 * pattern), its backward pass built with `recompute`. */
static run_result lm_run(const loom_lm_opts *o, int32_t recompute)
{
    grad_plan m;
    grad_plan_make(&m, o, 11, &(loom_backward_opts){.recompute = recompute}, &(loom_plan_opts){.seed = 5});
    int T = o->steps, B = o->batch;
    int32_t *x = malloc((size_t)T * B * sizeof *x), *y = malloc((size_t)T * B * sizeof *y);
    for (int i = 0; i < T * B; i++) x[i] = (i * 5 + i / 7) % o->vocab, y[i] = (i * 3 + 1) % o->vocab;
    loom_bind(m.p, m.lm.tokens, x), loom_bind(m.p, m.lm.targets, y);
    float *init[LOOM_CELL_MAX_STATES] = {0};
    for (int k = 0; k < o->cell->n_states; k++) {
        init[k] = calloc((size_t)loom_tensor_numel(m.g, m.lm.init[k]), sizeof(float));
        for (int64_t j = 0; j < loom_tensor_numel(m.g, m.lm.init[k]); j++) init[k][j] = 0.1f * (float)((j * 7 + k) % 5) - 0.2f;
        loom_bind(m.p, m.lm.init[k], init[k]);
    }
    cr_assert_eq(loom_run(m.p), LOOM_OK, "%s", loom_plan_error(m.p));
    run_result r = {0};
    r.v = grad_plan_values(&m, &r.n);
    r.copies = count_copies(m.g);
    loom_plan_stats st = loom_plan_get_stats(m.p);
    r.arena = st.arena_bytes, r.kept = st.kept_bytes;
    for (int k = 0; k < o->cell->n_states; k++) free(init[k]);
    free(x), free(y);
    grad_plan_free(&m);
    return r;
}

static void assert_same(const run_result *a, const run_result *b, const char *what)
{
    cr_assert_eq(a->n, b->n);
    for (int64_t j = 0; j < a->n; j++)
        cr_assert(fabsf(a->v[j] - b->v[j]) <= 1e-6f * (1 + fabsf(b->v[j])), "%s: value %lld: %.9g recomputed, %.9g kept", what,
                  (long long)j, a->v[j], b->v[j]);
}

/* One model, segments of several lengths (1, one that does not divide T,
 * √T): every loss and gradient as without recomputation. */
static void check_cell(const loom_cell_def *cell, bool embed, int layers)
{
    loom_lm_opts o = {.cell = cell, .vocab = 7, .embed = embed ? 5 : 0, .hidden = 6, .layers = layers, .steps = 11,
                      .batch = 3, .dropout = 0.25f, .zoneout = 0.2f, .seed = 3};
    run_result kept = lm_run(&o, 0);
    cr_assert_eq(kept.copies, 0);
    const int32_t every[] = {1, 3, 4, LOOM_RECOMPUTE_AUTO};
    for (int k = 0; k < 4; k++) {
        run_result r = lm_run(&o, every[k]);
        char what[96];
        snprintf(what, sizeof what, "%s, %d layer(s), recompute %d", cell->name, layers, every[k]);
        cr_assert_gt(r.copies, 0, "%s: nothing recomputed", what);
        assert_same(&r, &kept, what);
        result_free(&r);
    }
    result_free(&kept);
}

Test(recompute, same_gradients_for_the_built_in_cells)
{
    const loom_cell_def *cells[] = {&loom_cell_rnn_tanh, &loom_cell_rnn_relu, &loom_cell_gru, &loom_cell_lstm};
    for (int i = 0; i < 4; i++) {
        check_cell(cells[i], i % 2, 1);
        check_cell(cells[i], i % 2 == 0, 2);
    }
}

/* Every cell of the cells folder: equation cells built by people other
 * than the built-ins' authors (layer norm, peepholes, highway, ...). */
Test(recompute, same_gradients_for_every_equation_cell)
{
    DIR *dir = opendir(LOOM_CELLS_DIR);
    cr_assert(dir, "%s", LOOM_CELLS_DIR);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".cell")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", LOOM_CELLS_DIR, e->d_name);
        loom_error err = {0};
        const loom_cell_def *cell = loom_cell_find(path, &err);
        cr_assert(cell, "%s: %s", path, err.msg);
        check_cell(cell, n % 2, 1 + n % 2);
        n++;
    }
    closedir(dir);
    cr_assert_gt(n, 5);
}

/* Two directions over two layers: a segment's reverse direction enters
 * from the segment after it. Loss Σ output ⊙ a fixed weight pattern. */
Test(recompute, same_gradients_bidirectional_stack)
{
    const int T = 9, B = 2, I = 3, H = 4;
    float *res[2];
    int64_t total = 0;
    for (int k = 0; k < 2; k++) {
        loom_graph *g = loom_graph_new();
        loom_rnn rnn;
        cr_assert_eq(loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = I, .hidden_size = H,
                                                            .layers = 2, .bidirectional = true}), LOOM_OK);
        loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
        loom_rnn_out out = loom_rnn_apply(g, &rnn, x, NULL);
        loom_tensor w = loom_input(g, "w", loom_tensor_shape(g, out.output));
        loom_tensor loss = loom_sum_all(g, loom_mul(g, loom_tanh(g, out.output), w));
        loom_store *s = loom_store_new(g);
        loom_store_init(s, 2);
        int n = loom_store_count(s);
        loom_tensor outs[40];
        outs[0] = loss;
        cr_assert_eq(loom_backward_with(g, loss, loom_store_tensors(s), n, outs + 1, &(loom_backward_opts){.recompute = k ? 2 : 0}),
                     LOOM_OK, "%s", loom_graph_error(g));
        cr_assert_eq(count_copies(g) > 0, k == 1);
        loom_plan *p = loom_plan_new(g, outs, n + 1, NULL);
        cr_assert(p, "%s", loom_graph_error(g));
        float xv[T * B * I], wv[T * B * 2 * H];
        for (int i = 0; i < T * B * I; i++) xv[i] = sinf(0.7f * (float)i);
        for (int i = 0; i < T * B * 2 * H; i++) wv[i] = cosf(0.3f * (float)i);
        loom_store_bind(s, p);
        loom_bind(p, x, xv), loom_bind(p, w, wv);
        cr_assert_eq(loom_run(p), LOOM_OK, "%s", loom_plan_error(p));
        total = 0;
        for (int i = 0; i <= n; i++) total += loom_tensor_numel(g, outs[i]);
        res[k] = malloc((size_t)total * sizeof(float));
        for (int i = 0, at = 0; i <= n; i++) {
            int64_t m = loom_tensor_numel(g, outs[i]);
            memcpy(res[k] + at, loom_plan_output(p, outs[i]), (size_t)m * sizeof(float));
            at += (int)m;
        }
        loom_plan_free(p);
        loom_store_free(s);
        loom_graph_free(g);
    }
    assert_same(&(run_result){res[1], total, 0, 0, 0}, &(run_result){res[0], total, 0, 0, 0}, "bidirectional gru, 2 layers");
    free(res[0]), free(res[1]);
}

/* A long sequence (batch 16: a batch of input projections covers 128
 * steps, not all): the plan holds about one segment's values and the
 * checkpoints instead of every step's, so its arena is far smaller, and
 * what BPTT keeps (now: the checkpoints and the head's values) too. */
Test(recompute, long_sequence_in_less_memory)
{
    loom_lm_opts o = {.cell = &loom_cell_lstm, .vocab = 5, .hidden = 32, .steps = 400, .batch = 16};
    run_result kept = lm_run(&o, 0), r = lm_run(&o, LOOM_RECOMPUTE_AUTO);
    assert_same(&r, &kept, "lstm, 400 steps");
    cr_assert_lt(r.kept * 4, kept.kept, "kept %zu bytes recomputing, %zu without", r.kept, kept.kept);
    if (!getenv("LOOM_REWRITES")) /* the sink rewrite runs the copies late; without it they run early */
        cr_assert_lt(r.arena * 5, kept.arena * 3, "arena %zu bytes recomputing, %zu without", r.arena, kept.arena);
    result_free(&kept), result_free(&r);
}

Test(recompute, a_bad_segment_length_is_refused)
{
    loom_graph *g = loom_graph_new();
    loom_tensor w = loom_param(g, "w", loom_shape1(3));
    loom_tensor loss = loom_sum_all(g, loom_tanh(g, w)), gw;
    cr_assert_eq(loom_backward_with(g, loss, &w, 1, &gw, &(loom_backward_opts){.recompute = -4}), LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "recompute"), "%s", loom_graph_error(g));
    cr_assert(!loom_valid(gw));
    loom_graph_free(g);
}

/* The trainer: a run recomputing every 2 steps has the losses of one that
 * does not (to rounding), resumes bit for bit from its own checkpoint, and
 * a checkpoint is refused by a trainer that recomputes otherwise (its
 * graph, hence its fingerprint, differs) with what to give instead. */
static void rig_make(trainer_rig *r, int32_t recompute)
{
    trainer_rig_make(r, &(loom_lm_opts){.cell = &loom_cell_lstm, .vocab = 9, .embed = 5, .hidden = 8, .steps = 8, .batch = 3,
                                        .dropout = 0.2f, .seed = 3},
                     (loom_trainer_opts){.optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .clip_norm = 1, .seed = 5,
                                         .recompute = recompute});
}

Test(recompute, the_trainer_recomputes_and_resumes)
{
    trainer_rig plain, a, b, c;
    rig_make(&plain, 0), rig_make(&a, 2), rig_make(&b, 2), rig_make(&c, 0);
    double loss[8];
    for (int k = 0; k < 8; k++) {
        loss[k] = trainer_rig_step(&a, k);
        double p = trainer_rig_step(&plain, k);
        cr_assert(fabs(loss[k] - p) <= 1e-5 * fabs(p), "step %d: loss %.9g recomputing, %.9g not", k, loss[k], p);
    }
    for (int k = 0; k < 4; k++) trainer_rig_step(&b, k);
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_trainer_save(b.t, f), LOOM_OK, "%s", loom_trainer_error(b.t));
    trainer_rig_free(&b);
    rig_make(&b, 2);
    cr_assert_eq(loom_trainer_restore(b.t, f), LOOM_OK, "%s", loom_trainer_error(b.t));
    for (int k = 4; k < 8; k++) cr_assert_eq(trainer_rig_step(&b, k), loss[k], "step %d after the restore", k);
    cr_assert_neq(loom_trainer_restore(c.t, f), LOOM_OK);
    cr_assert(strstr(loom_trainer_error(c.t), "--recompute 2"), "%s", loom_trainer_error(c.t));
    loom_st_free(f);
    trainer_rig_free(&plain), trainer_rig_free(&a), trainer_rig_free(&b), trainer_rig_free(&c);
}

/* A diagram has one column per step: a graph that computes its steps
 * twice is refused with what to draw instead, not drawn falsely. */
Test(recompute, diagrams_refuse_recomputed_graphs)
{
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = 5, .hidden = 4, .steps = 6, .batch = 2}),
                 LOOM_OK);
    int n = loom_graph_params(g, NULL, 0);
    loom_tensor p[16], dp[16];
    loom_graph_params(g, p, n);
    cr_assert_eq(loom_backward_with(g, lm.loss, p, n, dp, &(loom_backward_opts){.recompute = 2}), LOOM_OK);
    char *text = NULL;
    size_t len = 0;
    loom_error err = {0};
    cr_assert_eq(loom_dot_string(g, NULL, &text, &len, &err), LOOM_ERR_ARG);
    cr_assert(strstr(err.msg, "recomput"), "%s", err.msg);
    free(text);
    loom_graph_free(g);
}
