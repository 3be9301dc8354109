/* `loom dot`: build a recurrent model from flags and draw its unrolled
 * graph (and its BPTT graph) as DOT, SVG, PNG or PDF. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char dot_help[] =
    "draw the unrolled graph of a recurrent model (and its BPTT graph)\n"
    "as .dot, .svg, .png or .pdf\n";

typedef struct {
    tool_model m;
    long truncate, shown;
    float heat_lo, heat_hi;
    bool backward, norms, random_trunc, help;
    int view, loss;  /* op or cell; all or last */
    const char *out, *fmt, *title, *load, *data, *heat;
    int seq2seq; /* −1: a recurrent stack; else the encoder–decoder's loom_attention */
} dot_args;

#define D(field) offsetof(dot_args, field)
const tool_opt dot_opts[] = {
    {"-o", OPT_PATH, D(out), .arg = "FILE", .help = "output; the extension picks the format (- for DOT on stdout)"},
    {"--view", OPT_CHOICE, D(view), .choices = (const char *const[]){"op", "cell", NULL}, .arg = "op|cell",
     .help = "every op (default), or one box per (step, layer, direction)"},
    {"--backward", OPT_FLAG, D(backward), .help = "add the gradient (BPTT) graph"},
    {"--grad-norms", OPT_FLAG, D(norms),
     .help = "run forward and backward on seeded random data and colour each\n"
             "step by the norm of dL/dh_t (log scale)"},
    {"--heat-range", OPT_TEXT, D(heat), .arg = "LO:HI", .help = "fixed ends of that colour scale (to compare pictures)"},
    {"--loss", OPT_CHOICE, D(loss), .choices = (const char *const[]){"all", "last", NULL}, .arg = "all|last",
     .help = "per-step losses on every step (default) or the last one only"},
    {"--truncate", OPT_INT, D(truncate), 1, 100000, .arg = "K", .help = "truncated BPTT: cut the gradient every K steps"},
    {"--random-truncation", OPT_FLAG, D(random_trunc),
     .help = "unbiased random truncation (as loom train trains it): each\n"
             "boundary cut with probability 1/K, the gradient through the\n"
             "others weighted by K/(K-1) (the scale_grad nodes); --seed draws"},
    {"--steps-shown", OPT_INT, D(shown), 0, 100000, .arg = "K",
     .help = "draw the first and last K steps, elide the middle (default: 12\n"
             "past 64 steps in the cell view, 4 past 12 in the op view; 0: all)"},
    {"--title", OPT_TEXT, D(title), .arg = "TEXT", .help = "the picture's title"},
    {"--load", OPT_PATH, D(load), .arg = "CKPT",
     .help = "draw a trained language model (a checkpoint of loom train) instead:\n"
             "one sequence of --seq-len steps (default: its training length);\n"
             "--grad-norms then runs it on real text, the window at the start\n"
             "of the last tenth (held out in training) of --data FILE (default:\n"
             "the checkpoint's training text)"},
    {"--data", OPT_PATH, D(data), .arg = "FILE", .help = "that text"},
    {"--seq2seq", OPT_CHOICE, D(seq2seq), .choices = (const char *const[]){"none", "additive", "dot", NULL}, .arg = "A",
     .help = "draw an encoder–decoder instead: --seq-len source steps, 3 target\n"
             "steps, attention A (none, additive or dot; its weights are the nodes\n"
             "attention[t]), --input as the embedding size"},
};
#undef D
const int n_dot_opts = (int)(sizeof dot_opts / sizeof *dot_opts);

static const char *ext_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') ? dot + 1 : "";
}

