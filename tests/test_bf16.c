/* bf16 products (LOOM_PRECISION_BF16): every product is the one of its
 * operands rounded to bfloat16 and summed in f32 — each transpose, a
 * parameter (packed once per run) or a computed operand, one matrix or a
 * batch, split across a team by rows or by columns — and stays so after
 * the parameter's values change and when it is bound to another buffer;
 * the team and one thread alone give the same bits; a language model's
 * loss and gradients are the f32 ones to bf16's rounding; the trainer keeps
 * its precision in checkpoints; a CPU without bf16 gets a refusal. */
#include "helpers.h"

#include <omp.h>

/* f32 → the nearest bfloat16 (ties to even), as a float. */
static float bf(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&x, &u, sizeof u);
    return x;
}

/* Checks C (m × n) against op(A)·op(B) of the rounded operands, in double:
 * within f32's summation error (k terms) of Σ|a||b|. Returns the largest
 * difference from the product of the operands as they are (unrounded), in
 * units of Σ|a||b| — nonzero only if the operands were really rounded. */
static double check_product(const float *c, bool ta, bool tb, int m, int n, int k, const float *a, const float *b, int batch_a)
{
    double worst_raw = 0;
    for (int q = 0; q < batch_a; q++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0, raw = 0, mag = 0;
                for (int p = 0; p < k; p++) {
                    float x = ta ? a[(int64_t)q * m * k + (int64_t)p * m + i] : a[(int64_t)q * m * k + (int64_t)i * k + p];
                    float y = tb ? b[(int64_t)j * k + p] : b[(int64_t)p * n + j];
                    s += (double)bf(x) * bf(y), raw += (double)x * y, mag += fabs((double)x * y);
                }
                double got = c[((int64_t)q * m + i) * n + j];
                cr_assert(fabs(got - s) <= 4e-7 * k * mag + 1e-30, "(%d, %d, %d): got %.9g, the rounded operands give %.9g", q, i,
                          j, got, s);
                if (mag > 0 && fabs(got - raw) / mag > worst_raw) worst_raw = fabs(got - raw) / mag;
            }
    return worst_raw;
}

enum { M = 67, K = 70, N = 45, NW = 300 };

typedef struct {
    loom_graph *g;
    loom_tensor x, y, z, wi, x3, w, v, wb;
    loom_tensor out[7];
    loom_plan *p;
    float *xv, *yv, *zv, *wiv, *x3v, *wv, *vv, *wbv;
} products;

/* Every kind of product a bf16 plan runs: parameters as B (packed) with
 * and without the transpose, computed operands as B, A transposed, a
 * batched A, and a wide product a team splits by columns. */
static void products_make(products *s, loom_precision prec)
{
    loom_graph *g = s->g = loom_graph_new();
    s->x = loom_input(g, "x", loom_shape2(M, K)), s->y = loom_input(g, "y", loom_shape2(K, M));
    s->z = loom_input(g, "z", loom_shape2(K, N)), s->wi = loom_input(g, "wi", loom_shape2(N, K));
    s->x3 = loom_input(g, "x3", loom_shape3(2, M, K));
    s->w = loom_param(g, "w", loom_shape2(N, K)), s->v = loom_param(g, "v", loom_shape2(K, N));
    s->wb = loom_param(g, "wb", loom_shape2(NW, K));
    s->out[0] = loom_matmul(g, s->x, s->w, false, true);  /* x·wᵀ, w packed */
    s->out[1] = loom_matmul(g, s->x, s->v, false, false); /* x·v, v packed */
    s->out[2] = loom_matmul(g, s->y, s->z, true, false);  /* yᵀ·z, both computed */
    s->out[3] = loom_matmul(g, s->x, s->wi, false, true); /* x·wiᵀ, wi an input */
    s->out[4] = loom_matmul(g, s->x3, s->w, false, true); /* a batch of two */
    s->out[5] = loom_matmul(g, s->y, s->w, true, true);   /* yᵀ·wᵀ */
    s->out[6] = loom_matmul(g, s->x, s->wb, false, true); /* wide: a team splits its columns */
    s->p = loom_plan_new(g, s->out, 7, &(loom_plan_opts){.precision = prec});
    cr_assert(s->p, "%s", loom_graph_error(g));
    s->xv = rnd_buf(M * K, -1, 1), s->yv = rnd_buf(K * M, -1, 1), s->zv = rnd_buf(K * N, -1, 1);
    s->wiv = rnd_buf(N * K, -1, 1), s->x3v = rnd_buf(2 * M * K, -1, 1), s->wv = rnd_buf(N * K, -1, 1);
    s->vv = rnd_buf(K * N, -1, 1), s->wbv = rnd_buf(NW * K, -1, 1);
    loom_binding b[] = {{s->x, s->xv}, {s->y, s->yv}, {s->z, s->zv}, {s->wi, s->wiv},
                        {s->x3, s->x3v}, {s->w, s->wv}, {s->v, s->vv}, {s->wb, s->wbv}};
    cr_assert_eq(loom_bind_all(s->p, b, 8), LOOM_OK);
}

