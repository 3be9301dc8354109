/* loom/dot.h — Graphviz diagrams of unrolled graphs and their BPTT.
 *
 * Time runs left to right, one cluster per time step; inside a step the
 * layers stack bottom to top (inputs x_t at the bottom, outputs on top).
 * The state a cell hands to the next step travels on one bold recurrent
 * edge per step pair; parameters are drawn once, outside the steps, with
 * light edges to every step that uses them. The backward graph (when drawn)
 * is red and dashed: its edges run from later steps to earlier ones, and
 * each parameter's gradient is one Σ node fed by every step. Truncation cuts
 * are dashed red lines between steps; long sequences can show their first
 * and last k steps around an elision node. The layout is a grid loom
 * computes: every node is pinned and the file asks for Graphviz's "nop2"
 * engine, which routes the edges around the nodes, so `dot -Tsvg` draws the
 * same picture as loom_dot_render.
 */
#ifndef LOOM_DOT_H
#define LOOM_DOT_H

#include "loom/graph.h"
#include "loom/runtime.h"
#include "loom/search.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOOM_DOT_OPS = 0, LOOM_DOT_CELLS } loom_dot_view;
typedef enum { LOOM_DOT_FORWARD = 0, LOOM_DOT_BOTH, LOOM_DOT_BACKWARD } loom_dot_part;
/* How Graphviz draws the edges: around the nodes, as curves (its spline
 * router: the clearest, slow past a few hundred nodes) or at right angles
 * (its orthogonal router: faster, edges may share a channel), or straight
 * (instant; an edge may then pass behind a node it does not touch). AUTO
 * picks by size: curves for small pictures, right angles for larger ones,
 * straight lines past that — and straight lines where Graphviz's router
 * crashes on the picture (loom_dot_render renders in a child process). */
typedef enum { LOOM_DOT_EDGES_AUTO = 0, LOOM_DOT_EDGES_CURVED, LOOM_DOT_EDGES_ORTHO, LOOM_DOT_EDGES_STRAIGHT } loom_dot_edges;
/* DIAGRAM: every node with its name or op and shape, a legend. SLIDE: for a
 * lecture — mathematical labels (h₃, c₃, x₃, o₃, L₃, W_hh, ∂L/∂h₃ as a
 * fraction, gates by name, ops as symbols: σ, tanh, ⊙, +), no shapes, the
 * plumbing hidden (reshape, slice, pad, constants), no legend but the heat
 * scale, large type, and a picture scaled to fill a 16:9 slide (13.33 × 7.5
 * in). */
typedef enum { LOOM_DOT_STYLE_DIAGRAM = 0, LOOM_DOT_STYLE_SLIDE } loom_dot_style;

typedef struct {
    loom_dot_view view;   /* every op, or one box per (step, layer, direction) */
    loom_dot_part part;   /* forward graph, backward graph, or both */
    int first_step;       /* steps drawn: [first_step, last_step]; both 0: all */
    int last_step;
    int steps_shown;      /* > 0: only the first and last k drawn steps, an elision node between */
    /* Gradient heat: ‖∂L/∂h_t‖ per (step, layer, direction), indexed
     * [(t · layers + l) · dirs + d] (loom_state_grad_norms with one state);
     * NULL for none. */
    const float *heat;
    /* The same norms in float64 (loom_state_grad_norms's norm64), or NULL:
     * the colours and labels then show what float32 rounds to 0, marked. */
    const double *heat64;
    int heat_steps, heat_layers, heat_dirs;
    float heat_lo, heat_hi; /* colour scale ends (0: the smallest and largest value drawn, the
                               scale at least three decades; fix them to compare pictures);
                               a norm of 0 has a colour of its own */
    const char *title;
    loom_dot_edges edges;
    loom_dot_style style;
    /* When each node gets its value (loom_plan_ranks; NULL: not known):
     * written as loom_rank (a cell box: the first and last of its nodes'),
     * for the interactive page's step-through of the plan. */
    const int32_t *rank;
    /* Each node's values on a batch (loom_value_stats: min, max, mean, L2
     * norm, 4 per node; NULL: none): written as loom_stats, a cell box
     * its carried state h's (its gradient cell ∂L/∂h's), for the page. */
    const float *stats;
    /* An encoder–decoder's attention weights over one sentence, for the
     * page (NULL: none): attention[i · attention_cols + j] = decoder step i's
     * weight on source position j; the labels of the rows and columns (its
     * tokens) may be NULL (steps by number). The page draws them as a heat
     * map whose row i goes to the i-th attention node ("attention[t]"). */
    const float *attention;
    int attention_rows, attention_cols;
    const char *const *attention_row_labels, *const *attention_col_labels;
    /* Draw only the nodes these depend on (NULL: every node). */
    const loom_tensor *roots;
    int n_roots;
} loom_dot_opts;

