/* Training: optimisers, schedules and clipping against PyTorch (golden
 * values from tests/golden/make_optim.py), layers and the language model
 * (names, gradient check), and a short run that learns. */
#include "helpers.h"
#include "mgu_cell.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static loom_st *golden(void)
{
    char err[512];
    loom_st *f = st_read(LOOM_GOLDEN_DIR "/optim.safetensors", err, sizeof err);
    cr_assert(f, "%s", err);
    return f;
}

static const float *get(const loom_st *f, const char *a, const char *b)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", a, b);
    const loom_st_tensor *t = loom_st_get(f, name);
    cr_assert(t, "%s is in the golden file", name);
    return t->data;
}

static double num(cJSON *o, const char *k, double dflt)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

Test(optim, updates_match_pytorch)
{
    loom_st *f = golden();
    const char *cases[] = {"sgd", "sgd_momentum", "sgd_nesterov_wd", "adam", "adam_wd", "adamw"};
    for (unsigned c = 0; c < sizeof cases / sizeof *cases; c++) {
        cJSON *o = cJSON_Parse(loom_st_meta(f, cases[c]));
        const char *kind = cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring;
        cJSON *betas = cJSON_GetObjectItemCaseSensitive(o, "betas");
        loom_optim_opts opts = {
            .kind = !strcmp(kind, "sgd") ? LOOM_OPT_SGD : !strcmp(kind, "adam") ? LOOM_OPT_ADAM : LOOM_OPT_ADAMW,
            .lr = (float)num(o, "lr", 0), .momentum = (float)num(o, "momentum", 0),
            .dampening = (float)num(o, "dampening", 0), .weight_decay = (float)num(o, "weight_decay", !strcmp(kind, "adamw") ? 0.01 : 0),
            .nesterov = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "nesterov")),
            .beta1 = betas ? (float)cJSON_GetArrayItem(betas, 0)->valuedouble : 0,
            .beta2 = betas ? (float)cJSON_GetArrayItem(betas, 1)->valuedouble : 0, .eps = (float)num(o, "eps", 0)};
        enum { S = 6, N = 5 };
        float p[N];
        memcpy(p, get(f, cases[c], "p0"), sizeof p);
        const float *grads = get(f, cases[c], "grads"), *want = get(f, cases[c], "expected");
        loom_error err = {0};
        float *params[1] = {p};
        int64_t sizes[1] = {N};
        loom_optim *opt = loom_optim_new(&opts, params, sizes, 1, &err);
        cr_assert(opt, "%s: %s", cases[c], err.msg);
        for (int s = 0; s < S; s++) {
            const float *g[1] = {grads + s * N};
            loom_optim_step(opt, g, opts.lr);
            for (int k = 0; k < N; k++)
                cr_assert(fabsf(p[k] - want[s * N + k]) <= 2e-6f * fmaxf(1, fabsf(want[s * N + k])),
                          "%s step %d element %d: loom %.9g, PyTorch %.9g", cases[c], s, k, p[k], want[s * N + k]);
        }
        cr_assert_eq(loom_optim_steps(opt), S);
        loom_optim_free(opt);
        cJSON_Delete(o);
    }
    loom_st_free(f);
}

Test(optim, schedules_match_pytorch)
{
    loom_st *f = golden();
    const char *names[] = {"step", "exp", "cosine"};
    for (unsigned i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "sched.%s", names[i]);
        cJSON *o = cJSON_Parse(loom_st_meta(f, key));
        loom_schedule s = {.kind = i == 0 ? LOOM_SCHED_STEP : i == 1 ? LOOM_SCHED_EXP : LOOM_SCHED_COSINE,
                           .gamma = (float)num(o, "gamma", 0), .step_size = (int64_t)num(o, "step_size", 0),
                           .total = (int64_t)num(o, "total", 0), .min_lr = (float)num(o, "min_lr", 0)};
        const float *want = loom_st_get(f, key)->data;
        for (int t = 0; t < 10; t++)
            cr_assert_float_eq(loom_schedule_lr(&s, (float)num(o, "lr", 0), t), want[t], 1e-6, "%s step %d", names[i], t);
        cJSON_Delete(o);
    }
    loom_schedule w = {.kind = LOOM_SCHED_CONSTANT, .warmup = 4};
    cr_assert_float_eq(loom_schedule_lr(&w, 1.0f, 0), 0.25f, 1e-7);
    cr_assert_float_eq(loom_schedule_lr(&w, 1.0f, 3), 1.0f, 1e-7);
    cr_assert_float_eq(loom_schedule_lr(&w, 1.0f, 9), 1.0f, 1e-7);
    loom_st_free(f);
}

/* ---- the trainer (loom/trainer.h) ---- */

/* A character LM around the MGU user cell (two layers, an embedding,
 * dropout), its store and trainer; batches of the text in x, y. */
typedef struct {
    loom_graph *g;
    loom_lm lm;
    loom_store *s;
    loom_trainer *t;
    int32_t x[6 * 4], y[6 * 4];
} lm_rig;

static void rig_make_cut(lm_rig *r, const loom_cell_def *cell, float lr, loom_optimizer kind, double clip, loom_trunc trunc)
{
    r->g = loom_graph_new();
    loom_lm_build(r->g, &r->lm, &(loom_lm_opts){.cell = cell, .vocab = 12, .embed = 8, .hidden = 16, .layers = 2,
                                                 .dropout = 0.2f, .steps = 6, .batch = 4, .seed = 3, .trunc = trunc,
                                                 .truncate = 2});
    r->s = loom_store_new(r->g);
    loom_store_init(r->s, 7);
    loom_error err = {0};
    r->t = loom_trainer_new(r->g, r->s,
                            &(loom_trainer_opts){.loss = r->lm.loss, .state_in = r->lm.init, .state_out = r->lm.out.final,
                                                 .n_states = cell->n_states, .optim = {.kind = kind, .lr = lr},
                                                 .schedule = {.kind = LOOM_SCHED_COSINE, .total = 40, .warmup = 3},
                                                 .clip_norm = clip, .seed = 11, .trunc_xi = r->lm.trunc_xi,
                                                 .trunc_mean = 2},
                            &err);
    cr_assert(r->t, "%s", err.msg);
    cr_assert_eq(loom_trainer_bind(r->t, r->lm.tokens, r->x), LOOM_OK, "%s", loom_trainer_error(r->t));
    cr_assert_eq(loom_trainer_bind(r->t, r->lm.targets, r->y), LOOM_OK, "%s", loom_trainer_error(r->t));
}

static void rig_make(lm_rig *r, const loom_cell_def *cell, float lr, loom_optimizer kind, double clip)
{
    rig_make_cut(r, cell, lr, kind, clip, LOOM_TRUNC_NONE);
}

static void rig_free(lm_rig *r)
{
    loom_trainer_free(r->t);
    loom_store_free(r->s);
    loom_graph_free(r->g);
}

/* Batch k of a fixed token stream (the same batches for every run). */
static void rig_batch(lm_rig *r, int k)
{
    for (int i = 0; i < 24; i++) {
        int at = k * 24 + i;
        r->x[i] = (at * 7 + at / 5) % 12;
        r->y[i] = ((at + 1) * 7 + (at + 1) / 5) % 12;
    }
}

/* A user's cell trains through the trainer, saves, and a new trainer made
 * the same way resumes bit for bit (weights, Adam's moments, the schedule's
 * position, the carried states, the dropout counter, the truncation's
 * draws). */
static void resumes_bit_for_bit(loom_trunc trunc)
{
    lm_rig a, b, c;
    double straight[20];
    rig_make_cut(&a, &mgu_cell, 0.01f, LOOM_OPT_ADAM, 1.0, trunc);
    for (int k = 0; k < 20; k++) {
        rig_batch(&a, k);
        if (k == 12) loom_trainer_reset_states(a.t); /* a new epoch */
        loom_train_step s;
        cr_assert_eq(loom_trainer_step(a.t, &s), LOOM_OK, "%s", loom_trainer_error(a.t));
        cr_assert_eq(s.step, k + 1);
        straight[k] = s.loss;
    }
    cr_assert_lt(straight[19], straight[0], "it learns: %g → %g", straight[0], straight[19]);
    rig_make_cut(&b, &mgu_cell, 0.01f, LOOM_OPT_ADAM, 1.0, trunc);
    for (int k = 0; k < 10; k++) {
        rig_batch(&b, k);
        cr_assert_eq(loom_trainer_step(b.t, NULL), LOOM_OK, "%s", loom_trainer_error(b.t));
    }
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_trainer_save(b.t, f), LOOM_OK, "%s", loom_trainer_error(b.t));
    char path[] = "/tmp/loom-trainer-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(loom_checkpoint_write(f, path), LOOM_OK, "%s", loom_st_error(f));
    loom_st_free(f);
    rig_make_cut(&c, &mgu_cell, 0.01f, LOOM_OPT_ADAM, 1.0, trunc);
    f = loom_st_new();
    cr_assert_eq(loom_checkpoint_read(f, path), LOOM_OK, "%s", loom_st_error(f));
    unlink(path);
    cr_assert_eq(loom_trainer_restore(c.t, f), LOOM_OK, "%s", loom_trainer_error(c.t));
    loom_st_free(f);
    cr_assert_eq(loom_trainer_steps(c.t), 10);
    for (int k = 10; k < 20; k++) {
        rig_batch(&c, k);
        if (k == 12) loom_trainer_reset_states(c.t);
        loom_train_step s;
        cr_assert_eq(loom_trainer_step(c.t, &s), LOOM_OK, "%s", loom_trainer_error(c.t));
        cr_assert_eq(s.loss, straight[k], "step %d: %.9g resumed, %.9g straight", k + 1, s.loss, straight[k]);
    }
    for (int i = 0; i < loom_store_count(a.s); i++)
        cr_assert(!memcmp(loom_store_data(a.s, loom_store_tensor(a.s, i)), loom_store_data(c.s, loom_store_tensor(c.s, i)),
                          (size_t)loom_store_numel(a.s, i) * sizeof(float)),
                  "%s differs", loom_store_name(a.s, i));
    /* evaluation: no dropout, no update, its own carried states */
    loom_trainer_eval_begin(c.t);
    double l1, l2;
    rig_batch(&c, 0);
    cr_assert_eq(loom_trainer_eval_batch(c.t, &l1), LOOM_OK);
    loom_trainer_eval_begin(c.t);
    cr_assert_eq(loom_trainer_eval_batch(c.t, &l2), LOOM_OK);
    cr_assert(isfinite(l1) && l1 == l2, "evaluation is deterministic: %g %g", l1, l2);
    cr_assert_eq(loom_trainer_steps(c.t), 20);
    rig_free(&a), rig_free(&b), rig_free(&c);
}

Test(trainer, resumes_bit_for_bit) { resumes_bit_for_bit(LOOM_TRUNC_NONE); }
Test(trainer, resumes_bit_for_bit_with_random_truncation) { resumes_bit_for_bit(LOOM_TRUNC_RANDOM); }

/* Truncation changes the update, not the loss: a first step with fixed or
 * random truncation has full BPTT's loss and other weights after it; the
 * random draws change from step to step. */
Test(trainer, truncation_reaches_the_update)
{
    lm_rig r[3];
    loom_trunc kinds[3] = {LOOM_TRUNC_NONE, LOOM_TRUNC_FIXED, LOOM_TRUNC_RANDOM};
    loom_train_step s[3];
    for (int i = 0; i < 3; i++) {
        rig_make_cut(&r[i], &loom_cell_lstm, 0.01f, LOOM_OPT_SGD, 0, kinds[i]);
        rig_batch(&r[i], 0);
        cr_assert_eq(loom_trainer_step(r[i].t, &s[i]), LOOM_OK, "%s", loom_trainer_error(r[i].t));
        cr_assert_eq(s[i].loss, s[0].loss);
    }
    for (int i = 1; i < 3; i++) cr_assert_neq(s[i].grad_norm, s[0].grad_norm, "truncation %d", i);
    float a[6], b[6];
    loom_trunc_draw(5, 0, 2, a, 6), loom_trunc_draw(5, 1, 2, b, 6);
    cr_assert(memcmp(a, b, sizeof a), "each step draws anew");
    for (int i = 0; i < 6; i++) cr_assert(a[i] == 0 || a[i] == 2, "ξ is 0 or 1/π = 2 for K = 2: %g", a[i]);
    for (int i = 0; i < 3; i++) rig_free(&r[i]);
}

