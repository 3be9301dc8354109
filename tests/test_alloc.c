/* Allocation-failure sweep (SQLite's method): a small LSTM scenario —
 * build, backward, plan, run, save, load — is run once to count its
 * allocations, then once for every n, with the n-th allocation failing.
 * Each run must end in a clear error, or — where loom has a fallback that
 * needs no memory (the portable GEMM without its packing buffers) — in the
 * same results; never a crash, a silent wrong result or a failure without
 * a message; and nothing may leak (LeakSanitizer, in the sanitizer build).
 *
 * The library is linked statically with malloc, calloc, realloc,
 * aligned_alloc and strdup wrapped (-Wl,--wrap=...), and cJSON's hooks
 * point at the same allocator, so every allocation loom makes is counted. */
#include "helpers.h"

#include <cjson/cJSON.h>
#include <execinfo.h>
#include <omp.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
char *__real_strdup(const char *s);

static long counted, fail_at; /* fail_at 0: never */
static bool counting;

/* LOOM_ALLOC_TRACE=1 prints where the failing allocation is made (and
 * LOOM_ALLOC_FROM=n starts the sweep at n), to find what mishandles it. */
static bool fail_now(void)
{
    bool f = counting && ++counted == fail_at;
    if (f && getenv("LOOM_ALLOC_TRACE")) {
        void *b[24];
        backtrace_symbols_fd(b, backtrace(b, 24), 2);
    }
    return f;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fail_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return fail_now() ? NULL : __real_aligned_alloc(a, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }
static void *json_malloc(size_t n) { return __wrap_malloc(n); }

/* The scenario; returns the first failure (LOOM_OK when all went well,
 * with the loss and Σ of the gradients in out[2]) and frees everything it
 * made. */
static loom_status scenario(const char *path, double *out)
{
    enum { T = 3, B = 2, I = 3, H = 4 };
    loom_status st = LOOM_OK;
    loom_graph *g = loom_graph_new();
    loom_store *s = NULL, *s2 = NULL;
    loom_plan *p = NULL;
    float x[T * B * I];
    for (int i = 0; i < T * B * I; i++) x[i] = 0.1f * (float)(i % 5) - 0.2f;
    if (!g) return LOOM_ERR_NOMEM;
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = I, .hidden_size = H, .layers = 2});
    loom_tensor xt = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, xt, NULL);
    loom_tensor loss = loom_sum_all(g, loom_tanh(g, o.output)), outs[1 + 8];
    outs[0] = loss;
    if ((st = loom_backward(g, loss, rnn.param[0][0], rnn.n_params, outs + 1))) goto done;
    if (!(p = loom_plan_new(g, outs, 1 + rnn.n_params, NULL))) {
        st = loom_graph_status(g);
        goto done;
    }
    s = loom_store_new(g);
    if ((st = loom_store_status(s))) goto done;
    loom_store_init(s, 3);
    if ((st = loom_store_bind(s, p)) || (st = loom_bind(p, xt, x)) || (st = loom_run(p))) goto done;
    out[0] = loom_plan_output(p, loss)[0], out[1] = 0;
    for (int i = 0; i < rnn.n_params; i++)
        for (int64_t k = 0; k < loom_tensor_numel(g, outs[1 + i]); k++) out[1] += loom_plan_output(p, outs[1 + i])[k];
    if ((st = loom_store_save_file(s, path))) goto done;
    s2 = loom_store_new(g);
    if ((st = loom_store_status(s2))) goto done;
    if ((st = loom_store_load_file(s2, path, true))) goto done;
    for (int i = 0; i < loom_store_count(s); i++) {
        loom_tensor t = loom_store_tensor(s, i);
        if (memcmp(loom_store_data(s, t), loom_store_data(s2, t), (size_t)loom_tensor_numel(g, t) * 4)) out[0] = NAN;
    }
done:
    if (st && !*loom_graph_error(g) && !*loom_plan_error(p) && !*loom_store_error(s) && !*loom_store_error(s2))
        st = LOOM_ERR_STATE; /* a failure must say why somewhere: make it visible */
    loom_store_free(s2);
    loom_store_free(s);
    loom_plan_free(p);
    loom_graph_free(g);
    return st;
}

/* An encoder–decoder with attention: its loss and gradients, then a beam
 * search through the translator (out: the loss, Σ of the gradients and of
 * the translations' tokens and lengths). */
