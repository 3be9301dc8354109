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
    "as .dot, .svg, .png or .pdf, or as an interactive page (.html)\n";


#define D(field) offsetof(dot_args, field)
const tool_opt dot_opts[] = {
    {"-o", OPT_PATH, D(out), .arg = "FILE",
     .help = "output; the extension picks the format (- for DOT on stdout; .html:\n"
             "an interactive page, both views, zoom, search, a node's op and shape)"},
    {"--view", OPT_CHOICE, D(view), .choices = (const char *const[]){"op", "cell", NULL}, .arg = "op|cell",
     .help = "every op (default), or one box per (step, layer, direction)"},
    {"--backward", OPT_FLAG, D(backward), .help = "add the gradient (BPTT) graph"},
    {"--grad-norms", OPT_FLAG, D(norms),
     .help = "run forward and backward on seeded random data (or --load's batch)\n"
             "and colour each step by the norm of dL/dh_t (log scale)"},
    {"--norms-csv", OPT_PATH, D(norms_csv), .arg = "FILE",
     .help = "those norms as CSV, every carried state (h, and c for an LSTM):\n"
             "t,layer,direction,state,norm,norm64 — norm as float32 computes it,\n"
             "norm64 in float64 (where float32 underflows to 0); -o then optional"},
    {"--heat-range", OPT_TEXT, D(heat), .arg = "LO:HI", .help = "fixed ends of that colour scale (to compare pictures)"},
    {"--loss", OPT_CHOICE, D(loss), .choices = (const char *const[]){"all", "last", NULL}, .arg = "all|last",
     .help = "per-step losses on every step (default) or the last one only;\n"
             "with --load, the model's own loss unless given"},
    {"--truncate", OPT_INT, D(truncate), 1, 100000, .arg = "K", .help = "truncated BPTT: cut the gradient every K steps"},
    {"--random-truncation", OPT_FLAG, D(random_trunc),
     .help = "unbiased random truncation (as loom train trains it): each\n"
             "boundary cut with probability 1/K, the gradient through the\n"
             "others weighted by K/(K-1) (the scale_grad nodes); --seed draws"},
    {"--steps-shown", OPT_INT, D(shown), 0, 100000, .arg = "K",
     .help = "draw the first and last K steps, elide the middle (default: 12\n"
             "past 64 steps in the cell view, 4 past 12 in the op view; 0: all)"},
    {"--title", OPT_TEXT, D(title), .arg = "TEXT", .help = "the picture's title"},
    {"--edges", OPT_CHOICE, D(edges), .choices = (const char *const[]){"auto", "curved", "ortho", "straight", NULL},
     .arg = "auto|curved|ortho|straight",
     .help = "edges routed around the nodes as curves (small pictures: slow past a\n"
             "few hundred nodes) or at right angles, or straight (instant; an edge may\n"
             "pass behind a node); auto (default) picks by the picture's size"},
    {"--style", OPT_CHOICE, D(style), .choices = (const char *const[]){"diagram", "slide", NULL}, .arg = "diagram|slide",
     .help = "diagram (default): every node's name or op and shape, a legend; slide:\n"
             "for a lecture — h₃, c₃, W_hh, ∂L/∂h₃, gates by name, ops as σ, ⊙, +,\n"
             "no shapes, plumbing hidden, large type, scaled to a 16:9 slide"},
    {"--load", OPT_PATH, D(load), .arg = "CKPT",
     .help = "draw a trained model instead (a checkpoint of loom train: a language\n"
             "model, --task adding or copy, or an encoder–decoder) on one batch: a\n"
             "language model's window of --seq-len steps (default: its training\n"
             "length) at the start of its held-out text (--valid, else the last tenth\n"
             "of its text, or of --data FILE); a task's held-out batch; an\n"
             "encoder–decoder's sentence (--source, else its first held-out pair)\n"
             "and its own translation, with the attention weights (.html)"},
    {"--source", OPT_TEXT, D(source), .arg = "TEXT", .help = "the sentence an encoder–decoder's checkpoint translates"},
    {"--data", OPT_PATH, D(data), .arg = "FILE", .help = "that text"},
    {"--batch-from", OPT_CHOICE, D(batch_from), .choices = (const char *const[]){"held-out", "training", NULL},
     .arg = "held-out|training", .help = "--load's batch: held-out (default), or the first training batch"},
    {"--seq2seq", OPT_CHOICE, D(seq2seq), .choices = (const char *const[]){"none", "additive", "dot", "plain", NULL}, .arg = "A",
     .help = "draw an encoder–decoder instead: --seq-len source steps, 3 target\n"
             "steps, attention A (none, additive, dot or plain; its weights are the nodes\n"
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
    const tool_model defaults = {&loom_cell_lstm, 0, 2, 3, 4, 1, 1, false, 0};
    *a = (dot_args){.m = defaults, .shown = -1, .seq2seq = -1, .loss = DOT_LOSS_DEFAULT, .batch_from = -1};
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
                     m->layers != d->layers || m->bidirectional != d->bidirectional || m->stacking != d->stacking;
        const char *bad = model ? "--cell, --layers, --stacking, --bidirectional, --batch, --input or --hidden"
                          : a->truncate ? "--truncate" : NULL;
        if (bad) {
            fprintf(stderr, "loom dot: %s cannot be given with --load (the model is the checkpoint's)\n", bad);
            return 2;
        }
    } else if (a->data || a->batch_from >= 0 || a->source) {
        fprintf(stderr, "loom dot: %s is for --load's model; give --load CKPT too\n",
                a->data ? "--data" : a->source ? "--source" : "--batch-from");
        return 2;
    }
    if (a->batch_from < 0) a->batch_from = LOOM_BATCH_HELD_OUT;
    if (a->norms_csv) a->norms = true;
    if (a->seq2seq >= 0 && (a->load || a->norms || a->truncate || a->loss >= 0)) {
        fprintf(stderr, "loom dot: --seq2seq draws an untrained encoder–decoder and its loss: not with --load, "
                        "--grad-norms, --norms-csv, --truncate or --loss\n");
        return 2;
    }
    if (!a->out && !a->norms_csv) {
        fprintf(stderr, "loom dot: -o FILE is required (.dot, .html, .svg, .png or .pdf; - for DOT on stdout), or --norms-csv FILE\n");
        return 2;
    }
    if (!tool_outputs_ok("loom dot", (tool_file[]){{"-o", a->out}, {"--norms-csv", a->norms_csv}}, 2,
                         (tool_file[]){{"--load", a->load}, {"--data", a->data}}, 2))
        return 2;
    if (!a->out) return 0;
    const char *fmt = a->fmt = !strcmp(a->out, "-") ? "dot" : ext_of(a->out);
    bool text = !strcmp(fmt, "dot") || !strcmp(fmt, "gv") || !strcmp(fmt, "html");
    if (!text && strcmp(fmt, "svg") && strcmp(fmt, "png") && strcmp(fmt, "pdf")) {
        fprintf(stderr, "loom dot: cannot tell the format of '%s': use .dot, .html, .svg, .png or .pdf\n", a->out);
        return 2;
    }
    if (!strcmp(fmt, "html") && (a->style == LOOM_DOT_STYLE_SLIDE || a->edges)) { /* the page draws its own */
        fprintf(stderr, "loom dot: %s: the interactive page has its own labels and edges (no --style slide, no --edges)\n",
                a->out);
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
        if (a->style == LOOM_DOT_STYLE_SLIDE) limit = a->view ? 20 : 4, k = a->view ? 4 : 2; /* readable on a slide */
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

/* The norms of every carried state, as --norms-csv's rows. */
typedef struct {
    const dot_model *dm;
    const float *norm;
    const double *norm64;
} norms_ctx;

static loom_status norms_rows(const void *ctx, loom_metrics *m)
{
    const norms_ctx *n = ctx;
    return loom_state_norms_rows(m, n->dm->g, &n->dm->grid, n->norm, n->norm64, -1);
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
        if ((rc = dot_load(&dm, &a))) return dot_model_free(&dm), rc;
        const loom_rnn_opts *r = &dm.rnn.o;
        const loom_seq2seq_opts *s = &dm.s2s.o;
        if (dm.s2s_loaded) /* drawn as an encoder–decoder */
            a.seq2seq = s->attention,
            a.m = (tool_model){s->cell, s->src_steps, 1, s->embed, s->hidden, s->layers, a.m.seed, s->bidirectional, s->stacking};
        else
            a.m = (tool_model){r->cell, dm.grid.steps, 1, r->input_size, r->hidden_size, r->layers, a.m.seed, r->bidirectional,
                               r->stacking};
    } else {
        if (!a.m.steps) a.m.steps = 4;
        (a.seq2seq >= 0 ? dot_build_seq2seq : dot_build)(&dm, &a);
    }
    if (a.out) default_shown(&a);
    const tool_model *m = &a.m;
    int T = (int)m->steps, L = (int)m->layers, D = m->bidirectional ? 2 : 1;
    size_t n = loom_state_count(&dm.grid);
    /* drawn: what the loss needs, and the gradients asked for */
    loom_tensor *roots = malloc((size_t)(1 + loom_graph_params(dm.g, NULL, 0)) * sizeof *roots);
    float *norm = calloc(n + 1, sizeof *norm), *heat = calloc((size_t)T * L * D, sizeof *heat);
    double *norm64 = calloc(n + 1, sizeof *norm64), *heat64 = calloc((size_t)T * L * D, sizeof *heat64);
    int n_roots = 1;
    rc = 1;
    if (!roots || !norm || !norm64 || !heat || !heat64) {
        fprintf(stderr, "loom dot: out of memory\n");
        goto done;
    }
    roots[0] = dm.loss;
    if (!loom_graph_failed(dm.g) && a.norms) {
        if (!dot_norms(&dm, &a, norm, norm64)) goto done;
        loom_state_select(&dm.grid, norm, norm64, 0, heat, heat64); /* the picture's heat: h */
        if ((rc = tool_write_rows("loom dot", a.norms_csv, LOOM_STATE_NORMS_COLUMNS, norms_rows,
                                  &(norms_ctx){&dm, norm, norm64})))
            goto done;
        rc = 1;
    }
    if (!a.out) {
        rc = 0;
        goto done;
    }
    if (!loom_graph_failed(dm.g) && a.backward) n_roots = dot_backward(&dm, roots);
    if (loom_graph_failed(dm.g)) {
        fprintf(stderr, "loom dot: %s\n", loom_graph_error(dm.g));
        rc = tool_exit(loom_graph_status(dm.g));
        goto done;
    }
    char title[640];
    static const char *const attention[] = {"no attention", "additive attention", "dot-product attention",
                                            "plain dot-product attention"};
    char model_kind[64] = "trained language model, ";
    if (dm.probe.model.kind != LOOM_MODEL_LM)
        snprintf(model_kind, sizeof model_kind, "%s task, ", loom_model_kind_name(dm.probe.model.kind));
    if (dm.s2s_loaded) {
        char from[256], to[256];
        loom_vocab_decode(dm.ck.v[0], dm.sp.src, dm.sp.src_len - 1, from, sizeof from); /* without <eos> */
        loom_vocab_decode(dm.ck.v[1], dm.sp.tgt, dm.sp.tgt[dm.sp.tgt_len - 1] == LOOM_EOS ? dm.sp.tgt_len - 1 : dm.sp.tgt_len, to,
                          sizeof to);
        snprintf(title, sizeof title, "trained encoder–decoder, %s, %d layer%s%s, %s: “%s” → “%s”", m->cell->name, L,
                 L > 1 ? "s" : "", m->bidirectional ? ", bidirectional encoder" : "", attention[a.seq2seq], from, to);
    } else if (a.seq2seq >= 0)
        snprintf(title, sizeof title, "encoder–decoder, %s, %d layer%s%s, %s: %d source steps, then 3 target steps",
                 m->cell->name, L, L > 1 ? "s" : "", m->bidirectional ? ", bidirectional encoder" : "",
                 attention[a.seq2seq], T);
    else
        snprintf(title, sizeof title, "%s%s, %d layer%s%s, T = %d%s%s", a.load ? model_kind : "",
                 m->cell->name, L, L > 1 ? "s" : "", m->bidirectional ? ", bidirectional" : "", T,
                 a.truncate ? (a.random_trunc ? ", random truncation" : ", truncated BPTT") : "",
                 !a.norms ? "" : !a.load ? ", ‖∂L/∂h_t‖"
                 : a.batch_from == LOOM_BATCH_TRAINING ? ", ‖∂L/∂h_t‖ on a training batch"
                 : dm.probe.model.kind == LOOM_MODEL_LM ? ", ‖∂L/∂h_t‖ on held-out text" : ", ‖∂L/∂h_t‖ on a held-out batch");
    /* the page steps through the plan: when each node is computed */
    int32_t *rank = NULL;
    if (!strcmp(a.fmt, "html")) {
        loom_plan *plan = loom_plan_new(dm.g, roots, n_roots, NULL);
        rank = plan ? malloc((size_t)loom_graph_size(dm.g) * sizeof *rank + 1) : NULL;
        if (rank && loom_plan_ranks(plan, rank, loom_graph_size(dm.g)) < 0) free(rank), rank = NULL;
        loom_plan_free(plan);
        if (!rank) {
            fprintf(stderr, "loom dot: %s\n", loom_graph_failed(dm.g) ? loom_graph_error(dm.g) : "out of memory");
            rc = loom_graph_failed(dm.g) ? tool_exit(loom_graph_status(dm.g)) : 1;
            goto done;
        }
    }
    /* a trained model's page: every value on its batch; an encoder–decoder's: every value on random
     * sentences, and the first one's attention weights */
    float *stats = NULL;
    dot_attention att = {0};
    if (rank && (a.load || a.seq2seq >= 0)) {
        stats = malloc(4 * (size_t)loom_graph_size(dm.g) * sizeof *stats + 1);
        if (!stats || !dot_values(&dm, &a, roots, n_roots, stats, &att)) {
            if (!stats) fprintf(stderr, "loom dot: out of memory\n");
            rc = loom_graph_failed(dm.g) ? tool_exit(loom_graph_status(dm.g)) : 1;
            free(stats), free(rank);
            goto done;
        }
        if (!a.load && !a.title) strncat(title, "; values: initial weights, random tokens", sizeof title - strlen(title) - 1);
    }
    loom_dot_opts opt = {.view = a.view ? LOOM_DOT_CELLS : LOOM_DOT_OPS,
                         .part = a.backward ? LOOM_DOT_BOTH : LOOM_DOT_FORWARD,
                         .steps_shown = (int)a.shown,
                         .heat = a.norms ? heat : NULL,
                         .heat64 = a.norms ? heat64 : NULL,
                         .heat_steps = T, .heat_layers = L, .heat_dirs = D,
                         .heat_lo = a.heat_lo, .heat_hi = a.heat_hi,
                         .title = a.title ? a.title : title,
                         .edges = (loom_dot_edges)a.edges,
                         .style = (loom_dot_style)a.style,
                         .roots = roots, .n_roots = n_roots, .rank = rank, .stats = stats,
                         .attention = att.w, .attention_rows = att.rows, .attention_cols = att.cols,
                         .attention_row_labels = att.row_labels, .attention_col_labels = att.col_labels};
    rc = emit(&dm, &a, &opt) ? 0 : 1;
    free(rank), free(stats);
    dot_attention_free(&att);
done:
    free(norm), free(norm64), free(heat), free(heat64), free(roots);
    dot_model_free(&dm);
    return rc;
}