/* A diverging run stops with the step and the first parameter named, and
 * nothing is updated; a damaged checkpoint changes nothing. */
Test(trainer, stops_and_refuses_clearly)
{
    lm_rig r;
    rig_make(&r, &loom_cell_rnn_relu, 1e6f, LOOM_OPT_SGD, 0);
    loom_status st = LOOM_OK;
    int k = 0;
    for (; k < 50 && !st; k++) {
        rig_batch(&r, k);
        st = loom_trainer_step(r.t, NULL);
    }
    cr_assert_eq(st, LOOM_ERR_VALUE, "a huge learning rate diverges");
    cr_assert(strstr(loom_trainer_error(r.t), "is not finite"), "%s", loom_trainer_error(r.t));
    cr_assert_eq(loom_trainer_steps(r.t), k - 1, "the failed step did not count");
    rig_free(&r);

    rig_make(&r, &mgu_cell, 0.01f, LOOM_OPT_ADAM, 1.0);
    rig_batch(&r, 0);
    cr_assert_eq(loom_trainer_step(r.t, NULL), LOOM_OK);
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_trainer_save(r.t, f), LOOM_OK);
    float before = loom_store_data(r.s, loom_store_tensor(r.s, 0))[0];
    static const char *const bad[][2] = {{"loom.step", "-1"}, {"loom.step", "x"}, {"loom.plan_runs", "9223372036854775807"},
                                         {"loom.optim_steps", "-4"}};
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        loom_st *g = loom_st_new();
        for (int j = 0; j < f->n; j++) loom_st_add(g, f->tensors[j].name, f->tensors[j].dtype, f->tensors[j].shape, f->tensors[j].data);
        for (int j = 0; j < f->n_meta; j++) loom_st_set_meta(g, f->meta_key[j], loom_st_meta(f, f->meta_key[j]));
        loom_st_set_meta(g, bad[i][0], bad[i][1]);
        cr_assert_eq(loom_trainer_restore(r.t, g), LOOM_ERR_FORMAT, "%s = %s", bad[i][0], bad[i][1]);
        loom_st_free(g);
    }
    ((float *)loom_st_get(f, "state.0")->data)[0] = 1; /* a later refusal must not leave this behind */
    ((float *)loom_st_get(f, loom_store_name(r.s, 1))->data)[0] = NAN;
    cr_assert_eq(loom_trainer_restore(r.t, f), LOOM_ERR_VALUE);
    cr_assert(strstr(loom_trainer_error(r.t), "NaN"), "%s", loom_trainer_error(r.t));
    cr_assert_eq(loom_store_data(r.s, loom_store_tensor(r.s, 0))[0], before, "a refused restore changes nothing");
    cr_assert_eq(loom_trainer_steps(r.t), 1);
    loom_st_free(f);
    rig_free(&r);
}

/* A user cell whose two biases get identical gradients (as the built-in
 * RNN's bias_ih and bias_hh): h' = tanh(W_ih x + W_hh h + bias_a + bias_b). */
static int twin_params(const loom_cell_def *def, int in, int hidden, loom_param_spec *s, int max)
{
    (void)def;
    if (max < 4) return 4;
    float a = 1.0f / sqrtf((float)hidden);
    s[0] = (loom_param_spec){.name = "weight_ih", .shape = loom_shape2(hidden, in), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[1] = (loom_param_spec){.name = "weight_hh", .shape = loom_shape2(hidden, hidden), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[2] = (loom_param_spec){.name = "bias_a", .shape = loom_shape1(hidden), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[3] = (loom_param_spec){.name = "bias_b", .shape = loom_shape1(hidden), .init = LOOM_INIT_UNIFORM, .scale = a};
    return 4;
}

static loom_tensor twin_step(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x,
                             const loom_tensor *state, loom_tensor *next)
{
    (void)def;
    loom_tensor pre = loom_add(g, loom_add(g, loom_matmul(g, x, p[0], false, true), loom_matmul(g, state[0], p[1], false, true)),
                               loom_add(g, p[2], p[3]));
    return next[0] = loom_tanh(g, pre);
}

static const loom_cell_def twin_cell = {"twin", 1, twin_params, twin_step, NULL};

/* One golden case of clip.safetensors: the stack's gradients from a plan,
 * clipped in place by loom_clip_grad_norm, against PyTorch's
 * clip_grad_norm_. Parameters whose gradients are equal (the RNN's and the
 * LSTM's two biases, the twin cell's) must each be scaled once. */
static void clip_case(const loom_st *f, const char *name, const loom_cell_def *cell, double max_norm)
{
    char prefix[64], key[200];
    snprintf(prefix, sizeof prefix, "%s.", name);
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    enum { T = 5, B = 3, I = 4, H = 5, L = 2 };
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = I, .hidden_size = H, .layers = L,
                                            .bidirectional = true, .prefix = prefix});
    snprintf(key, sizeof key, "%sinput", prefix);
    loom_tensor x = loom_input(g, key, loom_shape3(T, B, I));
    snprintf(key, sizeof key, "%sgrad_output", prefix);
    loom_tensor go = loom_input(g, key, loom_shape3(T, B, 2 * H));
    loom_tensor init[2] = {LOOM_INVALID, LOOM_INVALID};
    for (int s = 0; s < cell->n_states; s++) {
        snprintf(key, sizeof key, "%s%s", prefix, s ? "c0" : "h0");
        init[s] = loom_input(g, key, loom_shape3(2 * L, B, H));
    }
    loom_rnn_out ro = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.init = {init[0], init[1]}});
    loom_tensor loss = loom_sum_all(g, loom_mul(g, ro.output, go));
    int n = loom_graph_params(g, NULL, 0);
    loom_tensor *p = malloc((size_t)n * sizeof *p), *dp = malloc((size_t)n * sizeof *dp);
    loom_graph_params(g, p, n);
    cr_assert_eq(loom_backward(g, loss, p, n, dp), LOOM_OK, "%s", loom_graph_error(g));
    loom_plan *plan = loom_plan_new(g, dp, n, NULL);
    cr_assert(plan, "%s", loom_graph_error(g));
    loom_store *store = loom_store_new(g);
    cr_assert_eq(loom_store_load(store, f, false), LOOM_OK, "%s", loom_store_error(store));
    loom_store_bind(store, plan);
    loom_tensor in[4] = {x, go, init[0], init[1]};
    for (int i = 0; i < 2 + cell->n_states; i++) {
        const loom_st_tensor *t = loom_st_get(f, loom_tensor_name(g, in[i]));
        cr_assert(t, "%s is in the golden file", loom_tensor_name(g, in[i]));
        loom_bind(plan, in[i], t->data);
    }
    cr_assert_eq(loom_run(plan), LOOM_OK, "%s", loom_plan_error(plan));
    float **grads = malloc((size_t)n * sizeof *grads);
    int64_t *sizes = malloc((size_t)n * sizeof *sizes);
    for (int i = 0; i < n; i++) {
        grads[i] = (float *)loom_plan_output(plan, dp[i]);
        sizes[i] = loom_tensor_numel(g, p[i]);
        for (int j = 0; j < i; j++)
            cr_assert(grads[i] + sizes[i] <= grads[j] || grads[j] + sizes[j] <= grads[i],
                      "%s: the gradients of %s and %s share memory", name, loom_tensor_name(g, p[i]), loom_tensor_name(g, p[j]));
    }
    double norm = loom_clip_grad_norm(grads, sizes, n, max_norm);
    snprintf(key, sizeof key, "%snorm", prefix);
    double want_norm = loom_st_get(f, key)->data ? ((const float *)loom_st_get(f, key)->data)[0] : 0;
    cr_assert(fabs(norm - want_norm) <= 1e-5 * want_norm, "%s: norm %.9g, PyTorch %.9g", name, norm, want_norm);
    cr_assert_gt(norm, 10 * max_norm, "%s: the case clips", name);
    for (int i = 0; i < n; i++) {
        const char *pn = loom_tensor_name(g, p[i]) + strlen(prefix);
        snprintf(key, sizeof key, "%sclipped.%s", prefix, pn);
        const loom_st_tensor *w = loom_st_get(f, key);
        cr_assert(w, "PyTorch has %s", key);
        const float *want = w->data;
        double scale = 0;
        for (int64_t k = 0; k < sizes[i]; k++) scale = fmax(scale, fabs(want[k]));
        for (int64_t k = 0; k < sizes[i]; k++)
            cr_assert(fabs(grads[i][k] - want[k]) <= 1e-5 * scale, "%s: %s[%lld] after clipping is %.9g, PyTorch %.9g",
                      name, pn, (long long)k, grads[i][k], want[k]);
    }
    free(grads), free(sizes), free(p), free(dp);
    loom_store_free(store);
    loom_plan_free(plan);
    loom_graph_free(g);
}

Test(optim, clipping_every_cell_matches_pytorch)
{
    char err[512];
    loom_st *f = st_read(LOOM_GOLDEN_DIR "/clip.safetensors", err, sizeof err);
    cr_assert(f, "%s", err);
    double max_norm = strtod(loom_st_meta(f, "max_norm"), NULL);
    char cases[256];
    snprintf(cases, sizeof cases, "%s", loom_st_meta(f, "cases"));
    int n_builtin, done = 0, builtin_done = 0;
    const loom_cell_def *const *builtin = loom_cells(&n_builtin);
    for (char *save = NULL, *c = strtok_r(cases, ",", &save); c; c = strtok_r(NULL, ",", &save), done++) {
        const loom_cell_def *cell = !strcmp(c, "twin") ? &twin_cell : !strcmp(c, "mgu") ? &mgu_cell : loom_cell_by_name(c);
        cr_assert(cell, "cell %s", c);
        for (int i = 0; i < n_builtin; i++) builtin_done += builtin[i] == cell;
        clip_case(f, c, cell, max_norm);
    }
    cr_assert_eq(builtin_done, n_builtin, "every built-in cell has a clipping case (%d of %d)", builtin_done, n_builtin);
    cr_assert_eq(done, n_builtin + 2);
    loom_st_free(f);
}

Test(optim, clipping_matches_pytorch)
{
    loom_st *f = golden();
    float g0[4], g1[3];
    memcpy(g0, get(f, "clip", "g0"), sizeof g0);
    memcpy(g1, get(f, "clip", "g1"), sizeof g1);
    float *g[2] = {g0, g1};
    int64_t sizes[2] = {4, 3};
    double norm = loom_clip_grad_norm(g, sizes, 2, 1.0);
    cr_assert_float_eq(norm, get(f, "clip", "norm")[0], 1e-5);
    assert_close(g0, get(f, "clip", "out0"), 4, 1e-6f);
    assert_close(g1, get(f, "clip", "out1"), 3, 1e-6f);
    float nan[2] = {NAN, 1};
    float *gn[1] = {nan};
    int64_t sn[1] = {2};
    cr_assert(isnan(loom_clip_grad_norm(gn, sn, 1, 1.0)), "a NaN norm is reported, not hidden");
    loom_clip_grad_value(g, sizes, 2, 0.1f);
    for (int k = 0; k < 4; k++) cr_assert(fabsf(g0[k]) <= 0.1f);
    loom_error err = {0};
    cr_assert_null(loom_optim_new(&(loom_optim_opts){.kind = LOOM_OPT_SGD, .lr = 0.1f, .nesterov = true}, g, sizes, 2, &err));
    cr_assert(err.status == LOOM_ERR_ARG && strstr(err.msg, "Nesterov"), "%s", err.msg);
    cr_assert_null(loom_optim_new(&(loom_optim_opts){.kind = LOOM_OPT_ADAM, .lr = NAN}, g, sizes, 2, NULL));
    loom_st_free(f);
}

/* The language model: PyTorch's names, and gradients that check, for a
 * built-in cell and a user cell, one-hot and embedded. */