static void products_free(products *s)
{
    loom_plan_free(s->p);
    loom_graph_free(s->g);
    free(s->xv), free(s->yv), free(s->zv), free(s->wiv), free(s->x3v), free(s->wv), free(s->vv), free(s->wbv);
}

/* Checks every product the last run made; the smallest "raw" difference:
 * how far the least-rounded product is from the unrounded one. */
static double products_verify(products *s)
{
    double r[7] = {
        check_product(loom_plan_output(s->p, s->out[0]), false, true, M, N, K, s->xv, s->wv, 1),
        check_product(loom_plan_output(s->p, s->out[1]), false, false, M, N, K, s->xv, s->vv, 1),
        check_product(loom_plan_output(s->p, s->out[2]), true, false, M, N, K, s->yv, s->zv, 1),
        check_product(loom_plan_output(s->p, s->out[3]), false, true, M, N, K, s->xv, s->wiv, 1),
        check_product(loom_plan_output(s->p, s->out[4]), false, true, M, N, K, s->x3v, s->wv, 2),
        check_product(loom_plan_output(s->p, s->out[5]), true, true, M, N, K, s->yv, s->wv, 1),
        check_product(loom_plan_output(s->p, s->out[6]), false, true, M, NW, K, s->xv, s->wbv, 1),
    };
    double least = r[0];
    for (int i = 1; i < 7; i++) least = r[i] < least ? r[i] : least;
    return least;
}

/* Runs the plan and checks every product. */
static double products_check(products *s)
{
    cr_assert_eq(loom_run(s->p), LOOM_OK, "%s", loom_plan_error(s->p));
    return products_verify(s);
}

Test(bf16, every_product_rounds_its_operands_and_sums_in_f32)
{
    if (!loom_bf16_available()) cr_skip_test("no bf16 on this CPU or build");
    products s;
    products_make(&s, LOOM_PRECISION_BF16);
    /* bf16 keeps 8 significant bits: some product must differ from the
     * unrounded one by well over f32's rounding, or nothing was rounded */
    cr_assert_gt(products_check(&s), 1e-4);
    for (int i = 0; i < N * K; i++) s.wv[i] = -0.5f * s.wv[i] + 0.01f; /* an update between runs: packed again */
    for (int i = 0; i < NW * K; i++) s.wbv[i] *= 1.5f;
    products_check(&s);
    float *w2 = rnd_buf(N * K, -2, 2); /* bound anew, to another buffer */
    cr_assert_eq(loom_bind(s.p, s.w, w2), LOOM_OK);
    free(s.wv);
    s.wv = w2;
    products_check(&s);
    cr_assert_gt(loom_plan_get_stats(s.p).copies_bytes, 0, "the parameters' packed copies");
    products_free(&s);
}

/* The team and the calling thread alone cut a product the same way: the
 * same bits, so that a run's numbers do not depend on the machine's load. */