/* Writes DOT text for g. Node ids are the graph's node indices (stable
 * between runs that build the same graph). */
loom_status loom_dot_write(const loom_graph *g, FILE *f, const loom_dot_opts *opts, loom_error *err);
/* The same into a malloc'd string (*out, *len). */
loom_status loom_dot_string(const loom_graph *g, const loom_dot_opts *opts, char **out, size_t *len, loom_error *err);

/* An interactive page of g: one self-contained HTML file (no network)
 * that draws the cell view and the op view of the same DOT texts
 * loom_dot_write writes (forward, with backward, backward only; zoom, pan,
 * a node's op, shape and tags on hover, search by name; with opts->rank, a
 * step-through of the plan). opts as for loom_dot_write; its view, part
 * (the page starts there) and style are the page's to choose, and the cell
 * view has every step (steps_shown elides the op view's). */
loom_status loom_dot_html(const loom_graph *g, FILE *f, const loom_dot_opts *opts, loom_error *err);

/* A search's tree (loom_search_tree, loom/search.h) as DOT text in a
 * malloc'd string: left to right from <bos>, a node per continuation the
 * search weighed — its token (labels[token] for tokens below n_labels, else
 * the number) and the log p of its hypothesis — kept ones blue, finished
 * ones (<eos>) green with a double border, pruned ones grey and dashed; the
 * winning hypothesis' path red and bold. Render it with loom_dot_render. */
loom_status loom_search_tree_dot(const loom_search_tree *t, const char *const *labels, int n_labels, const char *title,
                                 char **out, size_t *len, loom_error *err);
/* The same into `path` by its extension: .dot or .gv (the text), .svg,
 * .png, .pdf (rendered); replaced atomically, as loom_dot_save does. */
loom_status loom_search_tree_save(const loom_search_tree *t, const char *const *labels, int n_labels, const char *title,
                                  const char *path, loom_error *err);

/* Lays out DOT text with Graphviz's library and renders it to `path` in
 * `format` ("svg", "png", "pdf", ...), replacing the file atomically.
 * Graphviz runs in a child process (its routers crash on some layouts): a
 * crash is LOOM_ERR_STATE with its reason — or, for a picture whose router
 * loom chose (the graph attribute loom_edges=auto), the picture again with
 * straight edges. LOOM_ERR_STATE when loom was built without Graphviz. */
loom_status loom_dot_render(const char *dot, const char *format, const char *path, loom_error *err);
/* Writes g to `path` in the format its extension names: .dot or .gv (DOT
 * text), .html (the interactive page), .svg, .png, .pdf (rendered). The file is replaced atomically: on
 * any failure the old file, if any, is left as it was. */
loom_status loom_dot_save(const loom_graph *g, const loom_dot_opts *opts, const char *path, loom_error *err);
/* (These functions have no object to keep an error in: the reason of a
 * failure goes to their loom_error * argument, which may be NULL.) */
bool loom_dot_can_render(void);

#ifdef __cplusplus
}
#endif
#endif