Test(lm, names_and_gradients)
{
    const loom_cell_def *cells[2] = {&loom_cell_gru, &loom_cell_lstm};
    for (int k = 0; k < 2; k++) {
        loom_graph *g = loom_graph_new();
        loom_lm lm;
        cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = cells[k], .vocab = 6, .embed = k ? 3 : 0, .hidden = 4,
                                                           .layers = 2, .steps = 3, .batch = 2}),
                     LOOM_OK, "%s", loom_graph_error(g));
        const char *names[] = {"rnn.weight_ih_l0", "rnn.bias_hh_l1", "decoder.weight", "decoder.bias"};
        for (int i = 0; i < 4; i++) cr_assert(loom_valid(loom_graph_find(g, names[i])), "%s", names[i]);
        cr_assert_eq(loom_valid(loom_graph_find(g, "embedding.weight")), k == 1);
        loom_store *s = loom_store_new(g);
        loom_store_init(s, 3);
        int n = loom_store_bindings(s, NULL, 0);
        loom_binding b[32];
        loom_store_bindings(s, b, n);
        int32_t tok[6] = {0, 5, 2, 3, 1, 4}, tgt[6] = {5, 2, 3, 1, 4, 0};
        loom_binding fixed[4] = {{lm.tokens, tok}, {lm.targets, tgt}};
        int nf = 2;
        for (int st = 0; st < cells[k]->n_states; st++) fixed[nf++] = (loom_binding){lm.init[st], rnd_buf(16, -0.5f, 0.5f)};
        loom_gradcheck_result r;
        cr_assert_eq(loom_gradcheck(g, lm.loss, b, n, fixed, nf, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
        cr_assert(r.passed, "k=%d: worst %g vs %g", k, r.worst_analytic, r.worst_numeric);
        for (int st = 2; st < nf; st++) free(fixed[st].data);
        loom_store_free(s);
        loom_graph_free(g);
    }
}

/* Tied weights: the decoder reads the embedding's matrix (no
 * decoder.weight; the embedding's gradient sums both uses), logits = y Eᵀ +
 * b, gradients that check; an embedding narrower than the state refused. */
Test(lm, tied_weights)
{
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = 7, .embed = 4, .hidden = 4, .layers = 2,
                                                       .steps = 3, .batch = 2, .tie_weights = true, .stacking = LOOM_STACK_RESIDUAL}),
                 LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(!loom_valid(loom_graph_find(g, "decoder.weight")) && loom_valid(loom_graph_find(g, "decoder.bias")));
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 3);
    int n = loom_store_bindings(s, NULL, 0);
    loom_binding b[40];
    loom_store_bindings(s, b, n);
    int32_t tok[6] = {0, 6, 2, 3, 1, 4}, tgt[6] = {5, 2, 3, 1, 4, 0};
    loom_binding fixed[3] = {{lm.tokens, tok}, {lm.targets, tgt}, {lm.init[0], rnd_buf(16, -0.5f, 0.5f)}};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, lm.loss, b, n, fixed, 3, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "worst %g vs %g", r.worst_analytic, r.worst_numeric);
    /* the logits, by hand: the last layer's output times the embedding's transpose, plus the bias */
    loom_tensor by_hand = loom_add(g, loom_matmul(g, lm.out.output, loom_graph_find(g, "embedding.weight"), false, true),
                                   loom_graph_find(g, "decoder.bias"));
    loom_tensor d = loom_sub(g, lm.logits, by_hand), err = loom_sum_all(g, loom_mul(g, d, d));
    loom_binding all[42];
    memcpy(all, b, (size_t)n * sizeof *b), memcpy(all + n, fixed, sizeof fixed);
    float e = -1;
    cr_assert_eq(loom_node_values(g, err, all, n + 3, &e, 1), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert_eq(e, 0.0f);
    free(fixed[2].data);
    loom_store_free(s);
    loom_graph_free(g);
    g = loom_graph_new();
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = 7, .embed = 3, .hidden = 4, .steps = 3,
                                                       .batch = 2, .tie_weights = true}),
                 LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "embed 3, hidden 4"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}

/* AWD-LSTM's regularisers on a language model: gradients that check with
 * every mask fixed (variational dropout on the embedding, between layers and
 * before the decoder; the state's; weight drop; zoneout; embedding dropout;
 * tied weights); refused out of [0, 1) or without an embedding. */
Test(lm, regularised_gradients)
{
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_lstm, .vocab = 7, .embed = 4, .hidden = 4, .layers = 2,
                                                       .steps = 3, .batch = 2, .dropout = 0.3f, .variational = true,
                                                       .state_dropout = 0.3f, .weight_drop = 0.4f, .zoneout = 0.2f,
                                                       .dropout_embed = 0.2f, .tie_weights = true, .seed = 5}),
                 LOOM_OK, "%s", loom_graph_error(g));
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 3);
    int n = loom_store_bindings(s, NULL, 0);
    loom_binding b[40];
    loom_store_bindings(s, b, n);
    int32_t tok[6] = {0, 6, 2, 3, 1, 4}, tgt[6] = {5, 2, 3, 1, 4, 0};
    loom_binding fixed[4] = {{lm.tokens, tok}, {lm.targets, tgt}, {lm.init[0], rnd_buf(16, -0.5f, 0.5f)},
                             {lm.init[1], rnd_buf(16, -0.5f, 0.5f)}};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, lm.loss, b, n, fixed, 4, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "worst %g vs %g", r.worst_analytic, r.worst_numeric);
    free(fixed[2].data), free(fixed[3].data);
    loom_store_free(s);
    loom_graph_free(g);
    g = loom_graph_new();
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = 7, .hidden = 4, .steps = 3, .batch = 2,
                                                       .dropout_embed = 0.2f}),
                 LOOM_ERR_ARG, "embedding dropout without an embedding");
    loom_graph_free(g);
    g = loom_graph_new();
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = 7, .hidden = 4, .steps = 3, .batch = 2,
                                                       .zoneout = 1}),
                 LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "zoneout 1"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}

/* ---- loom train ---- */

#include "tool.h"

#include <unistd.h>

static char tdir[64];
static void mk(void) { cr_assert(mkdtemp(strcpy(tdir, "/tmp/loom-train-XXXXXX"))); }
static void rm_all(void)
{
    const char *names[] = {"text.txt", "m1.csv", "m2.csv", "w.safetensors", "ck.safetensors", "bad.safetensors"};
    char p[128];
    for (unsigned i = 0; i < 6; i++) snprintf(p, sizeof p, "%s/%s", tdir, names[i]), unlink(p);
    rmdir(tdir);
}
TestSuite(cli_train, .init = mk, .fini = rm_all);

static const char *tp(const char *name) { return tmp_path(tdir, name); }

/* The last value of column col of a metrics file (and the loss column of
 * every row into losses, when given). */
static double metric(const char *path, int col, double *losses, int max)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    char line[512];
    double last = NAN;
    int row = 0;
    cr_assert(fgets(line, sizeof line, f) && !strncmp(line, "step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity", 63));
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        for (int c = 0; c < col && p; c++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (p && *p && *p != '\n') last = atof(p);
        if (losses && row < max) losses[row] = atof(strchr(line, ',') + 1);
        row++;
    }
    fclose(f);
    return last;
}

/* A short run on a small repetitive text learns it (a behaviour test: the
 * held-out perplexity ends near 1), and is deterministic: the same seed
 * gives the same losses. */
Test(cli_train, learns_a_repetitive_text_deterministically)
{
    FILE *f = fopen(tp("text.txt"), "w");
    for (int i = 0; i < 400; i++) fputs("the cat sat. ", f);
    fclose(f);
    double l1[80], l2[80];
    for (int run = 0; run < 2; run++) {
        const char *m = tp(run ? "m2.csv" : "m1.csv");
        char *argv[] = {"--data", (char *)tp("text.txt"), "--cell", "gru", "--hidden", "32", "--seq-len", "12", "--batch", "8",
                        "--steps", "80", "--eval-every", "40", "--generate", "20", "--metrics", (char *)m, "--threads", "1"};
        cr_assert_eq(cmd_train(20, argv), 0);
        double valid = metric(m, 6, run ? l2 : l1, 80);
        cr_assert_lt(valid, 1.6, "held-out perplexity %g after 80 steps", valid);
    }
    for (int i = 0; i < 80; i++) cr_assert_eq(l1[i], l2[i], "step %d: the same seed gives the same loss", i + 1);
}

Test(cli_train, refuses_and_stops_clearly)
{
    FILE *f = fopen(tp("text.txt"), "w");
    for (int i = 0; i < 200; i++) fputs("abcdefg ", f);
    fclose(f);
    char *nan_run[] = {"--data", (char *)tp("text.txt"), "--cell", "rnn_relu", "--hidden", "8", "--seq-len", "5", "--batch", "2", "--steps", "50",
                       "--optimizer", "sgd", "--lr", "1e6", "--clip", "0", "--generate", "0"};
    cr_assert_eq(cmd_train(20, nan_run), 1, "a non-finite loss stops the run");
    char *bad[][4] = {{"--optimizer", "rmsprop"}, {"--steps", "0"}, {"--data", "/no/such/file.txt"}, {"--bidirectional"},
                      {"--sampling", "shuffled"}, {"--lr", "-1"}};
    int argc[] = {2, 2, 2, 1, 2, 2};
    for (unsigned i = 0; i < sizeof argc / sizeof *argc; i++) cr_assert_eq(cmd_train(argc[i], bad[i]), 2, "case %u", i);
    char *tiny[] = {"--data", (char *)tp("text.txt"), "--seq-len", "500", "--batch", "64"};
    cr_assert_eq(cmd_train(6, tiny), 2, "too short for one batch");
}

/* Resuming continues exactly as if uninterrupted: 20 steps, a checkpoint,
 * 20 more give the losses of 40 straight steps, bit for bit (two layers,
 * an embedding, dropout: the dropout counter is restored too). */
Test(cli_train, resume_is_bit_identical)
{
    FILE *f = fopen(tp("text.txt"), "w");
    for (int i = 0; i < 300; i++) fputs("resume me exactly. ", f);
    fclose(f);
    char *common[] = {"--data", (char *)tp("text.txt"), "--hidden", "16", "--layers", "2", "--embed", "4", "--dropout", "0.2",
                      "--seq-len", "6", "--batch", "4", "--generate", "0", "--threads", "1"};
    char *argv[32];
    int n = 0;
    for (int i = 0; i < 18; i++) argv[n++] = common[i];
    char *straight[] = {"--steps", "40", "--metrics", (char *)tp("m1.csv")};
    for (int i = 0; i < 4; i++) argv[n + i] = straight[i];
    cr_assert_eq(cmd_train(n + 4, argv), 0);
    char *first[] = {"--steps", "20", "--save", (char *)tp("ck.safetensors")};
    for (int i = 0; i < 4; i++) argv[n + i] = first[i];
    cr_assert_eq(cmd_train(n + 4, argv), 0);
    char *resume[] = {"--data", (char *)tp("text.txt"), "--resume", (char *)tp("ck.safetensors"), "--steps", "40",
                      "--metrics", (char *)tp("m2.csv"), "--generate", "0", "--threads", "1"};
    cr_assert_eq(cmd_train(12, resume), 0);
    double a[40], b[20];
    metric(tp("m1.csv"), 1, a, 40);
    metric(tp("m2.csv"), 1, b, 20);
    for (int i = 0; i < 20; i++) cr_assert_eq(a[20 + i], b[i], "step %d: %.9g uninterrupted, %.9g resumed", 21 + i, a[20 + i], b[i]);
}

/* text.txt, and ck.safetensors: an LSTM (H 8, T 5, B 2) trained on it for 5 steps. */
static void small_checkpoint(void)
{
    FILE *f = fopen(tp("text.txt"), "w");
    for (int i = 0; i < 300; i++) fputs("abc abd abe. ", f);
    fclose(f);
    char *make[] = {"--data", (char *)tp("text.txt"), "--hidden", "8", "--seq-len", "5", "--batch", "2", "--steps", "5",
                    "--generate", "0", "--save", (char *)tp("ck.safetensors")};
    cr_assert_eq(cmd_train(14, make), 0);
}