/* Options, then what they must agree on. 0: parsed; else the exit status. */
static int parse(dot_args *a, int argc, char **argv)
{
    const tool_model defaults = {&loom_cell_lstm, 0, 2, 3, 4, 1, 1, false};
    *a = (dot_args){.m = defaults, .shown = -1, .seq2seq = -1};
    int rc = tool_opts("loom dot", dot_opts, n_dot_opts, a, &a->m, argc, argv, &a->help);
    if (rc || a->help) return rc;
    if (a->heat) { /* LO:HI */
        char *end = NULL;
        a->heat_lo = strtof(a->heat, &end);
        bool ok = end != a->heat && *end == ':' && (a->heat_hi = strtof(end + 1, &end), !*end) && a->heat_lo > 0 &&
                  a->heat_hi > a->heat_lo && isfinite(a->heat_hi);
        if (!ok) return fprintf(stderr, "loom dot: --heat-range needs LO:HI with 0 < LO < HI < 3.4e38, got '%s'\n", a->heat), 2;
    }
    if (a->load) {
        const tool_model *m = &a->m, *d = &defaults;
        bool model = m->cell != d->cell || m->batch != d->batch || m->input != d->input || m->hidden != d->hidden ||
                     m->layers != d->layers || m->bidirectional != d->bidirectional;
        const char *bad = model ? "--cell, --layers, --bidirectional, --batch, --input or --hidden"
                          : a->truncate ? "--truncate" : a->loss ? "--loss last" : NULL;
        if (bad) {
            fprintf(stderr, "loom dot: %s cannot be given with --load (the model is the checkpoint's)\n", bad);
            return 2;
        }
    } else if (a->data) {
        fprintf(stderr, "loom dot: --data is the text for --load's model; give --load CKPT too\n");
        return 2;
    }
    if (a->seq2seq >= 0 && (a->load || a->norms || a->truncate || a->loss)) {
        fprintf(stderr, "loom dot: --seq2seq draws an untrained encoder–decoder and its loss: not with --load, "
                        "--grad-norms, --truncate or --loss\n");
        return 2;
    }
    if (!a->out) {
        fprintf(stderr, "loom dot: -o FILE is required (.dot, .svg, .png or .pdf; - for DOT on stdout)\n");
        return 2;
    }
    if (!tool_outputs_ok("loom dot", &(tool_file){"-o", a->out}, 1,
                              (tool_file[]){{"--load", a->load}, {"--data", a->data}}, 2))
        return 2;
    const char *fmt = a->fmt = !strcmp(a->out, "-") ? "dot" : ext_of(a->out);
    bool text = !strcmp(fmt, "dot") || !strcmp(fmt, "gv");
    if (!text && strcmp(fmt, "svg") && strcmp(fmt, "png") && strcmp(fmt, "pdf")) {
        fprintf(stderr, "loom dot: cannot tell the format of '%s': use .dot, .svg, .png or .pdf\n", a->out);
        return 2;
    }
    if (a->random_trunc && !a->truncate) {
        fprintf(stderr, "loom dot: --random-truncation needs --truncate K (the mean segment length)\n");
        return 2;
    }
    if (a->random_trunc && a->m.bidirectional) { /* the picture marks a boundary cut or not, for both directions */
        fprintf(stderr, "loom dot: --random-truncation with --bidirectional: each direction draws its own cuts, which "
                        "one picture of the boundaries cannot show; draw one direction, or --truncate alone\n");
        return 2;
    }
    if (!text && !loom_dot_can_render()) {
        fprintf(stderr, "loom dot: this loom was built without Graphviz; write a .dot file and run `dot`\n");
        return 2;
    }
    return 0;
}

/* Long sequences show their first and last steps unless asked otherwise. */
static void default_shown(dot_args *a)
{
    if (a->shown < 0) {
        /* Both views are laid out on a grid and stay fast (T = 500 with its
         * backward graph: under 5 s), but a picture past a few dozen steps
         * is wider than anyone reads: long sequences show their first and
         * last steps unless asked otherwise. */
        long limit = a->view ? 64 : 12, k = a->view ? 12 : 4;
        a->shown = a->m.steps > limit ? k : 0;
        if (a->shown)
            fprintf(stderr, "loom dot: drawing the first and last %ld of %ld steps (--steps-shown 0 draws all)\n",
                    a->shown, a->m.steps);
    }
}