static loom_status scenario_seq2seq(const char *path, double *out)
{
    (void)path;
    enum { TS = 3, TT = 2, B = 2 };
    loom_status st = LOOM_OK;
    loom_graph *g = loom_graph_new();
    loom_store *s = NULL;
    loom_plan *p = NULL;
    loom_translator *tr = NULL;
    loom_tensor *outs = NULL;
    loom_error lerr = {0};
    if (!g) return LOOM_ERR_NOMEM;
    loom_seq2seq m;
    loom_seq2seq_opts o = {.cell = &loom_cell_gru, .src_vocab = 6, .tgt_vocab = 5, .embed = 3, .hidden = 4, .layers = 1,
                           .bidirectional = true, .attention = LOOM_ATTN_DOT, .src_steps = TS, .tgt_steps = TT, .batch = B};
    int32_t src[TS * B] = {4, 5, 5, 3, 3, 1}, sl[B] = {3, 2}, din[TT * B] = {2, 2, 4, 3}, tgt[TT * B] = {4, 3, 3, 1},
            tl[B] = {2, 1}, srow[B * TS] = {4, 5, 3, 5, 3, 1}, tok[B * 4], len[B];
    if ((st = loom_seq2seq_build(g, &m, &o))) goto done;
    s = loom_store_new(g);
    if ((st = loom_store_status(s))) goto done;
    int n = loom_store_count(s);
    if (!(outs = malloc((size_t)(n + 1) * sizeof *outs))) {
        st = loom_error_set(&lerr, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    outs[0] = m.loss;
    if ((st = loom_backward(g, m.loss, loom_store_tensors(s), n, outs + 1))) goto done;
    if (!(p = loom_plan_new(g, outs, 1 + n, NULL))) {
        st = loom_graph_status(g);
        goto done;
    }
    loom_store_init(s, 3);
    if ((st = loom_store_bind(s, p)) || (st = loom_bind(p, m.src, src)) || (st = loom_bind(p, m.src_len, sl)) ||
        (st = loom_bind(p, m.dec_in, din)) || (st = loom_bind(p, m.tgt, tgt)) || (st = loom_bind(p, m.tgt_len, tl)) ||
        (st = loom_run(p)))
        goto done;
    out[0] = loom_plan_output(p, m.loss)[0], out[1] = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < loom_tensor_numel(g, outs[1 + i]); k++) out[1] += loom_plan_output(p, outs[1 + i])[k];
    if (!(tr = loom_translator_new(&o, s, 2, &lerr))) {
        st = lerr.status;
        goto done;
    }
    if ((st = loom_translate(tr, srow, sl, B, &(loom_search_opts){.beam = 2, .max_len = 4}, tok, len, NULL, NULL, &lerr)))
        goto done;
    for (int i = 0; i < B; i++) {
        out[1] += len[i];
        for (int k = 0; k < len[i]; k++) out[1] += tok[i * 4 + k];
    }
done:
    if (st && !lerr.msg[0] && !*loom_graph_error(g) && !*loom_plan_error(p) && !*loom_store_error(s)) st = LOOM_ERR_STATE;
    loom_translator_free(tr);
    free(outs);
    loom_store_free(s);
    loom_plan_free(p);
    loom_graph_free(g);
    return st;
}

/* Every allocation of a scenario made to fail in turn: an error with a
 * message each time, or a fallback with the same results. */
static void sweep(loom_status (*sc)(const char *, double *))
{
    omp_set_num_threads(1); /* the same allocations in the same order every run */
    cJSON_InitHooks(&(cJSON_Hooks){json_malloc, free});
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-alloc-%d.safetensors", (int)getpid());
    counting = true;
    fail_at = 0, counted = 0;
    double want[2], got[2];
    cr_assert_eq(sc(path, want), LOOM_OK, "the scenario runs when nothing fails");
    long total = counted, fallbacks = 0;
    cr_assert_gt(total, 100, "%ld allocations counted", total);
    long from = getenv("LOOM_ALLOC_FROM") ? atol(getenv("LOOM_ALLOC_FROM")) : 1;
    for (long n = from; n <= total; n++) {
        fail_at = n, counted = 0;
        loom_status st = sc(path, got);
        cr_assert_neq(st, LOOM_ERR_STATE, "allocation %ld of %ld failed without a message", n, total);
        if (st == LOOM_OK) { /* a fallback: the same results */
            for (int k = 0; k < 2; k++)
                cr_assert(fabs(got[k] - want[k]) <= 1e-5 * fmax(1, fabs(want[k])),
                          "allocation %ld of %ld failed, and the scenario succeeded with %g instead of %g", n, total,
                          got[k], want[k]);
            fallbacks++;
        }
    }
    counting = false;
    unlink(path);
    cr_log_info("%ld allocations, each made to fail in turn: %ld errors, %ld fallbacks with the same results\n", total,
                total - fallbacks, fallbacks);
}

Test(alloc, every_allocation_failure_is_an_error) { sweep(scenario); }
Test(alloc, every_allocation_failure_of_an_encoder_decoder_is_an_error) { sweep(scenario_seq2seq); }