/* A checkpoint's payload is checksummed: a flipped byte, a truncated file
 * or a plain safetensors file is refused with the reason, and a failed
 * resume writes nothing. */
Test(cli_train, bad_checkpoints_are_refused)
{
    small_checkpoint();
    loom_st *ck = loom_st_new();
    cr_assert_eq(loom_checkpoint_read(ck, tp("ck.safetensors")), LOOM_OK, "%s", loom_st_error(ck));
    cr_assert(loom_st_meta(ck, "loom.model") && loom_st_meta(ck, "loom.vocab") && loom_st_get(ck, "rnn.weight_hh_l0") &&
              loom_st_get(ck, "optim.m.decoder.weight") && loom_st_get(ck, "state.1"));
    /* a flipped bit in a weight */
    ((float *)loom_st_get(ck, "decoder.bias")->data)[0] += 1e-3f;
    cr_assert_eq(loom_st_write(ck, tp("bad.safetensors")), LOOM_OK);
    loom_st_free(ck);
    char *res[] = {"--data", (char *)tp("text.txt"), "--resume", (char *)tp("bad.safetensors"), "--steps", "9",
                   "--generate", "0", "--save", (char *)tp("w.safetensors")};
    cr_assert_eq(cmd_train(10, res), 2);
    cr_assert_neq(access(tp("w.safetensors"), F_OK), 0, "nothing is written when the resume is refused");
    ck = loom_st_new();
    cr_assert_eq(loom_checkpoint_read(ck, tp("bad.safetensors")), LOOM_ERR_FORMAT);
    cr_assert(strstr(loom_st_error(ck), "checksum mismatch"), "%s", loom_st_error(ck));
    /* truncated */
    FILE *in = fopen(tp("ck.safetensors"), "rb"), *out = fopen(tp("bad.safetensors"), "wb");
    char buf[600];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got, out);
    fclose(in), fclose(out);
    cr_assert_neq(loom_checkpoint_read(ck, tp("bad.safetensors")), LOOM_OK);
    char *res_cut[] = {"--data", (char *)tp("text.txt"), "--resume", (char *)tp("bad.safetensors"), "--steps", "9", "--generate", "0"};
    cr_assert_eq(cmd_train(8, res_cut), 2); /* tp() has 4 buffers: res's names are stale by now */
    /* a plain safetensors file (no checksum) */
    loom_st *plain = loom_st_new();
    float z = 0;
    loom_st_add(plain, "x", LOOM_F32, loom_shape0(), &z);
    cr_assert_eq(loom_st_write(plain, tp("bad.safetensors")), LOOM_OK);
    cr_assert_eq(loom_checkpoint_read(ck, tp("bad.safetensors")), LOOM_ERR_FORMAT);
    cr_assert(strstr(loom_st_error(ck), "not a loom checkpoint"), "%s", loom_st_error(ck));
    /* --init with weights that do not fit */
    char *init[] = {"--data", (char *)tp("text.txt"), "--hidden", "8", "--init", (char *)tp("bad.safetensors"), "--steps", "2",
                    "--generate", "0"};
    cr_assert_eq(cmd_train(10, init), 2);
    /* a description, correctly checksummed, that does not describe the
     * weights (a hidden size past the limit; one whose weights would take
     * 270 MB) is refused before any weight is allocated */
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(loom_checkpoint_read(ck, tp("ck.safetensors")), LOOM_OK);
        const char *model = loom_st_meta(ck, "loom.model"), *h = strstr(model, "\"hidden\":8,");
        cr_assert(h, "%s", model);
        char cfg[2048];
        snprintf(cfg, sizeof cfg, "%.*s\"hidden\":%s,%s", (int)(h - model), model, k ? "4096" : "65536",
                 h + strlen("\"hidden\":8,"));
        cr_assert_eq(loom_st_set_meta(ck, "loom.model", cfg), LOOM_OK);
        cr_assert_eq(loom_checkpoint_write(ck, tp("bad.safetensors")), LOOM_OK);
        char *gen[] = {"--load", (char *)tp("bad.safetensors"), "--length", "3"};
        cr_assert_eq(cmd_generate(4, gen), 2);
        cr_assert_eq(cmd_eval(2, gen), 2);
        char *res2[] = {"--data", (char *)tp("text.txt"), "--resume", (char *)tp("bad.safetensors"), "--steps", "9", "--generate", "0"};
        cr_assert_eq(cmd_train(8, res2), 2);
    }
    loom_st_free(plain);
    loom_st_free(ck);
}

/* f's copy at tp(name) with metadata key k set to v, checksummed again (a
 * forged checkpoint: integrity holds, the number is what an attacker or a
 * bug chose). */
static const char *forge(const char *from, const char *name, const char *k, const char *v)
{
    loom_st *ck = loom_st_new();
    cr_assert_eq(loom_checkpoint_read(ck, from), LOOM_OK, "%s", loom_st_error(ck));
    cr_assert_eq(loom_st_set_meta(ck, k, v), LOOM_OK);
    const char *path = tp(name);
    cr_assert_eq(loom_checkpoint_write(ck, path), LOOM_OK);
    loom_st_free(ck);
    return path;
}

/* Every number read from a checkpoint is range-checked: negative, huge
 * (signed overflow) or non-numeric positions, steps and counters are
 * refused with exit 2 (a negative seq2seq position read out of bounds; "abc"
 * was read as step 0). */
Test(cli_train, forged_numbers_are_refused)
{
    small_checkpoint();
    static const char *const bad[][2] = {
        {"loom.step", "-7"},          {"loom.step", "abc"},        {"loom.step", "9223372036854775807"},
        {"loom.step", " 3"},          {"loom.epoch", "9223372036854775807"}, {"loom.epoch", "-1"},
        {"loom.batch", "9223372036854775807"}, {"loom.batch", "-3"}, {"loom.plan_runs", "-1"},
        {"loom.plan_runs", "1e9"},    {"loom.optim_steps", "9223372036854775807"}, {"loom.optim_steps", "-2"}};
    char ck[600];
    snprintf(ck, sizeof ck, "%s", tp("ck.safetensors"));
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *f = forge(ck, "forged.safetensors", bad[i][0], bad[i][1]);
        char *res[] = {"--data", (char *)tp("text.txt"), "--resume", (char *)f, "--steps", "9", "--generate", "0"};
        cr_assert_eq(cmd_train(8, res), 2, "%s = %s is refused", bad[i][0], bad[i][1]);
    }
    /* forged sizes are refused before anything is built: a seq_len past the flag's limit, or one the text
     * cannot fill (it built a 10^6-step model first: 68 s, 5.2 GB) */
    for (int k = 0; k < 2; k++) {
        loom_st *f = loom_st_new();
        cr_assert_eq(loom_checkpoint_read(f, ck), LOOM_OK);
        const char *model = loom_st_meta(f, "loom.model"), *at = strstr(model, "\"steps\":5,");
        cr_assert(at, "%s", model);
        const char *big = k ? "1000000" : "100001";
        char cfg[2048];
        snprintf(cfg, sizeof cfg, "%.*s\"steps\":%s,%s", (int)(at - model), model, big, at + strlen("\"steps\":5,"));
        cr_assert_eq(loom_st_set_meta(f, "loom.model", cfg), LOOM_OK);
        cr_assert_eq(loom_checkpoint_write(f, tp("big.ckpt")), LOOM_OK);
        loom_st_free(f);
        char *res[] = {"--resume", (char *)tp("big.ckpt"), "--data", (char *)tp("text.txt"), "--steps", "9", "--generate", "0"};
        double t0 = tool_now();
        cr_assert_eq(cmd_train(8, res), 2, "seq_len %s", big);
        cr_assert_lt(tool_now() - t0, 5.0, "seq_len %s is refused at once", big);
    }
    /* NaN weights (a run that diverged): refused, not "perplexity -nan" with exit 0 or garbage text */
    loom_st *nan_ck = loom_st_new();
    cr_assert_eq(loom_checkpoint_read(nan_ck, ck), LOOM_OK);
    ((float *)loom_st_get(nan_ck, "rnn.weight_hh_l0")->data)[3] = NAN;
    cr_assert_eq(loom_checkpoint_write(nan_ck, tp("nan.ckpt")), LOOM_OK);
    loom_st_free(nan_ck);
    char *gen[] = {"--load", (char *)tp("nan.ckpt"), "--length", "3"};
    cr_assert_eq(cmd_generate(4, gen), 2);
    char *ev[] = {"--load", (char *)tp("nan.ckpt"), "--data", (char *)tp("text.txt")};
    cr_assert_eq(cmd_eval(4, ev), 2);
    char *res_nan[] = {"--resume", (char *)tp("nan.ckpt"), "--data", (char *)tp("text.txt"), "--steps", "9", "--generate", "0"};
    cr_assert_eq(cmd_train(8, res_nan), 2);
    char *init_nan[] = {"--init", (char *)tp("nan.ckpt"), "--data", (char *)tp("text.txt"), "--hidden", "8", "--steps", "1",
                        "--generate", "0"};
    cr_assert_eq(cmd_train(10, init_nan), 2);
    /* an encoder–decoder's position, step and generator state */
    char *make[] = {"--task", "reverse", "--seq-len", "4", "--pairs", "40", "--hidden", "8", "--embed", "4", "--batch", "4",
                    "--steps", "3", "--eval-pairs", "4", "--threads", "1", "--save", (char *)tp("s2s.ckpt")};
    cr_assert_eq(cmd_train(20, make), 0);
    snprintf(ck, sizeof ck, "%s", tp("s2s.ckpt"));
    static const char *const bad2[][2] = {{"loom.pos", "-7"},   {"loom.pos", "9223372036854775807"}, {"loom.step", "x"},
                                          {"loom.rng", "zz"},   {"loom.rng", "12345678901234567"},   {"loom.plan_runs", "-5"}};
    for (unsigned i = 0; i < sizeof bad2 / sizeof *bad2; i++) {
        const char *f = forge(ck, "forged.ckpt", bad2[i][0], bad2[i][1]);
        char *res[] = {"--resume", (char *)f, "--steps", "5", "--threads", "1"};
        cr_assert_eq(cmd_train(6, res), 2, "%s = %s is refused", bad2[i][0], bad2[i][1]);
    }
}

/* Generation (on loom_search, the translations' decoder): top-k 1, a
 * vanishing top-p and a beam of width 1 are all greedy; sampling is
 * seeded, and another seed draws another text; a beam gives valid tokens,
 * and the generator grows to its width and back. */
Test(lm, generation_strategies_agree_where_they_must)
{
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    loom_lm_opts o = {.cell = &loom_cell_gru, .vocab = 7, .embed = 5, .hidden = 6, .steps = 3, .batch = 2};
    loom_lm_build(g, &lm, &o);
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 11);
    loom_error lerr = {0};
    loom_generator *gen = loom_generator_new(&o, s, &lerr);
    cr_assert(gen, "%s", lerr.msg);
    int32_t prefix[3] = {1, 2, 3}, greedy[12], other[12];
    cr_assert_eq(loom_generate(gen, prefix, 3, 12, NULL, greedy, &lerr), 12, "%s", lerr.msg);
    loom_search_opts same[] = {{.temperature = 1, .top_k = 1}, {.temperature = 1, .top_p = 1e-9}, {.beam = 1}};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(loom_generate(gen, prefix, 3, 12, &same[k], other, &lerr), 12, "%s", lerr.msg);
        cr_assert_arr_eq(other, greedy, sizeof greedy, "strategy %d is greedy", k);
    }
    int32_t a[12], b[12];
    loom_generate(gen, prefix, 3, 12, &(loom_search_opts){.temperature = 1.5, .seed = 4}, a, &lerr);
    loom_generate(gen, prefix, 3, 12, &(loom_search_opts){.temperature = 1.5, .seed = 4}, b, &lerr);
    cr_assert_arr_eq(a, b, sizeof a, "the same seed samples the same text");
    loom_generate(gen, prefix, 3, 12, &(loom_search_opts){.temperature = 1.5, .seed = 5}, b, &lerr);
    cr_assert(memcmp(a, b, sizeof a), "another seed, another text");
    cr_assert_eq(loom_generate(gen, prefix, 3, 12, &(loom_search_opts){.beam = 5}, other, &lerr), 12, "%s", lerr.msg);
    for (int i = 0; i < 12; i++) cr_assert(other[i] >= 0 && other[i] < 7);
    cr_assert_eq(loom_generate(gen, prefix, 3, 12, NULL, other, &lerr), 12, "%s", lerr.msg);
    cr_assert_arr_eq(other, greedy, sizeof greedy, "greedy again after the beam");
    cr_assert_eq(loom_generate(gen, prefix, 0, 5, NULL, other, &lerr), -1, "a prefix is needed");
    loom_generator_free(gen);
    loom_store_free(s);
    loom_graph_free(g);
}

