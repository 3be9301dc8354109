/* `loom plot`: curves from CSV files — training curves from metrics files
 * (RNN vs GRU vs LSTM on one picture), gradient norms along t from loom dot
 * --norms-csv (a vanilla RNN's vanishing against an LSTM's). */
#include "tool.h"

#include "loom/loom.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char plot_help[] = "draw curves from CSV files as .svg or .png: training curves from metrics files\n"
                         "(loom train --metrics), gradient norms along t (loom dot --norms-csv, one curve\n"
                         "per layer, direction and state); or a t-SNE map of word vectors (--tsne)\n";

typedef struct {
    const char *out, *column, *labels, *title, *x, *by, *where, *xlabel, *ylabel, *tsne;
    bool log, linear;
    long words;
    double perplexity;
} plot_args;

#define P(field) offsetof(plot_args, field)
const tool_opt plot_opts[] = {
    {"-o", OPT_PATH, P(out), .arg = "FILE", .help = "the picture (.svg or .png)"},
    {"--column", OPT_TEXT, P(column), .arg = "C",
     .help = "what to draw (default perplexity, with valid_perplexity dashed; else\n"
             "loss; else norm64, then norm)"},
    {"--x", OPT_TEXT, P(x), .arg = "C", .help = "the x axis's column (default step, else t)"},
    {"--by", OPT_TEXT, P(by), .arg = "C,...",
     .help = "one curve per value of these columns (default step,layer,direction,state,\n"
             "gate: those a file has other than the x column)"},
    {"--where", OPT_TEXT, P(where), .arg = "C=V,...", .help = "only the rows with these values (e.g. state=h)"},
    {"--labels", OPT_TEXT, P(labels), .arg = "A,B,...", .help = "one label per file (default: the file names)"},
    {"--log", OPT_FLAG, P(log), .help = "a logarithmic y axis (chosen anyway when the values span\nmore than a factor of 30)"},
    {"--linear", OPT_FLAG, P(linear), .help = "a linear y axis in any case"},
    {"--title", OPT_TEXT, P(title), .arg = "TEXT", .help = "the title"},
    {"--xlabel", OPT_TEXT, P(xlabel), .arg = "TEXT", .help = "the x axis's label (default: its column)"},
    {"--ylabel", OPT_TEXT, P(ylabel), .arg = "TEXT", .help = "the y axis's label (default: the column)"},
    {"--tsne", OPT_PATH, P(tsne), .arg = "CKPT",
     .help = "instead of CSV files: a t-SNE map of a checkpoint's word vectors (loom\n"
             "word2vec's, or a language model's embedding), each word labelled"},
    {"--words", OPT_INT, P(words), 2, LOOM_TSNE_MAX, .arg = "N", .help = "--tsne: the N most frequent words (default 300)"},
    {"--perplexity", OPT_REAL, P(perplexity), 1, 1000, .arg = "P", .help = "--tsne: the neighbourhood's size (default 30)"},
};
#undef P
const int n_plot_opts = (int)(sizeof plot_opts / sizeof *plot_opts);

/* A t-SNE map of a checkpoint's most frequent words (loom_embed_plot_tsne). */
static int tsne_plot(const plot_args *a)
{
    static const char cmd[] = "loom plot";
    loom_vocab *v = NULL;
    float *E = NULL;
    int V, D, n = 0;
    double kl = 0;
    loom_error err = {0};
    if (loom_embed_load(a->tsne, &v, &E, &V, &D, &err)) return tool_fail_st(cmd, err.status, err.msg, NULL);
    int rc = 0;
    if (loom_embed_plot_tsne(E, v, D, a->words ? (int)a->words : 300, a->perplexity, a->title, a->out, &n, &kl, &err))
        rc = tool_fail_st(cmd, err.status, err.msg, NULL);
    else
        printf("%d words mapped (KL %.3f) in %s\n", n, kl, a->out);
    free(E);
    loom_vocab_free(v);
    return rc;
}

int cmd_plot(int argc, char **argv)
{
    const char **files = calloc((size_t)argc + 1, sizeof *files), *labels[64] = {0}, *out = NULL;
    char *label_buf = NULL;
    loom_plot_opts o = {0};
    int rc = 2;
    if (!files) return 1;
    plot_args a = {0};
    bool help = false;
    int n = 0;
    if (tool_opts_pos("loom plot", plot_opts, n_plot_opts, &a, NULL, argc, argv, &help, files, &n)) goto done;
    if (help) {
        tool_help("plot FILE.csv... -o FILE [options] | plot --tsne CKPT -o FILE", plot_help, plot_opts, n_plot_opts, false);
        rc = 0;
        goto done;
    }
    if (a.tsne) {
        if (n) fprintf(stderr, "loom plot: --tsne maps a checkpoint's vectors: no CSV files with it\n");
        else if (!a.out) fprintf(stderr, "usage: loom plot --tsne CKPT -o FILE.svg|png [--words N]\n");
        else if (tool_outputs_ok("loom plot", &(tool_file){"-o", a.out}, 1, &(tool_file){"--tsne", a.tsne}, 1)) rc = tsne_plot(&a);
        goto done;
    }
    if (a.words || a.perplexity) {
        fprintf(stderr, "loom plot: --words and --perplexity are for --tsne\n");
        goto done;
    }
    if (a.log && a.linear) {
        fprintf(stderr, "loom plot: --log and --linear: one y axis, one scale\n");
        goto done;
    }
    o.n = n, o.log_y = a.log, o.linear_y = a.linear, o.column = a.column, o.title = a.title, out = a.out;
    o.x = a.x, o.by = a.by, o.where = a.where, o.xlabel = a.xlabel, o.ylabel = a.ylabel;
    if (a.labels) { /* a,b,c */
        if (!(label_buf = strdup(a.labels))) goto done;
        int k = 0;
        for (char *save = NULL, *t = strtok_r(label_buf, ",", &save); t && k < 64; t = strtok_r(NULL, ",", &save)) labels[k++] = t;
        o.labels = labels;
    }
    if (!o.n || !out) {
        fprintf(stderr, "usage: loom plot FILE.csv... -o FILE.svg|png [options]\n");
        goto done;
    }
    if (o.n > 64) {
        fprintf(stderr, "loom plot: at most 64 files\n");
        goto done;
    }
    tool_file ins[64];
    for (int k = 0; k < o.n; k++) ins[k] = (tool_file){"the metrics file", files[k]};
    if (!tool_outputs_ok("loom plot", &(tool_file){"-o", out}, 1, ins, o.n)) goto done;
    o.files = files;
    loom_error err = {0};
    loom_status st = loom_plot(&o, out, &err);
    if (st) fprintf(stderr, "loom %s\n", err.msg); /* "plot: ..." */
    rc = tool_exit(st);
done:
    free(files), free(label_buf);
    return rc;
}
