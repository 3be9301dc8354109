/* `loom dot`: build a recurrent model from flags and draw its unrolled
 * graph (and its BPTT graph) as DOT, SVG, PNG or PDF. */
#include "gradcheck_cmd.h"

#include "loom/loom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ext_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') ? dot + 1 : "";
}

int loom_cmd_dot(int argc, char **argv)
{
    loom_tool_model m = {&loom_cell_lstm, 4, 2, 3, 4, 1, 1, false};
    long truncate = 0, shown = -1;
    float heat_lo = 0, heat_hi = 0;
    bool backward = false, norms = false, random_trunc = false, last_loss = false;
    const char *out = NULL, *view = "op", *title = NULL;
    for (int a = 0; a < argc; a++) {
        const char *f = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        int r = loom_tool_model_flag(&m, argc, argv, &a);
        if (r) {
            if (r < 0) return 2;
            continue;
        }
        bool ok = true;
        if (!strcmp(f, "--truncate")) ok = loom_tool_int(f, v, 1, 100000, &truncate), a++;
        else if (!strcmp(f, "--steps-shown")) ok = loom_tool_int(f, v, 0, 100000, &shown), a++;
        else if (!strcmp(f, "--random-truncation")) random_trunc = true;
        else if (!strcmp(f, "--backward")) backward = true;
        else if (!strcmp(f, "--grad-norms")) norms = true;
        else if (!strcmp(f, "--heat-range")) {
            char *end = NULL;
            heat_lo = v ? strtof(v, &end) : 0;
            ok = end && *end == ':' && (heat_hi = strtof(end + 1, &end), !*end) && heat_lo > 0 && heat_hi > heat_lo;
            if (!ok) fprintf(stderr, "loom dot: --heat-range needs LO:HI with 0 < LO < HI, got '%s'\n", v ? v : "");
            a++;
        } else if (!strcmp(f, "--loss")) {
            ok = v && (!strcmp(v, "all") || !strcmp(v, "last"));
            if (!ok) fprintf(stderr, "loom dot: --loss must be all or last, got '%s'\n", v ? v : "");
            last_loss = ok && !strcmp(v, "last");
            a++;
        } else if (!strcmp(f, "--view")) {
            view = v;
            ok = v && (!strcmp(v, "op") || !strcmp(v, "cell"));
            if (!ok) fprintf(stderr, "loom dot: --view must be op or cell, got '%s'\n", v ? v : "");
            a++;
        } else if (!strcmp(f, "--title")) {
            title = v;
            ok = v != NULL;
            a++;
        } else if (!strcmp(f, "-o")) {
            out = v;
            ok = v != NULL;
            if (!ok) fprintf(stderr, "loom dot: -o needs a file name\n");
            a++;
        } else {
            fprintf(stderr, "loom dot: unknown option '%s' (see 'loom help')\n", f);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!out) {
        fprintf(stderr, "loom dot: -o FILE is required (.dot, .svg, .png or .pdf; - for DOT on stdout)\n");
        return 2;
    }
    const char *fmt = !strcmp(out, "-") ? "dot" : ext_of(out);
    if (strcmp(fmt, "dot") && strcmp(fmt, "gv") && strcmp(fmt, "svg") && strcmp(fmt, "png") && strcmp(fmt, "pdf")) {
        fprintf(stderr, "loom dot: cannot tell the format of '%s': use .dot, .svg, .png or .pdf\n", out);
        return 2;
    }
    if (random_trunc && !truncate) {
        fprintf(stderr, "loom dot: --random-truncation needs --truncate K (the mean segment length)\n");
        return 2;
    }
    if (strcmp(fmt, "dot") && strcmp(fmt, "gv") && !loom_dot_can_render()) {
        fprintf(stderr, "loom dot: this loom was built without Graphviz; write a .dot file and run `dot`\n");
        return 2;
    }
    const loom_cell_def *cell = m.cell;
    long T = m.steps, B = m.batch, I = m.input, H = m.hidden, seed = m.seed;
    bool bidir = m.bidirectional;
    int D = bidir ? 2 : 1, L = (int)m.layers;
    if (shown < 0) {
        /* Both views are laid out on a grid and stay fast (T = 500 with its
         * backward graph: under 5 s), but a picture past a few dozen steps
         * is wider than anyone reads: long sequences show their first and
         * last steps unless asked otherwise. */
        bool cells = !strcmp(view, "cell");
        long limit = cells ? 64 : 12, k = cells ? 12 : 4;
        shown = T > limit ? k : 0;
        if (shown)
            fprintf(stderr, "loom dot: drawing the first and last %ld of %ld steps (--steps-shown 0 draws all)\n", shown, T);
    }

    /* the model: x → stack → per-step losses l_t = Σ y_t ⊙ r_t (r_t fixed random) */
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = (int)I, .hidden_size = (int)H, .layers = L,
                                            .bidirectional = bidir});
    loom_tensor x = loom_input(g, "x", loom_shape3((int)T, (int)B, (int)I));
    loom_rnn_args args = {.trunc = truncate ? (random_trunc ? LOOM_TRUNC_RANDOM : LOOM_TRUNC_FIXED) : LOOM_TRUNC_NONE,
                          .truncate = (int)truncate, .trunc_seed = (uint64_t)seed};
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, &args);
    uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    float *r = malloc((size_t)(B * D * H) * sizeof *r);
    loom_tensor loss = LOOM_INVALID, *terms = malloc((size_t)T * sizeof *terms);
    int n_terms = 0;
    for (int t = last_loss ? (int)T - 1 : 0; r && terms && t < T && !loom_graph_failed(g); t++) {
        loom_graph_set_tags(g, (loom_tags){t, (int16_t)L, 2, LOOM_ROLE_FORWARD, 0});
        for (long k = 0; k < B * D * H; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            r[k] = (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
        }
        loom_tensor yt = loom_slice(g, o.output, 0, t, 1);
        loom_tensor lt = loom_sum_all(g, loom_mul(g, yt, loom_constant(g, loom_tensor_shape(g, yt), r)));
        char nm[32];
        snprintf(nm, sizeof nm, "loss[%d]", t);
        loom_tensor_set_name(g, lt, nm);
        loom_graph_set_tags(g, LOOM_TAGS_NONE);
        terms[n_terms++] = lt;
    }
    free(r);
    loss = n_terms ? loom_add_n(g, terms, n_terms) : loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory");
    free(terms);
    loom_tensor_set_name(g, loss, "L");

    int n_states = (int)T * L * D, rc = 1, n_roots = 1;
    /* drawn: what the loss needs, and the gradients asked for */
    loom_tensor *roots = malloc((size_t)(1 + rnn.n_params * L * D) * sizeof *roots);
    if (roots) roots[0] = loss;
    float *heat = calloc((size_t)n_states, sizeof *heat);
    loom_store *store = NULL;
    float *xv = NULL;
    char err[512];
    if (!heat || !roots) {
        fprintf(stderr, "loom dot: out of memory\n");
        goto done;
    }
    if (norms) {
        /* seeded random data: parameters from their initialisers, x uniform in [-1, 1) */
        store = loom_store_new(g, err, sizeof err);
        xv = malloc((size_t)(T * B * I) * sizeof *xv);
        loom_binding *binds = store ? malloc((size_t)(loom_store_count(store) + 1) * sizeof *binds) : NULL;
        if (!store || !xv || !binds) {
            fprintf(stderr, "loom dot: %s\n", store ? "out of memory" : err);
            free(binds);
            goto done;
        }
        loom_store_init(store, (uint64_t)seed);
        for (long q = 0; q < T * B * I; q++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            xv[q] = (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
        }
        int nb = 0;
        for (int i = 0; i < loom_store_count(store); i++)
            binds[nb++] = (loom_binding){loom_store_tensor(store, i), loom_store_data(store, loom_store_tensor(store, i))};
        binds[nb++] = (loom_binding){x, xv};
        loom_status st = loom_dot_state_grad_norms(g, loss, 0, (int)T, L, D, binds, nb, heat);
        free(binds);
        if (st) {
            fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
            goto done;
        }
    }
    if (backward) {
        /* the gradient of every parameter (and, through them, of every step) */
        int np = rnn.n_params * L * D;
        loom_tensor *wrt = malloc((size_t)np * sizeof *wrt), *grads = malloc((size_t)np * sizeof *grads);
        if (!wrt || !grads) {
            free(wrt), free(grads);
            fprintf(stderr, "loom dot: out of memory\n");
            goto done;
        }
        int k = 0;
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++)
                for (int i = 0; i < rnn.n_params; i++) wrt[k++] = rnn.param[l][d][i];
        loom_backward(g, loss, wrt, np, grads);
        for (int i = 0; roots && i < np; i++) roots[n_roots++] = grads[i];
        free(wrt), free(grads);
    }
    if (loom_graph_failed(g)) {
        fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
        rc = 2;
        goto done;
    }

    char auto_title[256];
    snprintf(auto_title, sizeof auto_title, "%s, %d layer%s%s, T = %ld%s%s", cell->name, L, L > 1 ? "s" : "",
             bidir ? ", bidirectional" : "", T, truncate ? (random_trunc ? ", random truncation" : ", truncated BPTT") : "",
             norms ? ", ‖∂L/∂h_t‖" : "");
    loom_dot_opts dopt = {.view = strcmp(view, "cell") ? LOOM_DOT_OPS : LOOM_DOT_CELLS,
                          .part = backward ? LOOM_DOT_BOTH : LOOM_DOT_FORWARD,
                          .steps_shown = (int)shown,
                          .heat = norms ? heat : NULL,
                          .heat_steps = (int)T,
                          .heat_layers = L,
                          .heat_dirs = D,
                          .heat_lo = heat_lo,
                          .heat_hi = heat_hi,
                          .title = title ? title : auto_title,
                          .roots = roots,
                          .n_roots = n_roots};
    if (!strcmp(fmt, "dot") || !strcmp(fmt, "gv")) {
        FILE *f = strcmp(out, "-") ? fopen(out, "w") : stdout;
        if (!f) {
            perror(out);
            goto done;
        }
        loom_status st = loom_dot_write(g, f, &dopt);
        if (f != stdout && fclose(f)) st = LOOM_ERR_IO;
        if (st) {
            fprintf(stderr, "loom dot: writing %s failed: %s\n", out, loom_status_str(st));
            goto done;
        }
    } else {
        char *text;
        size_t len;
        if (loom_dot_string(g, &dopt, &text, &len)) {
            fprintf(stderr, "loom dot: out of memory\n");
            goto done;
        }
        loom_status st = loom_dot_render(text, fmt, out, err, sizeof err);
        free(text);
        if (st) {
            fprintf(stderr, "loom dot: %s\n", err);
            goto done;
        }
    }
    rc = 0;
done:
    free(heat), free(xv), free(roots);
    loom_store_free(store);
    loom_graph_free(g);
    return rc;
}