Test(cli_train, generate_and_eval_a_checkpoint)
{
    small_checkpoint();
    char *gen[] = {"--load", (char *)tp("ck.safetensors"), "--prefix", "ab", "--length", "20", "--beam", "3"};
    cr_assert_eq(cmd_generate(8, gen), 0);
    char *gen2[] = {"--load", (char *)tp("ck.safetensors"), "--top-p", "0.9", "--top-k", "4"};
    cr_assert_eq(cmd_generate(6, gen2), 0);
    char *ev[] = {"--load", (char *)tp("ck.safetensors"), "--data", (char *)tp("text.txt")};
    cr_assert_eq(cmd_eval(4, ev), 0);
    char *bad1[] = {"--prefix", "x"}, *bad2[] = {"--load", (char *)tp("text.txt")}, *bad3[] = {"--load", (char *)tp("ck.safetensors"), "--beam", "0"};
    cr_assert_eq(cmd_generate(2, bad1), 2, "--load is required");
    cr_assert_eq(cmd_generate(2, bad2), 2, "a text is not a checkpoint");
    cr_assert_eq(cmd_generate(4, bad3), 2);
    cr_assert_eq(cmd_eval(2, bad2), 2);
}

/* The synthetic tasks train through the command: the adding problem at a
 * short T is learnt (held-out MSE far under the 0.167 of predicting the
 * mean); the copy task runs; bad task names are refused. */
Test(cli_train, synthetic_tasks)
{
    char *adding[] = {"--task", "adding", "--cell", "gru", "--seq-len", "10", "--hidden", "32", "--batch", "32", "--steps", "400",
                      "--eval-every", "400", "--lr", "0.01", "--metrics", (char *)tp("m1.csv"), "--threads", "1"};
    cr_assert_eq(cmd_train(20, adding), 0);
    FILE *f = fopen(tp("m1.csv"), "r");
    char line[256], last[256] = "";
    while (fgets(line, sizeof line, f)) strcpy(last, line);
    fclose(f);
    double mse = atof(strchr(strchr(strchr(strchr(last, ',') + 1, ',') + 1, ',') + 1, ',') + 1);
    cr_assert_lt(mse, 0.02, "held-out MSE %g after 400 steps", mse);
    char *copy[] = {"--task", "copy", "--seq-len", "5", "--hidden", "16", "--batch", "8", "--steps", "5"};
    cr_assert_eq(cmd_train(10, copy), 0);
    char *bad[] = {"--task", "sort"};
    cr_assert_eq(cmd_train(2, bad), 2);
}

/* loom plot: one curve per metrics file, SVG or PNG by the extension. */
Test(cli_train, plot_curves)
{
    const char *csv[2] = {tp("m1.csv"), tp("m2.csv")};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(csv[k], "w");
        fprintf(f, "step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity\n");
        for (int s = 1; s <= 50; s++) fprintf(f, "%d,%.4f,%.4f,0.1,0.01,1000,%s\n", s, 3.0 / s, exp(3.0 / s), s % 10 ? "" : "2.5");
        fclose(f);
    }
    if (!loom_plot_available()) return;
    char *svg[] = {(char *)csv[0], (char *)csv[1], "--labels", "RNN,LSTM", "--title", "test", "-o", (char *)tp("w.safetensors")};
    cr_assert_eq(cmd_plot(8, svg), 2, "an unknown extension is refused");
    char out[128];
    snprintf(out, sizeof out, "%s/curves.svg", tdir);
    svg[7] = out;
    cr_assert_eq(cmd_plot(8, svg), 0);
    FILE *f = fopen(out, "r");
    char head[512] = "";
    cr_assert(f && fread(head, 1, sizeof head - 1, f) > 0);
    fclose(f);
    cr_assert(strstr(head, "<svg"), "an SVG: %s", head);
    unlink(out);
    snprintf(out, sizeof out, "%s/curves.png", tdir);
    char *png[] = {(char *)csv[0], "--log", "--column", "loss", "-o", out};
    cr_assert_eq(cmd_plot(6, png), 0);
    unsigned char sig[8];
    f = fopen(out, "rb");
    cr_assert(f && fread(sig, 1, 8, f) == 8 && !memcmp(sig, "\x89PNG\r\n\x1a\n", 8));
    fclose(f);
    unlink(out);
    char *badcol[] = {(char *)csv[0], "--column", "accuracy", "-o", out};
    cr_assert_eq(cmd_plot(5, badcol), 2, "a missing column is refused");
    loom_error err = {0};
    cr_assert_eq(loom_plot(&(loom_plot_opts){.files = (const char *[]){csv[0]}, .n = 1, .column = "accuracy"}, out, &err),
                 LOOM_ERR_FORMAT);
    cr_assert(strstr(err.msg, "accuracy"), "%s", err.msg);
    char *none[] = {"-o", out};
    cr_assert_eq(cmd_plot(2, none), 2);

    /* gradient norms along t: curves by state, rows chosen by --where, zeros off a log axis */
    const char *norms = tp("norms.csv");
    f = fopen(norms, "w");
    fprintf(f, "%s\n", LOOM_STATE_NORMS_COLUMNS);
    for (int t = 1; t <= 20; t++)
        fprintf(f, "%d,0,forward,h,%g,%g\n%d,0,forward,c,%g,%g\n", t, t < 5 ? 0.0 : exp(t - 20.0), exp(t - 20.0), t, 0.5, 0.5);
    fclose(f);
    snprintf(out, sizeof out, "%s/norms.png", tdir);
    char *by_t[] = {(char *)norms, "--x", "t", "--log", "--where", "state=h", "--column", "norm", "-o", out};
    cr_assert_eq(cmd_plot(10, by_t), 0);
    char *nothing[] = {(char *)norms, "--x", "t", "--where", "state=q", "-o", out};
    cr_assert_eq(cmd_plot(7, nothing), 2, "no rows where asked");
    char *nocol[] = {(char *)norms, "--x", "t", "--where", "layers=0", "-o", out};
    cr_assert_eq(cmd_plot(7, nocol), 2, "a --where column the file lacks");
    char *badwhere[] = {(char *)norms, "--x", "t", "--where", "state", "-o", out};
    cr_assert_eq(cmd_plot(7, badwhere), 2, "--where needs C=V");
    char *both[] = {(char *)norms, "--log", "--linear", "-o", out};
    cr_assert_eq(cmd_plot(5, both), 2, "--log and --linear refused together");
    unlink(out);
    err = (loom_error){0};
    cr_assert_eq(loom_plot(&(loom_plot_opts){.files = (const char *[]){norms}, .n = 1, .x = "t", .where = "state=q"}, out, &err),
                 LOOM_ERR_FORMAT);
    cr_assert(strstr(err.msg, "where asked"), "%s", err.msg);
}

/* Curves from arrays on log–log axes (Zipf's law): the picture is
 * written, its x axis in decades; bad arguments refused. */
Test(plot, series_on_log_axes)
{
    double x[100], y[100], y2[100];
    for (int i = 0; i < 100; i++) x[i] = i + 1, y[i] = 1000 / x[i], y2[i] = 100 / sqrt(x[i]);
    loom_series s[2] = {{"s = 1", x, y, 100}, {"s = 0.5", x, y2, 100}};
    const char *out = tp("zipf.svg");
    loom_error err = {0};
    cr_assert_eq(loom_plot_series(s, 2, &(loom_plot_opts){.log_x = true, .log_y = true, .xlabel = "rank"}, out, &err), LOOM_OK,
                 "%s", err.msg);
    char *svg = slurp(out);
    cr_assert(strstr(svg, "<svg"), "an SVG");
    free(svg);
    cr_assert_eq(loom_plot_series(s, 0, NULL, out, &err), LOOM_ERR_ARG);
    cr_assert_eq(loom_plot_series(s, 2, NULL, tp("zipf.gif"), &err), LOOM_ERR_ARG);
}

/* ---- BLEU: NLTK's corpus_bleu / sentence_bleu and d2l's bleu() ---- */

enum { BLEU_MAX_SENT = 8, BLEU_MAX_REFS = 4, BLEU_MAX_LEN = 64 };

typedef struct {
    char kind[16];
    int max_n, n;
    double want;
    int32_t tok[BLEU_MAX_SENT][1 + BLEU_MAX_REFS][BLEU_MAX_LEN];
    loom_tokens hyp[BLEU_MAX_SENT], ref[BLEU_MAX_SENT][BLEU_MAX_REFS];
    const loom_tokens *refs[BLEU_MAX_SENT];
    int n_refs[BLEU_MAX_SENT];
} bleu_case;

/* Reads the next case of tests/golden/bleu.txt (see make_bleu.py); false at the end. */
static bool read_bleu_case(FILE *f, bleu_case *c)
{
    memset(c, 0, sizeof *c);
    if (fscanf(f, " case %15s %d %lf", c->kind, &c->max_n, &c->want) != 3) return false;
    char tag[8];
    while (fscanf(f, " %7s", tag) == 1 && strcmp(tag, "end")) {
        bool h = !strcmp(tag, "h");
        cr_assert(h || !strcmp(tag, "r"), "bleu.txt: unexpected '%s'", tag);
        if (h) c->n++;
        int i = c->n - 1, r = h ? 0 : 1 + c->n_refs[i], len;
        cr_assert(i >= 0 && i < BLEU_MAX_SENT && r <= BLEU_MAX_REFS && fscanf(f, "%d", &len) == 1 && len <= BLEU_MAX_LEN);
        for (int k = 0; k < len; k++) cr_assert_eq(fscanf(f, "%d", &c->tok[i][r][k]), 1);
        loom_tokens t = {c->tok[i][r], len};
        if (h) c->hyp[i] = t, c->refs[i] = c->ref[i];
        else c->ref[i][c->n_refs[i]++] = t;
    }
    return true;
}

Test(bleu, matches_nltk_and_d2l)
{
    FILE *f = fopen(LOOM_GOLDEN_DIR "/bleu.txt", "r");
    cr_assert(f, "tests/golden/bleu.txt: run tests/golden/make_bleu.py");
    bleu_case *c = malloc(sizeof *c);
    int cases = 0;
    while (read_bleu_case(f, c)) {
        double got = !strcmp(c->kind, "d2l") ? loom_bleu_d2l(c->hyp[0], c->ref[0][0], c->max_n)
                     : c->n == 1           ? loom_sentence_bleu(c->hyp[0], c->ref[0], c->n_refs[0], c->max_n)
                                           : loom_corpus_bleu(c->hyp, c->refs, c->n_refs, c->n, c->max_n);
        /* NLTK gives a tiny positive value instead of 0 when a precision is 0 */
        cr_assert(fabs(got - c->want) <= 1e-12 + 1e-12 * c->want, "case %d (%s BLEU-%d of %d): %.17g, want %.17g", cases,
                  c->kind, c->max_n, c->n, got, c->want);
        cases++;
    }
    cr_assert_geq(cases, 90);
    free(c);
    fclose(f);
}

/* d2l's worked example, by hand: "il est riche ." for "il est calme .":
 * unigrams 3/4, bigrams 1/3 → 0.75^(1/2) · (1/3)^(1/4) = 0.658. */