static double rnd(uint64_t *s) { return loom_uniform(s) * 2 - 1; }

typedef struct {
    loom_graph *g;
    loom_rnn rnn;
    loom_seq2seq s2s; /* --seq2seq */
    loom_tensor x, loss;
    uint64_t rng;
    tool_lm lm; /* --load: the trained model and its window of text */
} dot_model;

/* x → stack → per-step losses l_t = Σ y_t ⊙ r_t (r_t fixed random), L = Σ_t l_t. */
static void build(dot_model *dm, const dot_args *a)
{
    const tool_model *m = &a->m;
    int T = (int)m->steps, B = (int)m->batch, H = (int)m->hidden, L = (int)m->layers, D = m->bidirectional ? 2 : 1;
    loom_graph *g = dm->g = loom_graph_new();
    loom_rnn_init(g, &dm->rnn, &(loom_rnn_opts){.cell = m->cell, .input_size = (int)m->input, .hidden_size = H,
                                                .layers = L, .bidirectional = m->bidirectional});
    dm->x = loom_input(g, "x", loom_shape3(T, B, (int)m->input));
    loom_rnn_args args = {.trunc = a->truncate ? (a->random_trunc ? LOOM_TRUNC_RANDOM : LOOM_TRUNC_FIXED) : LOOM_TRUNC_NONE,
                          .truncate = (int)a->truncate, .trunc_seed = (uint64_t)m->seed};
    loom_rnn_out o = loom_rnn_apply(g, &dm->rnn, dm->x, &args);
    dm->rng = (uint64_t)m->seed * 0x9E3779B97F4A7C15ull + 1;
    float *r = malloc((size_t)B * D * H * sizeof *r);
    loom_tensor *terms = malloc((size_t)T * sizeof *terms);
    int n_terms = 0;
    for (int t = a->loss ? T - 1 : 0; r && terms && t < T && !loom_graph_failed(g); t++) {
        loom_graph_set_tags(g, (loom_tags){t, (int16_t)L, 2, LOOM_ROLE_FORWARD, 0, 0});
        for (long k = 0; k < (long)B * D * H; k++) r[k] = (float)rnd(&dm->rng);
        loom_tensor yt = loom_slice(g, o.output, 0, t, 1);
        loom_tensor lt = loom_sum_all(g, loom_mul(g, yt, loom_constant(g, loom_tensor_shape(g, yt), r)));
        char nm[32];
        snprintf(nm, sizeof nm, "loss[%d]", t);
        loom_tensor_set_name(g, lt, nm);
        loom_graph_set_tags(g, LOOM_TAGS_NONE);
        terms[n_terms++] = lt;
    }
    dm->loss = n_terms ? loom_add_n(g, terms, n_terms) : loom_graph_fail(g, LOOM_ERR_NOMEM, "out of memory");
    loom_tensor_set_name(g, dm->loss, "L");
    free(r), free(terms);
}

/* An encoder–decoder of T source and 3 target steps, vocabularies of 8. */
static void build_seq2seq(dot_model *dm, const dot_args *a)
{
    const tool_model *m = &a->m;
    dm->g = loom_graph_new();
    loom_seq2seq_build(dm->g, &dm->s2s,
                       &(loom_seq2seq_opts){.cell = m->cell, .src_vocab = 8, .tgt_vocab = 8, .embed = (int)m->input,
                                            .hidden = (int)m->hidden, .layers = (int)m->layers,
                                            .bidirectional = m->bidirectional, .attention = (loom_attention)a->seq2seq,
                                            .src_steps = (int)m->steps, .tgt_steps = 3, .batch = (int)m->batch});
    dm->loss = dm->s2s.loss;
}

/* ‖∂L/∂h_t‖ per (t, l, d) on seeded random data: parameters from their
 * initialisers, x uniform in [-1, 1). */
