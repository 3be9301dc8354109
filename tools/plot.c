/* `loom plot`: training curves from metrics files, one labelled curve per
 * file (RNN vs GRU vs LSTM on one picture). */
#include "tool.h"

#include "loom/loom.h"

#include <stdlib.h>
#include <string.h>

const char plot_help[] =
    "draw training curves from metrics files (loom train --metrics) as .svg or .png\n"
    "  -o FILE               the picture (.svg or .png)\n"
    "  --column C            what to draw (default perplexity, with valid_perplexity dashed;\n"
    "                        loss when there is no perplexity)\n"
    "  --labels A,B,...      one label per file (default: the file names)\n"
    "  --log                 a logarithmic y axis\n"
    "  --title TEXT          the title\n";

int cmd_plot(int argc, char **argv)
{
    const char **files = calloc((size_t)argc + 1, sizeof *files), *labels[64] = {0}, *out = NULL;
    char *label_buf = NULL;
    loom_plot_opts o = {0};
    int rc = 2;
    if (!files) return 1;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tool_is_help(f)) {
            tool_help("plot METRICS.csv... -o FILE [options]", plot_help, NULL, 0, false);
            rc = 0;
            goto done;
        }
        if (!strcmp(f, "--log")) {
            o.log_y = true;
            continue;
        }
        if (f[0] != '-') {
            files[o.n++] = f;
            continue;
        }
        if (!tool_valued("loom plot", f, v, (const char *[]){"-o", "--column", "--labels", "--title"}, 4,
                              "loom plot --help"))
            goto done;
        i++;
        if (!strcmp(f, "-o")) out = v;
        else if (!strcmp(f, "--column")) o.column = v;
        else if (!strcmp(f, "--title")) o.title = v;
        else { /* --labels a,b,c */
            free(label_buf);
            if (!(label_buf = strdup(v))) goto done;
            int k = 0;
            for (char *save = NULL, *t = strtok_r(label_buf, ",", &save); t && k < 64; t = strtok_r(NULL, ",", &save)) labels[k++] = t;
            o.labels = labels;
        }
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
    loom_status st = loom_plot(&o, out);
    if (st) fprintf(stderr, "loom %s\n", loom_dot_error()); /* "plot: ..." */
    rc = tool_exit(st);
done:
    free(files), free(label_buf);
    return rc;
}