Test(bleu, worked_examples)
{
    int32_t pred[] = {0, 1, 2, 3}, label[] = {0, 1, 4, 3};
    loom_tokens p = {pred, 4}, l = {label, 4};
    cr_assert_float_eq(loom_bleu_d2l(p, l, 2), sqrt(0.75) * pow(1.0 / 3.0, 0.25), 1e-15);
    cr_assert_float_eq(loom_bleu_d2l(l, l, 4), 1.0, 1e-15);
    cr_assert_float_eq(loom_sentence_bleu(l, &l, 1, 4), 1.0, 1e-15);
    /* Papineni's clipping: "the the the the" against "the cat": unigram precision 1/4 */
    int32_t the[] = {7, 7, 7, 7}, ref[] = {7, 8};
    loom_tokens t = {the, 4}, r = {ref, 2};
    cr_assert_float_eq(loom_sentence_bleu(t, &r, 1, 1), 0.25, 1e-15);
    /* a shorter hypothesis pays the brevity penalty exp(1 − r/c) */
    loom_tokens half = {label, 2};
    cr_assert_float_eq(loom_sentence_bleu(half, &l, 1, 1), exp(1.0 - 4.0 / 2.0), 1e-15);
    /* nothing to score, bad arguments: 0 */
    loom_tokens empty = {NULL, 0};
    cr_assert_eq(loom_sentence_bleu(empty, &l, 1, 4), 0.0);
    cr_assert_eq(loom_sentence_bleu(l, &l, 1, 0), 0.0);
    cr_assert_eq(loom_corpus_bleu(&l, NULL, NULL, 1, 4), 0.0);
    cr_assert_eq(loom_bleu_d2l(empty, l, 2), 0.0);
}

/* An encoder–decoder with attention, dropout and scheduled sampling trains
 * through the trainer on loom_pair_batches, saves, and resumes bit for bit
 * (the pairs' order and draws, the dropout counter, Adam). */
typedef struct {
    loom_graph *g;
    loom_seq2seq m;
    loom_store *s;
    loom_trainer *t;
    loom_pair_batches *b;
} s2s_rig;

static void s2s_make(s2s_rig *r, const loom_pairs *p)
{
    r->g = loom_graph_new();
    loom_seq2seq_build(r->g, &r->m,
                       &(loom_seq2seq_opts){.cell = &loom_cell_gru, .src_vocab = loom_vocab_size(loom_pairs_vocab(p, 0)),
                                            .tgt_vocab = loom_vocab_size(loom_pairs_vocab(p, 1)), .embed = 6, .hidden = 8,
                                            .layers = 2, .dropout = 0.1f, .attention = LOOM_ATTN_ADDITIVE,
                                            .src_steps = loom_pairs_steps(p, 0), .tgt_steps = loom_pairs_steps(p, 1),
                                            .batch = 4, .sampled = true, .seed = 5});
    r->s = loom_store_new(r->g);
    loom_store_init(r->s, 5);
    loom_error err = {0};
    r->t = loom_trainer_new(r->g, r->s,
                            &(loom_trainer_opts){.loss = r->m.loss, .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .clip_norm = 1,
                                                 .seed = 5},
                            &err);
    cr_assert(r->t, "%s", err.msg);
    cr_assert(r->b = loom_pair_batches_new(p, 4, 0.7, 5));
    const loom_pair_batch *x = loom_pair_batches_buffers(r->b);
    loom_tensor in[6] = {r->m.src, r->m.src_len, r->m.dec_in, r->m.tgt, r->m.tgt_len, r->m.gold};
    const void *data[6] = {x->src, x->src_len, x->dec_in, x->tgt, x->tgt_len, x->gold};
    for (int i = 0; i < 6; i++) cr_assert_eq(loom_trainer_bind(r->t, in[i], data[i]), LOOM_OK, "%s", loom_trainer_error(r->t));
}

static void s2s_free(s2s_rig *r)
{
    loom_pair_batches_free(r->b), loom_trainer_free(r->t), loom_store_free(r->s), loom_graph_free(r->g);
}

Test(trainer, seq2seq_resumes_bit_for_bit)
{
    char *text = loom_task_reverse_pairs(30, 2, 5, 3);
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 6, .chars = true, .keep_order = true, .valid_frac = 0.1});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    free(text);
    s2s_rig a, b, c;
    double straight[16];
    s2s_make(&a, p);
    for (int k = 0; k < 16; k++) { /* 27 pairs in batches of 4: epochs turn over inside */
        loom_pair_batches_next(a.b);
        loom_train_step s;
        cr_assert_eq(loom_trainer_step(a.t, &s), LOOM_OK, "%s", loom_trainer_error(a.t));
        straight[k] = s.loss;
    }
    s2s_make(&b, p);
    for (int k = 0; k < 9; k++) loom_pair_batches_next(b.b), loom_trainer_step(b.t, NULL);
    loom_st *f = loom_st_new();
    cr_assert(loom_pair_batches_save(b.b, f));
    cr_assert_eq(loom_trainer_save(b.t, f), LOOM_OK);
    s2s_make(&c, p);
    cr_assert(loom_pair_batches_restore(c.b, f));
    cr_assert_eq(loom_trainer_restore(c.t, f), LOOM_OK, "%s", loom_trainer_error(c.t));
    for (int k = 9; k < 16; k++) {
        loom_pair_batches_next(c.b);
        loom_train_step s;
        cr_assert_eq(loom_trainer_step(c.t, &s), LOOM_OK);
        cr_assert_eq(s.loss, straight[k], "step %d: %.9g resumed, %.9g straight", k + 1, s.loss, straight[k]);
    }
    /* a damaged order is refused and changes nothing */
    loom_st_tensor *order = (loom_st_tensor *)loom_st_get(f, "data.order");
    ((int32_t *)order->data)[0] = ((int32_t *)order->data)[1];
    cr_assert(!loom_pair_batches_restore(c.b, f), "not a permutation");
    loom_st_free(f);
    s2s_free(&a), s2s_free(&b), s2s_free(&c);
    loom_pairs_free(p);
}

/* ---- models as data, the checkpoint schema (loom/model.h) ---- */

static void same_json_twice(const loom_model_desc *m)
{
    char *a = loom_model_json(m);
    cr_assert(a);
    loom_model_desc back;
    loom_error err = {0};
    cr_assert_eq(loom_model_parse(a, &back, &err), LOOM_OK, "%s: %s", a, err.msg);
    cr_assert_eq(back.kind, m->kind);
    char *b = loom_model_json(&back);
    cr_assert_str_eq(a, b, "the description survives JSON");
    free(a), free(b);
}

Test(model, descriptions_go_to_json_and_back)
{
    loom_model_desc lm = {.kind = LOOM_MODEL_LM,
                          .lm = {.cell = &mgu_cell, .vocab = 28, .embed = 8, .hidden = 64, .layers = 2, .dropout = 0.25f,
                                 .steps = 35, .batch = 32, .seed = 7, .trunc = LOOM_TRUNC_RANDOM, .truncate = 5,
                                 .stacking = LOOM_STACK_HIGHWAY, .tie_weights = true, .variational = true, .state_dropout = 0.25f,
                                 .weight_drop = 0.5f, .zoneout = 0.125f, .dropout_embed = 0.1f}};
    loom_model_desc s2s = {.kind = LOOM_MODEL_SEQ2SEQ,
                           .seq2seq = {.cell = &loom_cell_gru, .src_vocab = 100, .tgt_vocab = 90, .embed = 32, .hidden = 64,
                                       .layers = 2, .bidirectional = true, .dropout = 0.1f, .attention = LOOM_ATTN_DOT,
                                       .src_steps = 10, .tgt_steps = 12, .batch = 64, .sampled = true, .seed = 3,
                                       .stacking = LOOM_STACK_RESIDUAL, .dec_layers = 4}};
    loom_model_desc copy = {.kind = LOOM_MODEL_COPY,
                            .task = {.kind = LOOM_MODEL_COPY, .cell = &loom_cell_lstm, .steps = 50, .batch = 16, .hidden = 32, .layers = 1,
                                     .stacking = LOOM_STACK_DENSE}};
    loom_model_desc order = {.kind = LOOM_MODEL_ORDER,
                             .task = {.kind = LOOM_MODEL_ORDER, .cell = &loom_cell_gru, .steps = 100, .batch = 16, .hidden = 32,
                                      .layers = 2, .bidirectional = true, .pool = LOOM_POOL_MEAN, .unit_forget_bias = true}};
    loom_model_desc tag = {.kind = LOOM_MODEL_TAG,
                           .task = {.kind = LOOM_MODEL_TAG, .cell = &loom_cell_lstm, .steps = 20, .batch = 8, .hidden = 16,
                                    .layers = 1, .bidirectional = true, .vocab = 500, .embed = 32, .classes = 12}};
    cr_assert_eq(loom_cell_register(&mgu_cell), LOOM_OK); /* a user's cell is described by its name */
    same_json_twice(&lm), same_json_twice(&s2s), same_json_twice(&copy), same_json_twice(&order), same_json_twice(&tag);
    loom_model_desc back;
    char *j = loom_model_json(&lm);
    loom_model_parse(j, &back, NULL);
    cr_assert_eq(back.lm.cell, &mgu_cell);
    cr_assert(back.lm.vocab == 28 && back.lm.layers == 2 && back.lm.trunc == LOOM_TRUNC_RANDOM && back.lm.truncate == 5 &&
              back.lm.stacking == LOOM_STACK_HIGHWAY && back.lm.tie_weights && back.lm.variational &&
              back.lm.state_dropout == 0.25f && back.lm.weight_drop == 0.5f && back.lm.zoneout == 0.125f &&
              back.lm.dropout_embed == 0.1f);
    cr_assert(strstr(j, "\"stacking\":\"highway\""), "by name: %s", j);
    free(j);
    j = loom_model_json(&s2s);
    loom_model_parse(j, &back, NULL);
    cr_assert(back.seq2seq.layers == 2 && back.seq2seq.dec_layers == 4, "%s", j);
    free(j);
    j = loom_model_json(&order);
    cr_assert(strstr(j, "\"kind\":\"temporal-order\"") && strstr(j, "\"pool\":\"mean\""), "%s", j);
    loom_model_parse(j, &back, NULL);
    cr_assert(back.task.bidirectional && back.task.pool == LOOM_POOL_MEAN && back.task.kind == LOOM_MODEL_ORDER &&
              back.task.unit_forget_bias);
    free(j);
    j = loom_model_json(&tag);
    loom_model_parse(j, &back, NULL);
    cr_assert(back.task.vocab == 500 && back.task.embed == 32 && back.task.classes == 12 && back.task.bidirectional, "%s", j);
    free(j);
    lm.lm.stacking = LOOM_STACK_PLAIN, lm.lm.tie_weights = lm.lm.variational = false; /* as before these were known */
    lm.lm.state_dropout = lm.lm.weight_drop = lm.lm.zoneout = lm.lm.dropout_embed = 0;
    j = loom_model_json(&lm);
    cr_assert(!strstr(j, "stacking") && !strstr(j, "tie_weights") && !strstr(j, "zoneout") && !strstr(j, "variational"), "%s", j);
    loom_model_parse(j, &back, NULL);
    cr_assert_eq(back.lm.stacking, LOOM_STACK_PLAIN);
    free(j);
    loom_train_desc t = {.optim = {.kind = LOOM_OPT_ADAMW, .lr = 0.003f, .weight_decay = 0.01f},
                         .schedule = {.kind = LOOM_SCHED_COSINE, .total = 600, .warmup = 20},
                         .clip_norm = 1, .trunc = LOOM_TRUNC_FIXED, .truncate = 5, .sequential = true, .teacher_forcing = 1, .seed = 2};
    char *tj = loom_train_desc_json(&t), *tj2;
    loom_train_desc tb;
    cr_assert_eq(loom_train_desc_parse(tj, &tb, NULL), LOOM_OK, "%s", tj);
    cr_assert(strstr(tj, "\"optimizer\":\"adamw\"") && strstr(tj, "\"schedule\":\"cosine\""), "enums by name: %s", tj);
    cr_assert_str_eq(tj, tj2 = loom_train_desc_json(&tb));
    free(tj), free(tj2);
}

