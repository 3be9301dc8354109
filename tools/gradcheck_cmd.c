/* `loom gradcheck`: a language-model-shaped graph — inputs (T, B, I) →
 * recurrent stack → linear decoder → cross-entropy against random targets —
 * whose every gradient (parameters, inputs, initial states) is checked
 * against central differences. */
#include "gradcheck_cmd.h"

#include "loom/loom.h"
#include "mgu_cell.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const loom_cell_def *loom_tool_cell(const char *name)
{
    if (name && !strcmp(name, mgu_cell.name)) return &mgu_cell;
    return loom_cell_by_name(name);
}

bool loom_tool_int(const char *flag, const char *s, long lo, long hi, long *out)
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

int loom_tool_model_flag(loom_tool_model *m, int argc, char **argv, int *a)
{
    const char *f = argv[*a], *v = *a + 1 < argc ? argv[*a + 1] : NULL;
    struct { const char *flag; long lo, hi; long *out; } ints[] = {
        {"--seq-len", 1, 100000, &m->steps}, {"--batch", 1, 4096, &m->batch}, {"--input", 1, 4096, &m->input},
        {"--hidden", 1, 4096, &m->hidden}, {"--layers", 1, LOOM_RNN_MAX_LAYERS, &m->layers},
        {"--seed", 0, 1L << 30, &m->seed},
    };
    for (unsigned i = 0; i < sizeof ints / sizeof *ints; i++)
        if (!strcmp(f, ints[i].flag)) {
            (*a)++;
            return loom_tool_int(f, v, ints[i].lo, ints[i].hi, ints[i].out) ? 1 : -1;
        }
    if (!strcmp(f, "--bidirectional")) {
        m->bidirectional = true;
        return 1;
    }
    if (!strcmp(f, "--cell")) {
        (*a)++;
        m->cell = loom_tool_cell(v);
        if (m->cell) return 1;
        fprintf(stderr, "loom: --cell must be rnn_tanh, rnn_relu, gru, lstm or mgu, got '%s'\n", v ? v : "");
        return -1;
    }
    return 0;
}

static uint64_t rng_state;
static float uniform(float lo, float hi)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)(rng_state >> 40) / 16777216.0f;
}