static bool heat(dot_model *dm, const dot_args *a, float *norms)
{
    const tool_model *m = &a->m;
    loom_graph *g = dm->g;
    loom_store *store = loom_store_new(g);
    long nx = m->steps * m->batch * m->input;
    float *xv = malloc((size_t)nx * sizeof *xv);
    int np = loom_store_count(store), nb = 0;
    loom_binding *binds = malloc((size_t)(np + 1) * sizeof *binds);
    bool ok = false;
    if (loom_store_status(store) || !xv || !binds) {
        fprintf(stderr, "loom dot: %s\n", loom_store_status(store) ? loom_store_error(store) : "out of memory");
    } else {
        loom_store_init(store, (uint64_t)m->seed);
        for (long q = 0; q < nx; q++) xv[q] = (float)rnd(&dm->rng);
        nb = loom_store_bindings(store, binds, np);
        binds[nb++] = (loom_binding){dm->x, xv};
        ok = !loom_dot_state_grad_norms(g, dm->loss, 0, (int)m->steps, (int)m->layers, m->bidirectional ? 2 : 1, binds,
                                        nb, norms);
        if (!ok) fprintf(stderr, "loom dot: %s\n", loom_graph_error(g));
    }
    free(binds), free(xv);
    loom_store_free(store);
    return ok;
}

/* ‖∂L/∂h_t‖ of a trained model on its window of real text, the state
 * starting from zero. */
static bool heat_loaded(dot_model *dm, const dot_args *a, float *norms)
{
    const loom_lm *lm = &dm->lm.lm;
    int np = loom_store_count(dm->lm.store), S = lm->o.cell->n_states, nb = 0;
    size_t sn = (size_t)lm->o.layers * lm->o.hidden;
    loom_binding *binds = malloc((size_t)(np + 2 + S) * sizeof *binds);
    float *zero = calloc(sn, sizeof *zero);
    bool ok = binds && zero;
    if (ok) {
        nb = loom_store_bindings(dm->lm.store, binds, np);
        binds[nb++] = (loom_binding){lm->tokens, dm->lm.x};
        binds[nb++] = (loom_binding){lm->targets, dm->lm.y};
        for (int s = 0; s < S; s++) binds[nb++] = (loom_binding){lm->init[s], zero};
        ok = !loom_dot_state_grad_norms(dm->g, dm->loss, 0, (int)a->m.steps, (int)a->m.layers, 1, binds, nb, norms);
    }
    if (!ok) fprintf(stderr, "loom dot: %s\n", binds && zero ? loom_graph_error(dm->g) : "out of memory");
    free(binds), free(zero);
    return ok;
}

/* The gradient of every parameter (and, through them, of every step);
 * roots[0] is the loss, the gradients follow. Returns the number of roots. */
static int backward(dot_model *dm, loom_tensor *roots)
{
    const loom_rnn *rnn = &dm->rnn;
    loom_tensor wrt[LOOM_RNN_MAX_LAYERS * 2 * LOOM_CELL_MAX_PARAMS * 2 + 16];
    int np = 0;
    if (loom_valid(dm->s2s.loss)) { /* every parameter of the encoder–decoder */
        np = loom_graph_params(dm->g, wrt, (int)(sizeof wrt / sizeof *wrt));
    } else {
        for (int l = 0; l < rnn->o.layers; l++)
            for (int d = 0; d < rnn->dirs; d++)
                for (int i = 0; i < rnn->n_params; i++) wrt[np++] = rnn->param[l][d][i];
    }
    roots[0] = dm->loss;
    loom_backward(dm->g, dm->loss, wrt, np, roots + 1);
    return 1 + np;
}

/* DOT on stdout, or the file (replaced atomically). */
static bool emit(const dot_model *dm, const dot_args *a, const loom_dot_opts *opt)
{
    loom_error err = {0};
    loom_status st = strcmp(a->out, "-") ? loom_dot_save(dm->g, opt, a->out, &err) : loom_dot_write(dm->g, stdout, opt, &err);
    if (!st && !strcmp(a->out, "-") && fflush(stdout)) st = LOOM_ERR_IO;
    if (st) fprintf(stderr, "loom dot: %s\n", err.msg[0] ? err.msg : loom_status_str(st));
    return !st;
}