Test(model, bad_descriptions_are_refused_by_name)
{
    static const struct {
        const char *json, *says;
    } cases[] = {
        {"{\"kind\":\"lm\",\"cell\":\"nope\"}", "'cell'"},
        {"{\"kind\":\"transformer\"}", "'kind'"},
        {"{\"kind\":\"copy\",\"cell\":\"gru\",\"steps\":5,\"batch\":4,\"hidden\":1e9,\"layers\":1}", "'hidden' is out of range"},
        {"{\"kind\":\"copy\",\"cell\":\"gru\",\"steps\":5.5,\"batch\":4,\"hidden\":8,\"layers\":1}", "'steps' is out of range"},
        {"{\"kind\":\"copy\",\"cell\":\"gru\",\"batch\":4,\"hidden\":8,\"layers\":1}", "'steps' is missing"},
        {"[1,2]", "'kind'"},
        {"{\"kind\":\"sine\",\"cell\":\"gru\",\"steps\":400,\"batch\":4,\"hidden\":8,\"layers\":1}", "'steps' is more"},
        {"{\"kind\":\"temporal-order\",\"cell\":\"gru\",\"steps\":50,\"batch\":4,\"hidden\":8,\"layers\":1,\"pool\":\"max\"}",
         "'pool'"},
        {"{\"kind\":\"classify\",\"cell\":\"gru\",\"steps\":50,\"batch\":4,\"hidden\":8,\"layers\":1,\"vocab\":0,"
         "\"embed\":4,\"classes\":2}",
         "'vocab' is out of range"},
        {"{\"kind\":\"lm\",\"cell\":\"gru\",\"vocab\":5,\"embed\":4,\"hidden\":4,\"layers\":1,\"dropout\":0,\"steps\":3,"
         "\"batch\":2,\"seed\":1,\"truncation\":\"none\",\"truncate\":0,\"tie_weights\":3}", "'tie_weights'"},
        {"{\"kind\":\"copy\",\"cell\":\"gru\",\"steps\":5,\"batch\":4,\"hidden\":8,\"layers\":2,\"stacking\":\"diagonal\"}", "'stacking'"},
        {"not json", "is not a JSON object"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        loom_model_desc m;
        loom_error err = {0};
        cr_assert_eq(loom_model_parse(cases[i].json, &m, &err), LOOM_ERR_FORMAT, "%s", cases[i].json);
        cr_assert(strstr(err.msg, cases[i].says), "%s: %s", cases[i].json, err.msg);
    }
}

/* One schema: format 1 round trip; format 0 files (each kind's old
 * configuration) read into the same description; a newer format refused
 * by number. */
Test(model, checkpoints_of_every_format_describe_their_model)
{
    loom_model_desc m = {.kind = LOOM_MODEL_ADDING,
                         .task = {.kind = LOOM_MODEL_ADDING, .cell = &loom_cell_rnn_tanh, .steps = 20, .batch = 8, .hidden = 16, .layers = 1}};
    loom_train_desc t = {.optim = {.kind = LOOM_OPT_SGD, .lr = 0.5f}, .clip_norm = 1, .teacher_forcing = 1};
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_checkpoint_describe(f, &m, &t, "{}"), LOOM_OK);
    cr_assert_str_eq(loom_st_meta(f, "loom.format_version"), "1");
    loom_model_desc back;
    loom_train_desc tb;
    loom_error err = {0};
    cr_assert_eq(loom_checkpoint_model(f, &back, &tb, &err), LOOM_OK, "%s", err.msg);
    cr_assert(back.kind == LOOM_MODEL_ADDING && back.task.hidden == 16 && tb.optim.kind == LOOM_OPT_SGD && tb.optim.lr == 0.5f);
    loom_st_set_meta(f, "loom.format_version", "2");
    cr_assert_eq(loom_checkpoint_model(f, &back, &tb, &err), LOOM_ERR_FORMAT);
    cr_assert(strstr(err.msg, "newer loom (checkpoint format 2"), "%s", err.msg);
    loom_st_free(f);

    /* format 0, as loom train wrote them */
    loom_text *text = loom_text_new(NULL);
    loom_text_parse(text, "the time machine", 16);
    char *voc = loom_vocab_to_string(loom_text_vocab(text));
    int V = loom_vocab_size(loom_text_vocab(text));
    f = loom_st_new();
    loom_st_set_meta(f, "loom.vocab", voc);
    loom_st_set_meta(f, "loom.config",
                     "{\"cell\":\"gru\",\"hidden\":64,\"layers\":2,\"embed\":0,\"dropout\":0,\"seq_len\":35,\"batch\":32,"
                     "\"seed\":1,\"tokens\":\"char\",\"letters_only\":true,\"optimizer\":\"adam\",\"lr\":0.01,\"momentum\":0,"
                     "\"weight_decay\":0,\"schedule\":\"cosine\",\"warmup\":10,\"clip\":1,\"sampling\":\"sequential\"}");
    err = (loom_error){0};
    cr_assert_eq(loom_checkpoint_model(f, &back, &tb, &err), LOOM_OK, "%s", err.msg);
    cr_assert(back.kind == LOOM_MODEL_LM && back.lm.cell == &loom_cell_gru && back.lm.vocab == V && back.lm.layers == 2 &&
              back.lm.steps == 35 && back.lm.trunc == LOOM_TRUNC_NONE);
    cr_assert(tb.optim.kind == LOOM_OPT_ADAM && tb.schedule.kind == LOOM_SCHED_COSINE && tb.schedule.warmup == 10 &&
              tb.clip_norm == 1 && tb.sequential);
    loom_st_free(f);
    f = loom_st_new();
    loom_st_set_meta(f, "loom.src_vocab", voc), loom_st_set_meta(f, "loom.tgt_vocab", voc);
    loom_st_set_meta(f, "loom.seq2seq",
                     "{\"task\":\"reverse\",\"cell\":\"lstm\",\"embed\":8,\"hidden\":16,\"layers\":1,\"bidirectional\":true,"
                     "\"attention\":\"additive\",\"dropout\":0,\"src_steps\":7,\"tgt_steps\":7,\"batch\":4,\"seed\":1,"
                     "\"pairs\":200,\"min_len\":0,\"min_freq\":1,\"optimizer\":1,\"lr\":0.005,\"momentum\":0,"
                     "\"weight_decay\":0,\"clip\":1,\"schedule\":0,\"warmup\":0,\"teacher_forcing\":0.5}");
    cr_assert_eq(loom_checkpoint_model(f, &back, &tb, &err), LOOM_OK, "%s", err.msg);
    cr_assert(back.kind == LOOM_MODEL_SEQ2SEQ && back.seq2seq.src_vocab == V && back.seq2seq.bidirectional &&
              back.seq2seq.sampled && back.seq2seq.attention == LOOM_ATTN_ADDITIVE && tb.teacher_forcing == 0.5);
    loom_st_free(f);
    f = loom_st_new();
    loom_st_set_meta(f, "loom.task", "{\"task\":\"copy\",\"cell\":\"lstm\",\"seq_len\":5,\"batch\":16,\"hidden\":32,\"layers\":1,"
                                     "\"optimizer\":\"adam\",\"lr\":0.003,\"clip\":1,\"seed\":1}");
    cr_assert_eq(loom_checkpoint_model(f, &back, &tb, &err), LOOM_OK, "%s", err.msg);
    cr_assert(back.kind == LOOM_MODEL_COPY && back.task.steps == 5 && tb.optim.lr == 0.003f);
    loom_st_free(f);
    f = loom_st_new();
    err = (loom_error){0};
    cr_assert_eq(loom_checkpoint_model(f, &back, &tb, &err), LOOM_ERR_FORMAT);
    cr_assert(strstr(err.msg, "describes no model"), "%s", err.msg);
    loom_st_free(f);
    free(voc);
    loom_text_free(text);
}

Test(model, store_fits_names_what_does_not_fit)
{
    loom_graph *g = loom_graph_new();
    loom_task_model m;
    cr_assert_eq(loom_task_build(g, &m, &(loom_task_opts){.kind = LOOM_MODEL_ADDING, .cell = &loom_cell_gru, .steps = 4,
                                                           .batch = 2, .hidden = 3, .layers = 1}),
                 LOOM_OK, "%s", loom_graph_error(g));
    loom_store *s = loom_store_new(g);
    loom_st *f = loom_st_new();
    for (int i = 0; i < loom_store_count(s); i++)
        loom_st_add(f, loom_store_name(s, i), LOOM_F32, loom_tensor_shape(g, loom_store_tensor(s, i)),
                    loom_store_data(s, loom_store_tensor(s, i)));
    loom_error err = {0};
    cr_assert_eq(loom_store_fits(g, f, &err), LOOM_OK, "%s", err.msg);
    loom_st *bad = loom_st_new();
    for (int i = 0; i < loom_store_count(s); i++) {
        const char *name = loom_store_name(s, i);
        loom_shape sh = loom_tensor_shape(g, loom_store_tensor(s, i));
        if (!strcmp(name, "rnn.weight_hh_l0")) sh.d[0]++;
        float *z = calloc((size_t)loom_shape_numel(sh), sizeof *z);
        loom_st_add(bad, name, LOOM_F32, sh, z);
        free(z);
    }
    cr_assert_eq(loom_store_fits(g, bad, &err), LOOM_ERR_SHAPE);
    cr_assert(strstr(err.msg, "'rnn.weight_hh_l0' is not f32 of shape (9,3)"), "%s", err.msg);
    loom_st_free(f), loom_st_free(bad);
    loom_store_free(s);
    loom_graph_free(g);
}

/* The adding problem's model (loom_task_build) through the trainer: its
 * batches drawn from the step number, resumed bit for bit; its held-out
 * MSE and accuracy read through the evaluation outputs. */
typedef struct {
    loom_graph *g;
    loom_task_model m;
    loom_store *s;
    loom_trainer *t;
    void *x, *y;
} task_rig;

static void task_make(task_rig *r, const loom_task_opts *o)
{
    r->g = loom_graph_new();
    cr_assert_eq(loom_task_build(r->g, &r->m, o), LOOM_OK, "%s", loom_graph_error(r->g));
    r->s = loom_store_new(r->g);
    loom_store_init(r->s, 9);
    loom_error err = {0};
    r->t = loom_trainer_new(r->g, r->s,
                            &(loom_trainer_opts){.loss = r->m.loss, .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .clip_norm = 1,
                                                 .eval_outputs = &r->m.out, .n_eval_outputs = 1},
                            &err);
    cr_assert(r->t, "%s", err.msg);
    r->x = malloc(loom_task_x_bytes(o)), r->y = malloc(loom_task_y_bytes(o));
    loom_trainer_bind(r->t, r->m.x, r->x), loom_trainer_bind(r->t, r->m.y, r->y);
}

static void task_free(task_rig *r)
{
    loom_trainer_free(r->t), loom_store_free(r->s), loom_graph_free(r->g), free(r->x), free(r->y);
}

static loom_status task_batch(void *ctx, loom_trainer *t)
{
    task_rig *r = ctx;
    loom_task_batch(&r->m.o, 100, loom_trainer_steps(t), r->x, r->y);
    return LOOM_OK;
}

Test(trainer, adding_resumes_bit_for_bit)
{
    loom_task_opts o = {.kind = LOOM_MODEL_ADDING, .cell = &loom_cell_lstm, .steps = 8, .batch = 16, .hidden = 8, .layers = 1};
    task_rig a, b, c;
    task_make(&a, &o), task_make(&b, &o), task_make(&c, &o);
    cr_assert_eq(loom_trainer_fit(a.t, &(loom_fit_opts){.steps = 12, .ctx = &a, .next_batch = task_batch}), LOOM_OK);
    cr_assert_eq(loom_trainer_fit(b.t, &(loom_fit_opts){.steps = 5, .ctx = &b, .next_batch = task_batch}), LOOM_OK);
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_trainer_save(b.t, f), LOOM_OK);
    cr_assert_eq(loom_trainer_restore(c.t, f), LOOM_OK, "%s", loom_trainer_error(c.t));
    cr_assert_eq(loom_trainer_fit(c.t, &(loom_fit_opts){.steps = 12, .ctx = &c, .next_batch = task_batch}), LOOM_OK);
    for (int i = 0; i < loom_store_count(a.s); i++)
        cr_assert(!memcmp(loom_store_data(a.s, loom_store_tensor(a.s, i)), loom_store_data(c.s, loom_store_tensor(c.s, i)),
                          (size_t)loom_store_numel(a.s, i) * sizeof(float)),
                  "%s differs", loom_store_name(a.s, i));
    /* a trainer of another model refuses the checkpoint (the fingerprint) */
    task_rig d;
    loom_task_opts other = o;
    other.steps = 9;
    task_make(&d, &other);
    cr_assert_eq(loom_trainer_restore(d.t, f), LOOM_ERR_FORMAT);
    cr_assert(strstr(loom_trainer_error(d.t), "does not match"), "%s", loom_trainer_error(d.t));
    /* held out: MSE and accuracy */
    loom_task_batch(&o, 7, LOOM_TASK_HELD_OUT, a.x, a.y);
    loom_trainer_eval_begin(a.t);
    double mse;
    cr_assert_eq(loom_trainer_eval_batch(a.t, &mse), LOOM_OK);
    double acc = loom_task_accuracy(&o, loom_trainer_output(a.t, a.m.out), a.y, NULL);
    cr_assert(isfinite(mse) && mse > 0 && acc >= 0 && acc <= 1, "MSE %g, accuracy %g", mse, acc);
    loom_st_free(f);
    task_free(&a), task_free(&b), task_free(&c), task_free(&d);
}

