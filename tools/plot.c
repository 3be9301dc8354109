/* `loom plot`: training curves from metrics files, one labelled curve per
 * file (RNN vs GRU vs LSTM on one picture). */
#include "tool.h"

#include "loom/loom.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char plot_help[] = "draw training curves from metrics files (loom train --metrics) as .svg or .png\n";

typedef struct {
    const char *out, *column, *labels, *title;
    bool log;
} plot_args;

#define P(field) offsetof(plot_args, field)
const tool_opt plot_opts[] = {
    {"-o", OPT_PATH, P(out), .arg = "FILE", .help = "the picture (.svg or .png)"},
    {"--column", OPT_TEXT, P(column), .arg = "C",
     .help = "what to draw (default perplexity, with valid_perplexity dashed;\nloss when there is no perplexity)"},
    {"--labels", OPT_TEXT, P(labels), .arg = "A,B,...", .help = "one label per file (default: the file names)"},
    {"--log", OPT_FLAG, P(log), .help = "a logarithmic y axis"},
    {"--title", OPT_TEXT, P(title), .arg = "TEXT", .help = "the title"},
};
#undef P
const int n_plot_opts = (int)(sizeof plot_opts / sizeof *plot_opts);

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
        tool_help("plot METRICS.csv... -o FILE [options]", plot_help, plot_opts, n_plot_opts, false);
        rc = 0;
        goto done;
    }
    o.n = n, o.log_y = a.log, o.column = a.column, o.title = a.title, out = a.out;
    if (a.labels) { /* a,b,c */
        if (!(label_buf = strdup(a.labels))) goto done;
        int k = 0;
        for (char *save = NULL, *t = strtok_r(label_buf, ",", &save); t && k < 64; t = strtok_r(NULL, ",", &save)) labels[k++] = t;
        o.labels = labels;
    }
    if (!o.n || !out) {
        fprintf(stderr, "usage: loom plot METRICS.csv... -o FILE.svg|png [options]\n");
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