int dot_parse(int argc, char **argv)
{
    dot_args a;
    return parse(&a, argc, argv);
}

int cmd_dot(int argc, char **argv)
{
    dot_args a;
    int rc = parse(&a, argc, argv);
    if (rc) return rc;
    if (a.help) {
        tool_help("dot -o FILE [options]", dot_help, dot_opts, n_dot_opts, true);
        return 0;
    }
    dot_model dm = {0};
    if (a.load) {
        if ((rc = lm_window_load(a.load, a.data, (int)a.m.steps, &dm.lm))) return rc;
        const loom_lm *lm = &dm.lm.lm;
        dm.g = dm.lm.g, dm.rnn = lm->rnn, dm.loss = lm->loss;
        a.m = (tool_model){lm->o.cell, lm->o.steps, 1, lm->o.vocab, lm->o.hidden, lm->o.layers, a.m.seed, false};
    } else {
        if (!a.m.steps) a.m.steps = 4;
        (a.seq2seq >= 0 ? build_seq2seq : build)(&dm, &a);
    }
    default_shown(&a);
    const tool_model *m = &a.m;
    int T = (int)m->steps, L = (int)m->layers, D = m->bidirectional ? 2 : 1;
    /* drawn: what the loss needs, and the gradients asked for */
    loom_tensor *roots = malloc((size_t)(1 + loom_graph_params(dm.g, NULL, 0)) * sizeof *roots);
    float *norms = calloc((size_t)T * L * D, sizeof *norms);
    int n_roots = 1;
    rc = 1;
    if (!roots || !norms) {
        fprintf(stderr, "loom dot: out of memory\n");
        goto done;
    }
    roots[0] = dm.loss;
    if (!loom_graph_failed(dm.g) && a.norms && !(a.load ? heat_loaded : heat)(&dm, &a, norms)) goto done;
    if (!loom_graph_failed(dm.g) && a.backward) n_roots = backward(&dm, roots);
    if (loom_graph_failed(dm.g)) {
        fprintf(stderr, "loom dot: %s\n", loom_graph_error(dm.g));
        rc = tool_exit(loom_graph_status(dm.g));
        goto done;
    }
    char title[256];
    static const char *const attention[] = {"no attention", "additive attention", "dot-product attention"};
    if (a.seq2seq >= 0)
        snprintf(title, sizeof title, "encoder–decoder, %s, %d layer%s%s, %s: %d source steps, then 3 target steps",
                 m->cell->name, L, L > 1 ? "s" : "", m->bidirectional ? ", bidirectional encoder" : "",
                 attention[a.seq2seq], T);
    else
        snprintf(title, sizeof title, "%s%s, %d layer%s%s, T = %d%s%s", a.load ? "trained language model, " : "",
                 m->cell->name, L, L > 1 ? "s" : "", m->bidirectional ? ", bidirectional" : "", T,
                 a.truncate ? (a.random_trunc ? ", random truncation" : ", truncated BPTT") : "",
                 a.norms ? (a.load ? ", ‖∂L/∂h_t‖ on held-out text" : ", ‖∂L/∂h_t‖") : "");
    loom_dot_opts opt = {.view = a.view ? LOOM_DOT_CELLS : LOOM_DOT_OPS,
                         .part = a.backward ? LOOM_DOT_BOTH : LOOM_DOT_FORWARD,
                         .steps_shown = (int)a.shown,
                         .heat = a.norms ? norms : NULL,
                         .heat_steps = T, .heat_layers = L, .heat_dirs = D,
                         .heat_lo = a.heat_lo, .heat_hi = a.heat_hi,
                         .title = a.title ? a.title : title,
                         .roots = roots, .n_roots = n_roots};
    rc = emit(&dm, &a, &opt) ? 0 : 1;
done:
    free(norms), free(roots);
    if (a.load) lm_window_free(&dm.lm);
    else loom_graph_free(dm.g);
    return rc;
}
