/* loom/plot.h — training curves: metrics files (CSV with a header row, as
 * `loom train --metrics` writes) drawn as lines with Cairo, one labelled
 * curve per file, and heat maps, into SVG or PNG (by the extension,
 * written atomically). */
#ifndef LOOM_PLOT_H
#define LOOM_PLOT_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *const *files;   /* metrics CSV files: a "step" column and the one plotted */
    const char *const *labels;  /* one per file (NULL: the file names) */
    int n;
    const char *column;         /* the column drawn (default "perplexity", else "loss") */
    const char *dashed;         /* a second column drawn dashed in the same colour (default
                                   "valid_perplexity" when plotting perplexity and present) */
    bool log_y;                 /* a logarithmic y axis (also chosen when the values span more
                                   than a factor of 30) */
    const char *title;
} loom_plot_opts;

/* Writes the plot; the reason of a failure in err (which may be NULL). */
loom_status loom_plot(const loom_plot_opts *o, const char *path, loom_error *err);
bool loom_plot_available(void); /* false when loom was built without Cairo */

/* A matrix as a heat map (an attention map: one row per output token, one
 * column per source token), white at 0 to dark blue at its largest value,
 * rows and columns labelled. */
typedef struct {
    const float *w;   /* rows × cols, row-major */
    int rows, cols;
    const char *const *row_labels, *const *col_labels;
    const char *title;
} loom_heatmap;
loom_status loom_plot_heatmap(const loom_heatmap *h, const char *path, loom_error *err);

#ifdef __cplusplus
}
#endif
#endif