Test(bf16, the_team_and_one_thread_give_the_same_bits)
{
    if (!loom_bf16_available()) cr_skip_test("no bf16 on this CPU or build");
    if (omp_get_max_threads() < 2) cr_skip_test("one thread");
    products s;
    products_make(&s, LOOM_PRECISION_BF16);
    loom_plan_set_team(s.p, LOOM_TEAM_TEAM);
    products_check(&s);
    float *team[7];
    for (int i = 0; i < 7; i++) {
        int64_t n = loom_tensor_numel(s.g, s.out[i]);
        team[i] = malloc((size_t)n * sizeof(float));
        memcpy(team[i], loom_plan_output(s.p, s.out[i]), (size_t)n * sizeof(float));
    }
    loom_plan_set_team(s.p, LOOM_TEAM_ALONE);
    products_check(&s);
    cr_assert(loom_plan_ran_alone(s.p));
    for (int i = 0; i < 7; i++) {
        cr_assert(!memcmp(team[i], loom_plan_output(s.p, s.out[i]), (size_t)loom_tensor_numel(s.g, s.out[i]) * sizeof(float)),
                  "product %d", i);
        free(team[i]);
    }
    products_free(&s);
}

/* Plans run inside the caller's own parallel region, one per thread: each
 * runs on its thread without a team of its own, with its own scratch. */
Test(bf16, plans_run_inside_the_callers_parallel_region)
{
    if (!loom_bf16_available()) cr_skip_test("no bf16 on this CPU or build");
    products s[2];
    for (int i = 0; i < 2; i++) products_make(&s[i], LOOM_PRECISION_BF16);
    loom_status st[2] = {LOOM_ERR_STATE, LOOM_ERR_STATE};
    #pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        if (t < 2)
            for (int run = 0; run < 3; run++) st[t] = loom_run(s[t].p);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(st[i], LOOM_OK, "plan %d: %s", i, loom_plan_error(s[i].p));
        products_verify(&s[i]);
        products_free(&s[i]);
    }
}

/* Loss and every gradient of a 2-layer LSTM language model. */
static float *lm_grads(loom_precision prec, int64_t *count)
{
    grad_plan m;
    grad_plan_make(&m, &(loom_lm_opts){.cell = &loom_cell_lstm, .vocab = 23, .embed = 16, .hidden = 40, .layers = 2, .steps = 9,
                                       .batch = 5},
                   7, NULL, &(loom_plan_opts){.precision = prec});
    int32_t x[45], y[45];
    for (int i = 0; i < 45; i++) x[i] = i * 7 % 23, y[i] = (i * 7 + 3) % 23;
    loom_bind(m.p, m.lm.tokens, x), loom_bind(m.p, m.lm.targets, y);
    float *zero = calloc(2 * 5 * 40, sizeof *zero); /* the carried states start at 0 */
    for (int i = 0; i < 2; i++) loom_bind(m.p, m.lm.init[i], zero);
    cr_assert_eq(loom_run(m.p), LOOM_OK, "%s", loom_plan_error(m.p));
    free(zero);
    float *v = grad_plan_values(&m, count);
    grad_plan_free(&m);
    return v;
}

Test(bf16, a_language_model_has_the_f32_loss_and_gradients_to_rounding)
{
    if (!loom_bf16_available()) cr_skip_test("no bf16 on this CPU or build");
    int64_t n, n2;
    float *f = lm_grads(LOOM_PRECISION_F32, &n), *b = lm_grads(LOOM_PRECISION_BF16, &n2);
    cr_assert_eq(n, n2);
    cr_assert(fabsf(f[0] - b[0]) <= 2e-3f * f[0], "loss %.7g in f32, %.7g in bf16", f[0], b[0]);
    double d = 0, s = 0;
    for (int64_t i = 1; i < n; i++) d += (double)(f[i] - b[i]) * (f[i] - b[i]), s += (double)f[i] * f[i];
    /* bf16's unit rounding is 2⁻⁹ ≈ 0.002: the gradients agree to about that, not to f32's 1e-7 */
    cr_assert(sqrt(d / s) < 2e-2, "gradients differ by %.3g relative", sqrt(d / s));
    cr_assert(sqrt(d / s) > 1e-5, "gradients equal to f32's: bf16 was not used (%.3g)", sqrt(d / s));
    free(f), free(b);
}