/* A sine model (d2l 8.1) learns the series: its one-step forecasts of the
 * held-out points near the noise (MSE 0.04), its errors growing with the
 * horizon; a one-step forecast is the model's own prediction from the
 * window of observed points before it; bad horizons are refused. */
Test(task, sine_forecasts_worsen_with_the_horizon)
{
    loom_task_opts o = {.kind = LOOM_MODEL_SINE, .cell = &loom_cell_lstm, .steps = 8, .batch = 32, .hidden = 16, .layers = 1};
    task_rig a;
    task_make(&a, &o);
    cr_assert_eq(loom_trainer_fit(a.t, &(loom_fit_opts){.steps = 300, .ctx = &a, .next_batch = task_batch}), LOOM_OK);
    int ks[] = {1, 4, 64};
    float *pred = malloc(3 * LOOM_SINE_POINTS * sizeof *pred);
    double mse[3];
    cr_assert_eq(loom_task_forecast(a.t, &a.m, 100, ks, 3, pred, mse), LOOM_OK, "%s", loom_trainer_error(a.t));
    cr_assert(mse[0] < 0.06 && mse[0] < mse[1] && mse[1] < mse[2], "MSE %g %g %g", mse[0], mse[1], mse[2]);
    cr_assert(isnan(pred[LOOM_SINE_TRAIN - 1]) && !isnan(pred[LOOM_SINE_TRAIN]) && !isnan(pred[2 * LOOM_SINE_POINTS + 999]));
    /* x_700 one step ahead: the model on the 8 observed points x_692..x_699 */
    float series[LOOM_SINE_POINTS], *x = calloc(8 * 32, sizeof *x), *y = calloc(8 * 32, sizeof *y);
    loom_task_sine_series(100, LOOM_SINE_POINTS, series);
    for (int t = 0; t < 8; t++) x[t * 32 + 5] = series[692 + t];
    loom_trainer_bind(a.t, a.m.x, x), loom_trainer_bind(a.t, a.m.y, y);
    loom_trainer_eval_begin(a.t);
    double loss;
    cr_assert_eq(loom_trainer_eval_batch(a.t, &loss), LOOM_OK);
    cr_assert_float_eq(loom_trainer_output(a.t, a.m.out)[7 * 32 + 5], pred[700], 1e-6);
    cr_assert_eq(loom_task_forecast(a.t, &a.m, 100, (int[]){0}, 1, pred, mse), LOOM_ERR_ARG);
    cr_assert_eq(loom_task_forecast(a.t, &a.m, 100, (int[]){594}, 1, pred, mse), LOOM_ERR_ARG); /* no window before x_{j−k} */
    free(pred), free(x), free(y);
    task_free(&a);
}

/* The forecasts drawn: the series and a curve per horizon; no horizon, no picture. */
Test(task, forecast_plot)
{
    float *pred = malloc(2 * LOOM_SINE_POINTS * sizeof *pred);
    for (int i = 0; i < 2 * LOOM_SINE_POINTS; i++) pred[i] = i % LOOM_SINE_POINTS < LOOM_SINE_TRAIN ? NAN : 0.5f;
    char path[] = "/tmp/loom_forecast_XXXXXX.svg";
    close(mkstemps(path, 4));
    loom_error err = {0};
    cr_assert_eq(loom_task_forecast_plot(3, (int[]){1, 4}, 2, pred, path, &err), LOOM_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    char head[64] = "";
    cr_assert(f && fgets(head, sizeof head, f) && strstr(head, "<?xml"), "%s", head);
    fclose(f);
    unlink(path);
    cr_assert_eq(loom_task_forecast_plot(3, (int[]){1}, 0, pred, path, &err), LOOM_ERR_ARG);
    free(pred);
}

/* A classify model's lines: a tenth held out, or a valid file's; the
 * description a checkpoint keeps goes to JSON and back; a bad one is refused. */
Test(task, lines_and_their_description)
{
    char path[] = "/tmp/loom_lines_XXXXXX";
    FILE *f = fdopen(mkstemp(path), "w");
    for (int i = 0; i < 40; i++) fprintf(f, "%s\tword%d and more %d\n", i % 2 ? "odd" : "even", i, i);
    fclose(f);
    loom_task_data d = {.path = path, .steps = 6, .min_freq = 1, .seed = 3};
    loom_task_lines l;
    loom_error err = {0};
    cr_assert_eq(loom_task_lines_read(&l, LOOM_MODEL_CLASSIFY, &d, NULL, false, &err), LOOM_OK, "%s", err.msg);
    cr_assert(l.held == l.pairs && l.held_part && loom_pairs_count(l.pairs, false) == 36 && loom_pairs_count(l.pairs, true) == 4);
    cr_assert_eq(loom_vocab_size(loom_pairs_vocab(l.pairs, 1)), 3, "<unk>, even, odd");
    loom_task_lines w;
    cr_assert_eq(loom_task_lines_read(&w, LOOM_MODEL_CLASSIFY, &d, (const loom_vocab *const[]){loom_pairs_vocab(l.pairs, 0),
                                                                                                  loom_pairs_vocab(l.pairs, 1)},
                                      true, &err),
                 LOOM_OK, "%s", err.msg);
    cr_assert(!w.held_part && loom_pairs_count(w.held, false) == 40, "whole: every line, one part");
    loom_task_lines_free(&w);
    cr_assert_eq(loom_task_lines_read(&w, LOOM_MODEL_TAG, &d, NULL, false, &err), LOOM_ERR_VALUE, "a tag model reads tokens TAB tags");
    loom_task_lines_free(&w);
    d.valid = path, d.chars = true, d.min_freq = 2;
    char *j = loom_task_data_json(&d), paths[2 * 256];
    loom_task_data back = {.steps = 9};
    cr_assert_eq(loom_task_data_parse(j, &back, paths, 256, &err), LOOM_OK, "%s", err.msg);
    cr_assert(!strcmp(back.path, path) && !strcmp(back.valid, path) && back.chars && back.min_freq == 2 && back.steps == 9);
    free(j);
    cr_assert_eq(loom_task_data_parse("{\"path\":\"x\",\"tokens\":\"word\",\"min_freq\":0.5}", &back, paths, 256, &err),
                 LOOM_ERR_FORMAT);
    cr_assert_eq(loom_task_data_parse("{\"tokens\":\"word\",\"min_freq\":1}", &back, paths, 256, &err), LOOM_ERR_FORMAT);
    loom_task_lines_free(&l);
    unlink(path);
}

/* The temporal-order problem: a gated stack learns to classify what it saw
 * 5 and more steps before the end, far above chance (25%); both
 * directions and mean pooling build and train too. */
Test(task, temporal_order_is_learned)
{
    loom_task_opts o = {.kind = LOOM_MODEL_ORDER, .cell = &loom_cell_lstm, .steps = 10, .batch = 32, .hidden = 16, .layers = 1};
    task_rig a;
    task_make(&a, &o);
    cr_assert_eq(loom_trainer_fit(a.t, &(loom_fit_opts){.steps = 400, .ctx = &a, .next_batch = task_batch}), LOOM_OK);
    loom_task_batch(&o, 100, LOOM_TASK_HELD_OUT, a.x, a.y);
    loom_trainer_eval_begin(a.t);
    double loss;
    cr_assert_eq(loom_trainer_eval_batch(a.t, &loss), LOOM_OK);
    double acc = loom_task_accuracy(&o, loom_trainer_output(a.t, a.m.out), a.y, NULL);
    cr_assert(acc > 0.9, "accuracy %g, loss %g", acc, loss);
    task_free(&a);
    o.bidirectional = true, o.pool = LOOM_POOL_MEAN, o.layers = 2;
    task_make(&a, &o);
    cr_assert_eq(loom_trainer_fit(a.t, &(loom_fit_opts){.steps = 5, .ctx = &a, .next_batch = task_batch}), LOOM_OK);
    task_free(&a);
    /* the forget gates' bias at 1: bias_ih's rows [H, 2H), bias_hh's at 0 (task_make initialises with seed 9) */
    o.unit_forget_bias = true, o.layers = 1, o.bidirectional = false;
    task_make(&a, &o);
    const float *bih = loom_store_data_by_name(a.s, "rnn.bias_ih_l0");
    cr_assert(bih);
    for (int k = 16; k < 32; k++) cr_assert_eq(bih[k], 1.0f, "forget row %d", k);
    task_free(&a);
}

/* An encoder–decoder's held-out perplexity (loom_seq2seq_perplexity) is
 * exp of the model's own mean cross-entropy over the same pairs. */
Test(model, seq2seq_perplexity_is_exp_of_the_loss)
{
    char *text = loom_task_reverse_pairs(128, 2, 5, 4);
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 6, .chars = true, .keep_order = true});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    free(text);
    cr_assert_eq(loom_pairs_count(p, false), 128);
    loom_seq2seq_opts o = {.cell = &loom_cell_gru, .src_vocab = loom_vocab_size(loom_pairs_vocab(p, 0)),
                           .tgt_vocab = loom_vocab_size(loom_pairs_vocab(p, 1)), .embed = 5, .hidden = 7, .layers = 1,
                           .attention = LOOM_ATTN_DOT, .src_steps = 6, .tgt_steps = 6, .batch = 64};
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    cr_assert_eq(loom_seq2seq_build(g, &m, &o), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 2);
    loom_error err = {0};
    loom_trainer *t = loom_trainer_new(g, s, &(loom_trainer_opts){.loss = m.loss, .eval_only = true}, &err);
    cr_assert(t, "%s", err.msg);
    loom_pair_batches *b = loom_pair_batches_new(p, 64, 1, 1);
    const loom_pair_batch *x = loom_pair_batches_buffers(b);
    loom_tensor in[5] = {m.src, m.src_len, m.dec_in, m.tgt, m.tgt_len};
    const void *data[5] = {x->src, x->src_len, x->dec_in, x->tgt, x->tgt_len};
    for (int i = 0; i < 5; i++) loom_trainer_bind(t, in[i], data[i]);
    double nll = 0, tokens = 0;
    for (int k = 0; k < 2; k++) { /* 128 pairs: two whole batches */
        loom_pair_batches_rows(b, p, false, 64 * k);
        double loss, w = 0;
        cr_assert_eq(loom_trainer_eval_batch(t, &loss), LOOM_OK, "%s", loom_trainer_error(t));
        for (int r = 0; r < 64; r++) w += x->tgt_len[r];
        nll += loss * w, tokens += w;
    }
    double ppl;
    cr_assert_eq(loom_seq2seq_perplexity(&o, s, p, false, &ppl, &err), LOOM_OK, "%s", err.msg);
    cr_assert_float_eq(ppl, exp(nll / tokens), 1e-4 * ppl, "%g vs %g", ppl, exp(nll / tokens));
    cr_assert(ppl > 1 && ppl < 2 * o.tgt_vocab, "an untrained model: %g", ppl);
    loom_pair_batches_free(b), loom_trainer_free(t), loom_store_free(s), loom_graph_free(g), loom_pairs_free(p);
}