int loom_cmd_gradcheck(int argc, char **argv)
{
    loom_tool_model m = {&loom_cell_lstm, 4, 3, 5, 6, 1, 1, false};
    long V = 7;
    double eps = 0;
    for (int a = 0; a < argc; a++) {
        const char *f = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        int r = loom_tool_model_flag(&m, argc, argv, &a);
        if (r) {
            if (r < 0) return 2;
            continue;
        }
        bool ok = true;
        if (!strcmp(f, "--vocab")) ok = loom_tool_int(f, v, 1, 100000, &V), a++;
        else if (!strcmp(f, "--eps")) {
            char *end;
            eps = v ? strtod(v, &end) : 0;
            ok = v && !*end && eps > 0 && eps < 1;
            if (!ok) fprintf(stderr, "loom: --eps needs a number in (0, 1), got '%s'\n", v ? v : "");
            a++;
        } else {
            fprintf(stderr, "loom gradcheck: unknown option '%s' (see 'loom help')\n", f);
            return 2;
        }
        if (!ok) return 2;
    }
    long T = m.steps, B = m.batch, I = m.input, H = m.hidden, layers = m.layers, seed = m.seed;
    bool bidir = m.bidirectional;
    const loom_cell_def *cell = m.cell;
    int D = bidir ? 2 : 1, S = cell->n_states;
    /* A step across a ReLU kink makes the central difference meaningless;
     * a smaller step makes crossing one unlikely. */
    if (eps == 0) eps = cell == &loom_cell_rnn_relu ? 1e-3 : 5e-3;

    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = (int)I, .hidden_size = (int)H,
                                            .layers = (int)layers, .bidirectional = bidir});
    loom_tensor dec_w = loom_param(g, "decoder.weight", loom_shape2((int)V, (int)(D * H)));
    loom_tensor dec_b = loom_param(g, "decoder.bias", loom_shape1((int)V));
    loom_tensor x = loom_input(g, "input", loom_shape3((int)T, (int)B, (int)I));
    loom_tensor init[2] = {LOOM_INVALID, LOOM_INVALID};
    const char *state_names[2] = {"h0", "c0"};
    for (int s = 0; s < S && s < 2; s++)
        init[s] = loom_input(g, state_names[s], loom_shape3((int)(layers * D), (int)B, (int)H));
    loom_tensor targets = loom_input_i32(g, "targets", loom_shape2((int)T, (int)B));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &(loom_rnn_args){.init = {init[0], init[1]}});
    loom_tensor logits = loom_add(g, loom_matmul(g, o.output, dec_w, false, true), dec_b);
    loom_tensor loss = loom_cross_entropy(g, logits, targets, LOOM_NO_MASK);
    if (loom_graph_failed(g)) {
        fprintf(stderr, "loom: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return 2;
    }
    int32_t n_forward = loom_graph_size(g);

    /* Random values in [-0.5, 0.5) for parameters, [-1, 1) for inputs and
     * states: larger than PyTorch's initial weights, so that every
     * nonlinearity works away from its linear regime. */
    char err[256] = "out of memory";
    loom_store *store = loom_store_new(g, err, sizeof err);
    int n_params = store ? loom_store_count(store) : 0, n_wrt = 0;
    loom_binding *wrt = calloc((size_t)(n_params + 1 + S), sizeof *wrt);
    int32_t *tg = malloc((size_t)(T * B) * sizeof *tg);
    rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(seed + 1) * 0xBF58476D1CE4E5B9ull;
    bool oom = !store || !wrt || !tg;
    for (int i = 0; !oom && i < n_params; i++) {
        loom_tensor t = loom_store_tensor(store, i);
        float *d = loom_store_data(store, t);
        for (int64_t k = 0; k < loom_tensor_numel(g, t); k++) d[k] = uniform(-0.5f, 0.5f);
        wrt[n_wrt++] = (loom_binding){t, d};
    }
    loom_tensor in_t[3] = {x, init[0], init[1]};
    for (int i = 0; !oom && i < 1 + S; i++) {
        int64_t n = loom_tensor_numel(g, in_t[i]);
        float *d = malloc((size_t)n * sizeof *d);
        if (!(oom = !d)) {
            for (int64_t k = 0; k < n; k++) d[k] = uniform(-1, 1);
            wrt[n_wrt++] = (loom_binding){in_t[i], d};
        }
    }
    for (long k = 0; !oom && k < T * B; k++) tg[k] = (int32_t)(uniform(0, 1) * (float)V) % (int32_t)V;
    int rc = 1;
    loom_gradcheck_result r;
    if (oom) {
        fprintf(stderr, "loom: %s\n", err);
    } else if (loom_gradcheck(g, loss, wrt, n_wrt, &(loom_binding){targets, tg}, 1,
                              &(loom_gradcheck_opts){eps, 1e-3, 1e-2, 0, (uint64_t)seed}, &r)) {
        fprintf(stderr, "loom: %s\n", loom_graph_error(g));
    } else {
        printf("%s language model: T=%ld B=%ld input=%ld hidden=%ld layers=%ld%s vocab=%ld (matmul: %s)\n",
               cell->name, T, B, I, H, layers, bidir ? " bidirectional" : "", V,
               loom_blas_enabled() ? "CBLAS" : "portable kernel");
        printf("graph: %d forward nodes, %d backward nodes, fingerprint %016" PRIx64 "\n", n_forward,
               loom_graph_size(g) - n_forward, loom_graph_fingerprint(g));
        printf("checked %" PRId64 " gradient elements over %d tensors (eps %.1e)\n", r.checked, n_wrt, eps);
        if (r.worst_tensor >= 0)
            printf("largest error %.3e at %s[%" PRId64 "]: analytic %.6f, numeric %.6f\n", r.max_abs_err,
                   loom_tensor_name(g, wrt[r.worst_tensor].t), r.worst_index, r.worst_analytic, r.worst_numeric);
        printf("gradcheck %s\n", r.passed ? "passed" : "FAILED");
        rc = r.passed ? 0 : 1;
    }
    for (int i = n_params; wrt && i < n_wrt; i++) free(wrt[i].data);
    free(wrt);
    free(tg);
    loom_store_free(store);
    loom_graph_free(g);
    return rc;
}
