/* loom/plot.h — curves from CSV files with a header row (training metrics
 * as `loom train --metrics` writes them, gradient norms per step as
 * loom_state_norms_rows writes them) drawn as lines with Cairo, and heat
 * maps, into SVG or PNG (by the extension, written atomically). */
#ifndef LOOM_PLOT_H
#define LOOM_PLOT_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *const *files;   /* CSV files: the x column and the one plotted */
    const char *const *labels;  /* one per file (NULL: the file names) */
    int n;
    const char *x;              /* the x column (default "step", else "t") */
    const char *column;         /* the column drawn (default the first of perplexity, loss,
                                   norm64, norm that the first file has) */
    const char *dashed;         /* a second column drawn dashed in the same colour (default
                                   "valid_perplexity" when plotting perplexity and present) */
    /* Rows are split into curves by these comma-separated columns (default
     * "step,layer,direction,state,gate", less the x column): a file of gradient
     * norms per (t, layer, direction, state) gives one curve per layer,
     * direction and state, named by the values that differ ("h", "c"). */
    const char *by;
    /* Only rows whose column equals the value: "state=h" or
     * "state=h,layer=0" (NULL: every row). */
    const char *where;
    bool log_y;                 /* a logarithmic y axis (also chosen when the values span more
                                   than a factor of 30, unless linear_y) */
    bool linear_y;              /* a linear y axis in any case */
    bool log_x;                 /* a logarithmic x axis (decades; x ≤ 0 left out) */
    const char *title, *xlabel, *ylabel; /* NULL: none, the x column, the column */
} loom_plot_opts;

/* Writes the plot; the reason of a failure in err (which may be NULL). */
loom_status loom_plot(const loom_plot_opts *o, const char *path, loom_error *err);
bool loom_plot_available(void); /* false when loom was built without Cairo */

/* Curves given as arrays rather than files (x ascending; points that are
 * not finite left out), drawn as loom_plot draws them with o's axes, title
 * and labels (o may be NULL; its file options are not used). */
typedef struct {
    const char *name;    /* the legend's */
    const double *x, *y;
    int64_t n;
} loom_series;
loom_status loom_plot_series(const loom_series *s, int n, const loom_plot_opts *o, const char *path, loom_error *err);

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

/* Labelled points (a t-SNE map of word vectors): each a dot with its label
 * beside it, the axes' numbers left out (only the distances mean anything). */
typedef struct {
    const float *xy;           /* n × 2 */
    int n;
    const char *const *labels; /* n (may be NULL) */
    const char *title;
} loom_points;
loom_status loom_plot_points(const loom_points *p, const char *path, loom_error *err);

#ifdef __cplusplus
}
#endif
#endif
