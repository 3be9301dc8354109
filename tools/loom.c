/* The loom command. */
#include "loom/loom.h"
#include "rnn_run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loom <command> [options]\n"
            "\n"
            "commands:\n"
            "  gradcheck   build an unrolled LSTM language-model graph, take its BPTT gradients\n"
            "              and check every one against central differences\n"
            "  rnn-run CASE.safetensors OUT.safetensors\n"
            "              run the recurrent stack a case file describes forward and backward\n"
            "              (L = sum(output * grad_output)) and write outputs and gradients\n"
            "  version     print the version and build configuration\n"
            "  help        print this help\n"
            "\n"
            "gradcheck options:\n"
            "  --seq-len T   time steps (default 4)     --batch B    sequences (default 3)\n"
            "  --input I     input features (default 5) --hidden H   hidden units (default 6)\n"
            "  --vocab V     output classes (default 7) --seed S     random seed (default 1)\n"
            "  --eps E       finite-difference step (default 5e-3)\n");
}

/* Parses a positive integer flag value; false with a message otherwise. */
static bool parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "loom: %s needs an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

static uint64_t rng_state;
static float uniform(float lo, float hi)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)(rng_state >> 40) / 16777216.0f;
}

static float *random_buffer(int64_t n, float scale)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; p && i < n; i++) p[i] = uniform(-scale, scale);
    return p;
}

enum { P_WIH, P_WHH, P_BIH, P_BHH, P_WOUT, P_BOUT, X, H0, C0, N_CHECKED };

/* One LSTM step with PyTorch's equations and gate order (i, f, g, o):
 *   gates = x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ
 *   c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g),  h' = σ(o) ⊙ tanh(c') */
static void lstm_step(loom_graph *g, const loom_tensor *p, loom_tensor x, loom_tensor *h, loom_tensor *c, int hid)
{
    loom_tensor gates = loom_add(g, loom_add(g, loom_matmul(g, x, p[P_WIH], false, true), p[P_BIH]),
                                 loom_add(g, loom_matmul(g, *h, p[P_WHH], false, true), p[P_BHH]));
    loom_tensor i = loom_sigmoid(g, loom_slice(g, gates, 1, 0, hid));
    loom_tensor f = loom_sigmoid(g, loom_slice(g, gates, 1, hid, hid));
    loom_tensor gg = loom_tanh(g, loom_slice(g, gates, 1, 2 * hid, hid));
    loom_tensor o = loom_sigmoid(g, loom_slice(g, gates, 1, 3 * hid, hid));
    *c = loom_add(g, loom_mul(g, f, *c), loom_mul(g, i, gg));
    *h = loom_mul(g, o, loom_tanh(g, *c));
}

