/* `loom dot`: build a recurrent model from flags and draw its unrolled
 * graph (and its BPTT graph) as DOT, SVG, PNG or PDF. */
#include "dot.h"

#include "loom/loom.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char dot_help[] =
    "draw the unrolled graph of a recurrent model (and its BPTT graph)\n"
    "as .dot, .svg, .png or .pdf\n";


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
        (a.seq2seq >= 0 ? dot_build_seq2seq : dot_build)(&dm, &a);
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
    if (!loom_graph_failed(dm.g) && a.norms && !(a.load ? dot_heat_loaded : dot_heat)(&dm, &a, norms)) goto done;
    if (!loom_graph_failed(dm.g) && a.backward) n_roots = dot_backward(&dm, roots);
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