/* The trainer: a bf16 checkpoint says so, and resuming it in f32 (or the
 * other way) is refused with the flag to give; in bf16 it resumes. */
static void rig_make(trainer_rig *r, loom_precision prec)
{
    trainer_rig_make(r, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = 9, .embed = 5, .hidden = 8, .steps = 8, .batch = 3},
                     (loom_trainer_opts){.optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .seed = 5, .precision = prec});
}

Test(bf16, checkpoints_keep_the_precision)
{
    if (!loom_bf16_available()) cr_skip_test("no bf16 on this CPU or build");
    trainer_rig a, b, f32;
    rig_make(&a, LOOM_PRECISION_BF16), rig_make(&b, LOOM_PRECISION_BF16), rig_make(&f32, LOOM_PRECISION_F32);
    double loss[6];
    for (int k = 0; k < 6; k++) loss[k] = trainer_rig_step(&a, k);
    for (int k = 0; k < 3; k++) trainer_rig_step(&b, k);
    loom_st *f = loom_st_new();
    cr_assert_eq(loom_trainer_save(b.t, f), LOOM_OK, "%s", loom_trainer_error(b.t));
    cr_assert_str_eq(loom_st_meta(f, "loom.precision"), "bf16");
    trainer_rig_free(&b);
    rig_make(&b, LOOM_PRECISION_BF16);
    cr_assert_eq(loom_trainer_restore(b.t, f), LOOM_OK, "%s", loom_trainer_error(b.t));
    for (int k = 3; k < 6; k++) cr_assert_eq(trainer_rig_step(&b, k), loss[k], "step %d after the restore", k);
    cr_assert_neq(loom_trainer_restore(f32.t, f), LOOM_OK);
    cr_assert(strstr(loom_trainer_error(f32.t), "--precision bf16"), "%s", loom_trainer_error(f32.t));
    loom_st *g = loom_st_new(); /* and an f32 checkpoint in a bf16 trainer */
    cr_assert_eq(loom_trainer_save(f32.t, g), LOOM_OK, "%s", loom_trainer_error(f32.t));
    cr_assert_null(loom_st_meta(g, "loom.precision"));
    cr_assert_neq(loom_trainer_restore(b.t, g), LOOM_OK);
    cr_assert(strstr(loom_trainer_error(b.t), "--precision f32"), "%s", loom_trainer_error(b.t));
    loom_st_free(f), loom_st_free(g);
    trainer_rig_free(&a), trainer_rig_free(&b), trainer_rig_free(&f32);
}

/* Where bf16 cannot run, a plan asking for it is refused with the reason
 * (never an illegal instruction); an unknown precision too. */
Test(bf16, a_plan_says_why_it_cannot)
{
    loom_graph *g = loom_graph_new();
    loom_tensor w = loom_param(g, "w", loom_shape2(4, 4)), x = loom_input(g, "x", loom_shape2(2, 4));
    loom_tensor y = loom_matmul(g, x, w, false, true);
    loom_plan *p = loom_plan_new(g, &y, 1, &(loom_plan_opts){.precision = (loom_precision)7});
    cr_assert_null(p);
    cr_assert(strstr(loom_graph_error(g), "precision"), "%s", loom_graph_error(g));
    loom_graph_free(g);
    if (loom_bf16_available()) return; /* the refusal itself: tests/cli.sh lowers oneDNN's ISA to see it here */
    g = loom_graph_new();
    w = loom_param(g, "w", loom_shape2(4, 4)), x = loom_input(g, "x", loom_shape2(2, 4));
    y = loom_matmul(g, x, w, false, true);
    cr_assert_null(loom_plan_new(g, &y, 1, &(loom_plan_opts){.precision = LOOM_PRECISION_BF16}));
    cr_assert(strstr(loom_graph_error(g), "bf16"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}