static int cmd_gradcheck(int argc, char **argv)
{
    long T = 4, B = 3, I = 5, H = 6, V = 7, seed = 1;
    double eps = 5e-3;
    for (int a = 0; a < argc; a++) {
        const char *f = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        bool ok = true;
        if (!strcmp(f, "--seq-len")) ok = parse_int(f, v, 1, 1000, &T), a++;
        else if (!strcmp(f, "--batch")) ok = parse_int(f, v, 1, 4096, &B), a++;
        else if (!strcmp(f, "--input")) ok = parse_int(f, v, 1, 4096, &I), a++;
        else if (!strcmp(f, "--hidden")) ok = parse_int(f, v, 1, 4096, &H), a++;
        else if (!strcmp(f, "--vocab")) ok = parse_int(f, v, 1, 100000, &V), a++;
        else if (!strcmp(f, "--seed")) ok = parse_int(f, v, 0, 1L << 30, &seed), a++;
        else if (!strcmp(f, "--eps")) {
            char *end;
            eps = v ? strtod(v, &end) : 0;
            ok = v && !*end && eps > 0 && eps < 1;
            if (!ok) fprintf(stderr, "loom: --eps needs a number in (0, 1), got '%s'\n", v ? v : "");
            a++;
        } else if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "loom gradcheck: unknown option '%s' (see 'loom help')\n", f);
            return 2;
        }
        if (!ok) return 2;
    }
    rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)seed * 0xBF58476D1CE4E5B9ull;
    if (!rng_state) rng_state = 1;

    loom_graph *g = loom_graph_new();
    loom_shape shapes[N_CHECKED] = {
        loom_shape2(4 * H, I), loom_shape2(4 * H, H), loom_shape1(4 * H), loom_shape1(4 * H),
        loom_shape2(V, H), loom_shape1(V), loom_shape3(T, B, I), loom_shape2(B, H), loom_shape2(B, H)};
    const char *names[N_CHECKED] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "decoder.weight",
                                    "decoder.bias", "input", "h0", "c0"};
    loom_tensor t[N_CHECKED];
    for (int k = 0; k < N_CHECKED; k++)
        t[k] = k < X ? loom_param(g, names[k], shapes[k]) : loom_input(g, names[k], shapes[k]);
    loom_tensor targets = loom_input_i32(g, "targets", loom_shape2(T, B));

    loom_tensor h = t[H0], c = t[C0];
    loom_tensor *logits = malloc((size_t)T * sizeof *logits);
    for (int s = 0; s < T; s++) {
        loom_graph_set_tags(g, (loom_tags){s, 0, 0, LOOM_ROLE_FORWARD});
        loom_tensor xt = loom_reshape(g, loom_slice(g, t[X], 0, s, 1), loom_shape2(B, I));
        lstm_step(g, t, xt, &h, &c, (int)H);
        loom_tensor y = loom_add(g, loom_matmul(g, h, t[P_WOUT], false, true), t[P_BOUT]);
        logits[s] = loom_reshape(g, y, loom_shape3(1, B, V));
    }
    loom_graph_set_tags(g, LOOM_TAGS_NONE);
    loom_tensor loss = loom_cross_entropy(g, loom_concat(g, logits, (int)T, 0), targets, LOOM_NO_MASK);
    free(logits);
    int32_t n_forward = loom_graph_size(g);

    loom_binding wrt[N_CHECKED];
    float *data[N_CHECKED];
    int32_t *tg = malloc((size_t)(T * B) * sizeof *tg);
    bool oom = !tg;
    for (int k = 0; k < N_CHECKED; k++) {
        data[k] = random_buffer(loom_shape_numel(shapes[k]), k < X ? 0.5f : 1.0f);
        oom = oom || !data[k];
        wrt[k] = (loom_binding){t[k], data[k]};
    }
    for (long k = 0; tg && k < T * B; k++) tg[k] = (int32_t)(uniform(0, 1) * (float)V) % (int32_t)V;
    int rc = 1;
    if (oom) {
        fprintf(stderr, "loom: out of memory\n");
        goto done;
    }
    loom_gradcheck_result r;
    loom_status st = loom_gradcheck(g, loss, wrt, N_CHECKED, &(loom_binding){targets, tg}, 1,
                                    &(loom_gradcheck_opts){eps, 1e-3, 1e-2, 0, (uint64_t)seed}, &r);
    if (st) {
        fprintf(stderr, "loom: %s\n", loom_graph_error(g));
        goto done;
    }
    printf("LSTM language model, T=%ld B=%ld input=%ld hidden=%ld vocab=%ld (BLAS: %s)\n", T, B, I, H, V,
           loom_blas_enabled() ? "yes" : "no");
    printf("graph: %d forward nodes, %d backward nodes, fingerprint %016" PRIx64 "\n", n_forward,
           loom_graph_size(g) - n_forward, loom_graph_fingerprint(g));
    printf("checked %" PRId64 " gradient elements over %d tensors (eps %.1e)\n", r.checked, N_CHECKED, eps);
    if (r.worst_tensor >= 0)
        printf("largest error %.3e at %s[%" PRId64 "]: analytic %.6f, numeric %.6f\n", r.max_abs_err,
               names[r.worst_tensor], r.worst_index, r.worst_analytic, r.worst_numeric);
    printf("gradcheck %s\n", r.passed ? "passed" : "FAILED");
    rc = r.passed ? 0 : 1;
done:
    for (int k = 0; k < N_CHECKED; k++) free(data[k]);
    free(tg);
    loom_graph_free(g);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "gradcheck")) return cmd_gradcheck(argc - 2, argv + 2);
    if (!strcmp(cmd, "rnn-run")) {
        if (argc != 4) {
            fprintf(stderr, "usage: loom rnn-run CASE.safetensors OUT.safetensors\n");
            return 2;
        }
        char err[1024];
        int rc = loom_rnn_run(argv[2], argv[3], err, sizeof err);
        if (rc) fprintf(stderr, "loom rnn-run: %s\n", err);
        return rc;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("loom %s (matmul: %s)\n", LOOM_VERSION, loom_blas_enabled() ? "CBLAS" : "portable kernel");
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "loom: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
