/* DOT export of unrolled graphs, forward and backward (see loom/dot.h).
 *
 * Layout: a grid of our own. Graphviz's general layouts do not keep the
 * order a picture of time needs (its in-rank ordering scrambled steps and
 * rows), so every node is pinned (pos, in points) and the file asks for
 * Graphviz's "nop2" engine, which keeps the nodes where they are and routes
 * only the edges (around the nodes; see splines_for):
 *   - columns: parameters and their Σ gradients on the left, one column per
 *     drawn step (an elision column for long sequences), the loss on the
 *     right;
 *   - cell view rows: x_t at the bottom, the layers upwards (the reverse
 *     direction above the forward one), the step's loss, then the gradient
 *     cells in rows of their own;
 *   - op view: inside a step, a node's column is its depth in the step's
 *     dataflow (the backward graph's runs right to left), its row band that
 *     of its (layer, direction), as in the cell view;
 *   - a carried state enters the next step through one small port node:
 *     exactly one bold recurrent edge per step pair and state;
 *   - truncation cuts are dashed red lines between steps;
 *   - nop draws no clusters: the clusters stay in the file as structure, and
 *     each gets a frame drawn behind its members (the graph's _background). */
#include "loom/dot.h"
#include "loom/rnn.h"
#include "ops/op.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

enum { HIDE = 0, DRAW = 1, ELIDE = 2 };

#define C_FWD_FILL "#e8f0fb"
#define C_FWD_LINE "#4a78b5"
#define C_STATE_FILL "#bcd4f0"
#define C_PARAM_FILL "#fff2cc"
#define C_PARAM_LINE "#b8860b"
#define C_INPUT_FILL "#e2f0d9"
#define C_INPUT_LINE "#548235"
#define C_BWD_FILL "#fde9e7"
#define C_BWD_LINE "#c0504d"
#define C_REC "#1f4e9c"
#define C_CUT "#d62728"

typedef struct {
    int32_t *v;
    int n, cap;
} id_list;

typedef struct {
    const loom_graph *g;
    const loom_dot_opts *o;
    FILE *f;
    int32_t n;
    int T, L, D;          /* steps, layers, directions seen in the graph */
    int lo, hi, k;        /* drawn step range; k > 0: elide the middle */
    bool elide;
    bool *cut;            /* cut[b]: a truncation cut between steps b−1 and b */
    int32_t *param_of;    /* param_of[i]: the parameter node i is the gradient of (loom_grad), else −1 */
    uint8_t *vis;         /* per node */
    uint64_t *seen;       /* set of emitted edges and ports (hashes) */
    uint32_t seen_cap, seen_n;
    int32_t *port_u, *port_t; /* ports: state node u entering step t */
    int n_ports, cap_ports;
    double heat_lo, heat_hi;  /* the colour scale's ends */
    bool heat_zero, heat_under; /* some drawn step's norm is 0; some is 0 in float32 only */
    bool oom;
    bool *clear;          /* cell view: plumbing drawn as nothing; edges pass through it */
    /* the grid (see the top of this file) */
    double *px, *py;      /* per node, inches; NAN: not placed */
    double *col_x;        /* per step: x of its forward column */
    int row_of[256];      /* row key → row (bottom 0) */
    double row_base[256]; /* row key → y of its row (op view: of its band) */
    double colw;          /* width of a step's column */
    bool bb_on;           /* collecting the extent of what is emitted, for a frame */
    double bb[4];         /* xmin, xmax, ymin, ymax (inches, node centres) */
    int n_rows;
    double top_y, right_x, elided_x;
    double legend_y;      /* the legend's bottom row: above the steps and what follows them */
    bool has_bwd;
    id_list *through;     /* for a clear node: the drawn nodes it reads, through other clear ones */
    int32_t *by_step;     /* node ids of step t: by_step[step_start[t] .. step_start[t+1]), in id order */
    int32_t *step_start;
    int32_t *port_order;  /* ports of step t: port_order[port_start[t] .. port_start[t+1]) */
    int32_t *port_start;
    /* cell view with gradients: Σ_t of a parameter's gradient as a chain of
     * points, one per step, in the order BPTT visits the steps */
    uint8_t *acc;         /* per (step, layer, direction): the step's gradient cell feeds the chain */
    uint8_t *bus;         /* per (step, layer, direction): the step's cell is fed by its layer's weight bus */
    int32_t *bus_from;    /* (bus row, parameter, 0) feeding each bus, 3 ints each */
    int bus_rows;         /* rows of buses: one per (layer, direction), then a slide's step rows (bus_key) */
    int bus_key[32], n_bus_key; /* step rows with a bus: grid_key · 16 + its stacked row */
    int n_bus_from, cap_bus_from;
    int32_t *sum_terms;   /* (Σ node, step) pairs: a step's term of a sum over the steps (the loss) */
    int n_sum_terms, cap_sum_terms;
    int32_t *acc_to;      /* (layer, direction, Σ node) the chain ends in, 3 ints each */
    int n_acc_to, cap_acc_to;
    char state_name[LOOM_CELL_MAX_STATES + 1][16]; /* a carried state's name (its node's, "c[3]" → "c") */
    char *bg;             /* the frames, as xdot drawing operations (the graph's _background) */
    size_t bg_n, bg_cap;
    double ext[4];        /* the extent of every node and frame (inches: xmin, xmax, ymin, ymax) */
    double half_w;        /* half the width of the node being emitted (inches; set before its pos_attr) */
    long n_nodes, n_edges; /* emitted: the edge router is chosen by them (splines_for) */
    /* the style: the nodes' font (pt), a vertical unit (rows, gaps), the
     * widths of a cell box, a gradient cell box and a named node in a step (inches) */
    bool slide;
    double fs, u, cell_w, bwd_w, slot_w;
    unsigned *states;     /* per (layer, direction): the carried states its cells have, a bit each */
    uint8_t *sub;         /* cell view: a step's named node's row above its row key's base */
    int32_t *box_rank;    /* cell view with ranks: per box (step, layer, direction slot, backward) its first and last rank */
    int32_t *box_state;   /* cell view with stats: per box the node of its first carried state (h, or ∂L/∂h) */
    char row_stem[256][16]; /* a row of a step's named nodes: the first one's name stem (o of o[3]) */
    int cell_layers;      /* layers of cells (the recurrent layers; an output layer's nodes are tagged above them) */
} dot_ctx;

static const loom_node *N(const dot_ctx *c, int32_t i) { return loom_graph_node(c->g, loom_at(i)); }
static int32_t input_of(const dot_ctx *c, int32_t i, int j) { return loom_index(loom_node_input(c->g, loom_at(i), j)); }

/* ---- a set of 64-bit keys, to emit each edge and port once ---- */

static bool seen_add(dot_ctx *c, uint64_t key)
{
    if (!key) key = 1;
    if ((c->seen_n + 1) * 2 > c->seen_cap) {
        uint32_t cap = c->seen_cap ? c->seen_cap * 2 : 1024;
        uint64_t *t = calloc(cap, sizeof *t);
        if (!t) {
            c->oom = true;
            return false;
        }
        for (uint32_t i = 0; i < c->seen_cap; i++)
            if (c->seen[i])
                for (uint32_t s = (uint32_t)c->seen[i] & (cap - 1);; s = (s + 1) & (cap - 1))
                    if (!t[s]) {
                        t[s] = c->seen[i];
                        break;
                    }
        free(c->seen);
        c->seen = t;
        c->seen_cap = cap;
    }
    for (uint32_t s = (uint32_t)key & (c->seen_cap - 1);; s = (s + 1) & (c->seen_cap - 1)) {
        if (c->seen[s] == key) return false;
        if (!c->seen[s]) {
            c->seen[s] = key;
            c->seen_n++;
            return true;
        }
    }
}

static uint64_t key_of(const char *a, const char *b, const char *cls)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s>%s|%s", a, b, cls);
    return XXH3_64bits(buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

/* ---- what is drawn ---- */

static int step_vis(const dot_ctx *c, int t)
{
    if (t < 0) return DRAW;
    if (t < c->lo || t > c->hi) return HIDE;
    if (c->elide && t >= c->lo + c->k && t <= c->hi - c->k) return ELIDE;
    return DRAW;
}

static bool is_bwd(const loom_node *n) { return n->tags.role == LOOM_ROLE_BACKWARD; }

static int node_vis(const dot_ctx *c, int32_t i)
{
    const loom_node *n = N(c, i);
    bool bwd = is_bwd(n);
    if (c->o->part == LOOM_DOT_FORWARD && bwd) return HIDE;
    if (c->o->part == LOOM_DOT_BACKWARD && !bwd) return HIDE;
    /* the seed and zero fills of the backward pass say nothing on a diagram */
    if (bwd && n->n_in == 0) return HIDE;
    return step_vis(c, n->tags.step);
}

/* A state carried from one step into another of the same layer and direction. */
static bool is_recurrent(const loom_node *u, const loom_node *v)
{
    return u->tags.state > 0 && u->tags.step >= 0 && v->tags.step >= 0 && u->tags.step != v->tags.step &&
           u->tags.layer == v->tags.layer && u->tags.dir == v->tags.dir && !is_bwd(u) && !is_bwd(v);
}

/* Computed from parameters alone and shared by the steps (a slice of a
 * weight): drawn beside the parameters, feeding the steps like one. */
static bool is_param_side(const loom_node *n)
{
    return n->invariant && n->n_in > 0 && n->tags.step < 0 && n->tags.role == LOOM_ROLE_FORWARD;
}

static const char *edge_class(const loom_node *u, const loom_node *v)
{
    if (u->tags.role == LOOM_ROLE_PARAM || is_param_side(u)) return "param";
    if (is_bwd(u) && is_bwd(v)) return "grad";
    if (is_bwd(v)) return "value";
    if (is_recurrent(u, v)) return "recurrent";
    if (u->tags.role == LOOM_ROLE_INPUT || u->tags.layer == -1) return "input";
    return "forward";
}

static const char *role_name(const loom_node *n)
{
    switch (n->tags.role) {
    case LOOM_ROLE_INPUT: return "input";
    case LOOM_ROLE_PARAM: return "param";
    case LOOM_ROLE_CONST: return "const";
    case LOOM_ROLE_BACKWARD: return "backward";
    default: return "forward";
    }
}

/* The gradient of a parameter (loom_grad), a backward node outside the steps. */
static bool is_param_grad(const dot_ctx *c, int32_t i)
{
    return c->param_of[i] >= 0 && is_bwd(N(c, i)) && N(c, i)->tags.step < 0;
}

/* ---- text ---- */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

static bool in_cell(const dot_ctx *c, const loom_node *n);
static int grid_key(const loom_node *n);

/* A carried state's name, as the cell names it: the stem of its nodes'
 * names (an equation cell's left-hand side, or h, c, s2 from the
 * unroller). */
static bool find_state_names(dot_ctx *c)
{
    c->states = calloc((size_t)c->L * c->D + 1, sizeof *c->states);
    if (!c->states) return false;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *u = N(c, i);
        const char *nm = loom_tensor_name(c->g, loom_at(i));
        int s = u->tags.state;
        if (nm && !is_bwd(u) && u->tags.step >= 0 && !in_cell(c, u) && !c->row_stem[grid_key(u)][0]) /* o[3] → o */
            snprintf(c->row_stem[grid_key(u)], sizeof c->row_stem[0], "%.*s", (int)strcspn(nm, "["), nm);
        if (s >= 1 && s <= LOOM_CELL_MAX_STATES && in_cell(c, u) && !is_bwd(u) && u->tags.layer < c->L && u->tags.dir < c->D)
            c->states[u->tags.layer * c->D + u->tags.dir] |= 1u << s;
        if (s < 1 || s > LOOM_CELL_MAX_STATES || c->state_name[s][0] || !nm) continue;
        size_t len = strcspn(nm, "[");
        if (len && len < sizeof c->state_name[s] && nm[len] == '[') snprintf(c->state_name[s], sizeof c->state_name[s], "%.*s", (int)len, nm);
    }
    for (int k = 0; k < c->L * c->D; k++) /* the recurrent layers: those whose cells carry a state */
        if (c->states[k] && k / c->D + 1 > c->cell_layers) c->cell_layers = k / c->D + 1;
    return true;
}

static const char *state_letter(const dot_ctx *c, int state)
{
    if (state >= 1 && state <= LOOM_CELL_MAX_STATES && c->state_name[state][0]) return c->state_name[state];
    return state == 1 ? "h" : state == 2 ? "c" : "s";
}

/* The norm of step t's state (float64 when given), or −1 where there is none. */
static double heat_of(const dot_ctx *c, int t, int l, int d)
{
    const loom_dot_opts *o = c->o;
    if (!o->heat || t < 0 || l < 0 || d < 0 || t >= o->heat_steps || l >= o->heat_layers || d >= o->heat_dirs) return -1;
    size_t i = ((size_t)t * o->heat_layers + l) * o->heat_dirs + d;
    return o->heat64 ? o->heat64[i] : o->heat[i];
}

/* Whether float32 rounded the norm to 0 where float64 has it. */
static bool heat_underflows(const dot_ctx *c, int t, int l, int d)
{
    const loom_dot_opts *o = c->o;
    if (!o->heat || !o->heat64 || heat_of(c, t, l, d) <= 0) return false;
    return o->heat[((size_t)t * o->heat_layers + l) * o->heat_dirs + d] == 0;
}

/* heat_of gives −1 where there is no value; a NaN norm is drawn (grey). */
static bool has_heat(double h) { return h >= 0 || isnan(h); }

#define C_HEAT_ZERO "#ffffff" /* a norm of exactly 0: no gradient reaches the step (a cut, a loss that ignores it) */
#define C_HEAT_NAN "#bdbdbd"

/* Sequential palette (light yellow → dark red) on a log scale of the
 * gradient norms: colour stops of ColorBrewer's YlOrRd; white for 0, grey
 * for NaN. */
static void heat_colour(const dot_ctx *c, double v, char *buf, size_t n)
{
    static const int stops[5][3] = {{255, 255, 204}, {254, 217, 118}, {253, 141, 60}, {227, 26, 28}, {128, 0, 38}};
    if (isnan(v) || v == 0) {
        snprintf(buf, n, "%s", v == 0 ? C_HEAT_ZERO : C_HEAT_NAN);
        return;
    }
    double x = 0;
    if (c->heat_hi > c->heat_lo && v > 0)
        x = (log10(v) - log10(c->heat_lo)) / (log10(c->heat_hi) - log10(c->heat_lo));
    /* an infinite norm is the hottest colour */
    if (isnan(x)) x = isinf(v) ? 1 : 0;
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    double p = x * 4;
    int a = (int)p < 4 ? (int)p : 3;
    double w = p - a;
    int rgb[3];
    for (int i = 0; i < 3; i++) rgb[i] = (int)lround(stops[a][i] * (1 - w) + stops[a + 1][i] * w);
    snprintf(buf, n, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* The legend's i-th of five swatches: from the scale's low end to its high
 * one, evenly on its log scale. */
static double heat_stop(const dot_ctx *c, int i)
{
    return c->heat_hi > c->heat_lo ? pow(10, log10(c->heat_lo) + (log10(c->heat_hi) - log10(c->heat_lo)) * i / 4) : c->heat_hi;
}

static void heat_attrs(const dot_ctx *c, double v)
{
    char col[16];
    heat_colour(c, v, col, sizeof col);
    fprintf(c->f, ", fillcolor=\"%s\", fontcolor=\"%s\", loom_grad_norm=\"%.6g\"%s", col,
            v > 0 && c->heat_hi > c->heat_lo && log10(v) > (log10(c->heat_lo) + log10(c->heat_hi)) / 2 ? "white" : "black",
            v, v == 0 ? ", style=\"rounded,filled,dashed\"" : "");
}

/* The norm as a label line: "‖∂L/∂h‖ 1.23e-04", "‖∂L/∂h‖ 0", or, where
 * float32 underflows, "‖∂L/∂h‖ 5.0e-58 (0 in float32)". */
static void heat_text(const dot_ctx *c, int t, int l, int d, char *buf, size_t n)
{
    double h = heat_of(c, t, l, d);
    if (h == 0) snprintf(buf, n, "‖∂L/∂h‖ 0");
    else snprintf(buf, n, "‖∂L/∂h‖ %.2e%s", h, heat_underflows(c, t, l, d) ? " (0 in float32)" : "");
}

/* ---- slide labels: mathematical notation as Graphviz HTML-like labels ----
 *
 * A label is built with its width: every visible character counts 0.6 em
 * (Helvetica's average), a Unicode subscript or superscript 0.45; the
 * widest line decides. Names: x[3] of step 3 is x₄ (steps count from 1);
 * weight_hh_l1 is W_hh⁽²⁾ (layers from 1, shown when there are several),
 * its _reverse direction ←W_hh; module.weight is W with the module's name
 * below; U_f is U with f below. A gradient is the fraction ∂L over ∂x. */

typedef struct {
    char *s;
    size_t size, at;
    double line, w; /* ems: the current line, the widest */
} lab;

static void lab_raw(lab *b, const char *t)
{
    int k = snprintf(b->s + b->at, b->size - b->at, "%s", t);
    b->at = k < 0 || (size_t)k >= b->size - b->at ? b->size - 1 : b->at + (size_t)k;
}

/* Visible text, escaped for HTML; `em`: the width of one character. */
static void lab_text(lab *b, const char *t, double em)
{
    for (const char *p = t; *p; p++) {
        char one[8] = {*p, 0};
        lab_raw(b, *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '"' ? "&quot;" : one);
        if (((unsigned char)*p & 0xC0) != 0x80) b->line += em;
    }
    b->w = fmax(b->w, b->line);
}

static void lab_line(lab *b) { b->line = 0; }

/* s below the line: Unicode subscripts where every character has one
 * (digits; a e h i j k l m n o p r s t u v x), else <SUB>. */
static void lab_sub(lab *b, const char *s)
{
    static const char letters[] = "aehijklmnoprstuvx";
    static const char *const lsub[] = {"ₐ", "ₑ", "ₕ", "ᵢ", "ⱼ", "ₖ", "ₗ", "ₘ", "ₙ", "ₒ", "ₚ", "ᵣ", "ₛ", "ₜ", "ᵤ", "ᵥ", "ₓ"};
    static const char *const dsub[] = {"₀", "₁", "₂", "₃", "₄", "₅", "₆", "₇", "₈", "₉"};
    bool unicode = *s != 0;
    for (const char *p = s; *p; p++) unicode = unicode && ((*p >= '0' && *p <= '9') || (*p && strchr(letters, *p)));
    if (!unicode) {
        lab_raw(b, "<SUB>");
        lab_text(b, s, 0.5);
        lab_raw(b, "</SUB>");
        return;
    }
    for (const char *p = s; *p; p++) {
        lab_raw(b, *p <= '9' ? dsub[*p - '0'] : lsub[strchr(letters, *p) - letters]);
        b->line += 0.45;
    }
    b->w = fmax(b->w, b->line);
}

static void lab_sub_int(lab *b, int k)
{
    char d[16];
    snprintf(d, sizeof d, "%d", k);
    lab_sub(b, d);
}

/* ⁽ˡ⁾: the layer (from 1), when the model has several. */
static void lab_layer(const dot_ctx *c, lab *b, int layer)
{
    static const char *const dsup[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    if (c->cell_layers < 2 || layer < 0) return;
    char d[16];
    snprintf(d, sizeof d, "%d", layer + 1);
    lab_raw(b, "⁽");
    for (const char *p = d; *p; p++) lab_raw(b, dsup[*p - '0']);
    lab_raw(b, "⁾");
    b->line += 0.45 * (double)(strlen(d) + 2);
    b->w = fmax(b->w, b->line);
}

/* stem at step t (from 1, below) of a layer (above, when there are
 * several; −1: none): h₃⁽²⁾. */
static void lab_at(const dot_ctx *c, lab *b, const char *stem, int t, int layer)
{
    lab_text(b, stem, 0.6);
    lab_sub_int(b, t + 1);
    lab_layer(c, b, layer);
}

/* A node's name in mathematical notation (see above). */
static void lab_name(const dot_ctx *c, lab *b, const char *name, int step, int layer, int dir)
{
    const char *dot = strrchr(name, '.'), *base = dot ? dot + 1 : name;
    size_t len = strcspn(name, "[");
    char *end = NULL;
    long k = name[len] == '[' ? strtol(name + len + 1, &end, 10) : -1;
    if (c->D > 1 && dir == 1) lab_text(b, "←", 0.6);
    if (step >= 0 && k == step && end && *end == ']' && !end[1]) { /* x[3] of step 3: x₄ */
        char stem[96];
        snprintf(stem, sizeof stem, "%.*s", (int)(len < 95 ? len : 95), name);
        lab_at(c, b, !strcmp(stem, "attention") ? "α" : stem, step, layer); /* attention weights: α_t, as the course writes them */
        return;
    }
    char kind[8], sub[32], rest[32];
    int l = -1, n = 0;
    if (sscanf(base, "%7[a-z]_%31[a-z]_l%d%n", kind, sub, &l, &n) == 3 && (!strcmp(kind, "weight") || !strcmp(kind, "bias")) &&
        (!base[n] || !strcmp(base + n, "_reverse"))) { /* weight_hh_l0 (PyTorch's names): W_hh */
        if (c->D > 1 && base[n] && dir != 1) lab_text(b, "←", 0.6);
        lab_text(b, kind[0] == 'w' ? "W" : "b", 0.6);
        lab_sub(b, sub);
        lab_layer(c, b, l);
    } else if (dot && (!strcmp(base, "weight") || !strcmp(base, "bias"))) { /* output.weight: W below output */
        const char *m = name;
        for (const char *p = name; p < dot; p++)
            if (*p == '.') m = p + 1;
        snprintf(rest, sizeof rest, "%.*s", (int)(dot - m), m);
        if (sscanf(rest, "%7[A-Za-z]_%31[A-Za-z0-9]%n", kind, sub, &n) == 2 && !rest[n]) { /* W_q.weight: W_q */
            lab_text(b, kind, 0.6);
            lab_sub(b, sub);
        } else {
            lab_text(b, base[0] == 'w' ? "W" : "b", 0.6);
            lab_sub(b, rest);
        }
    } else if (sscanf(base, "%7[A-Za-z]_%31[A-Za-z0-9]%n", kind, rest, &n) == 2 && !base[n]) { /* U_f */
        lab_text(b, kind, 0.6);
        lab_sub(b, rest);
    } else {
        lab_text(b, name, 0.6);
        return;
    }
    /* a weight of one part of a model of several (encoder.rnn.weight_ih_l0):
     * the part above, its first three letters */
    const char *part_end = strchr(name, '.');
    if (part_end && part_end != dot && part_end - name >= 1) {
        snprintf(rest, sizeof rest, "%.*s", (int)(part_end - name < 3 ? part_end - name : 3), name);
        lab_raw(b, "<SUP>");
        lab_text(b, rest, 0.5);
        lab_raw(b, "</SUP>");
    }
}

/* The fraction ∂L over ∂(what is written by `below`). */
static void lab_frac_open(lab *b)
{
    lab_raw(b, "<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"0\"><TR><TD SIDES=\"B\" BORDER=\"1\">");
    lab_text(b, "∂L", 0.6);
    lab_raw(b, "</TD></TR><TR><TD>");
    lab_line(b);
    lab_text(b, "∂", 0.6);
}
static void lab_frac_close(lab *b) { lab_raw(b, "</TD></TR></TABLE>"); }

/* An equation cell's name (as the page looks its equations up), or NULL
 * for a node no equation cell built. */
static const char *eq_cell(const loom_graph *g, const loom_node *n)
{
    const char *cell = loom_graph_label_text(g, n->tags.cell);
    return cell && loom_cell_equations(loom_cell_by_name(cell)) > 0 ? cell : NULL;
}

/* loom_eq="CELL:K": built by statement K (from 1) of equation cell CELL */
static void tag_attrs(FILE *f, const loom_graph *g, const loom_node *n)
{
    fprintf(f, ", loom_step=%d, loom_layer=%d, loom_dir=%d, loom_role=%s", n->tags.step, n->tags.layer, n->tags.dir,
            role_name(n));
    const char *cell = n->tags.eq ? eq_cell(g, n) : NULL;
    if (cell) fprintf(f, ", loom_eq=\"%s:%d\"", cell, n->tags.eq);
}

/* ---- the grid ---- */

#define ROW_H 0.9   /* inches between rows */
#define BWD_DX 0.55 /* gradient cells sit a little right, clear of the loss */

/* Forward rows first (bottom to top), gradient rows above them. */
static int grid_key(const loom_node *n)
{
    return (is_bwd(n) ? 128 : 0) + (((n->tags.layer + 1) * 10 + n->tags.dir) & 127);
}
static double row_y(const dot_ctx *c, const loom_node *n) { return c->row_base[grid_key(n)]; }

/* Positions are written in points, for Graphviz's "nop2" engine (neato -n2):
 * it draws nodes where they are told and lays out only the edges. */
static void pos_attr(dot_ctx *c, double x, double y)
{
    if (x != x || y != y) return;
    fprintf(c->f, ", pos=\"%.1f,%.1f!\"", x * 72, y * 72);
    c->n_nodes++;
    /* a node reaches past its centre by half its width (half_w, else a cell box's) and height */
    double hw = c->half_w > 0 ? c->half_w : c->cell_w / 2;
    c->half_w = 0;
    c->ext[0] = fmin(c->ext[0], x - hw - 0.1), c->ext[1] = fmax(c->ext[1], x + hw + 0.1);
    c->ext[2] = fmin(c->ext[2], y - 0.4 * c->u), c->ext[3] = fmax(c->ext[3], y + 0.4 * c->u);
    if (c->bb_on) {
        c->bb[0] = fmin(c->bb[0], x - hw), c->bb[1] = fmax(c->bb[1], x + hw);
        c->bb[2] = fmin(c->bb[2], y), c->bb[3] = fmax(c->bb[3], y);
    }
}

/* nop draws no cluster boxes: a cluster's frame is drawn behind the graph
 * (xdot operations in its _background: a rounded outline around the nodes
 * emitted since frame_begin, its label on top), and two invisible points at
 * its corners keep it inside the picture. A frame is no node, so Graphviz
 * routes edges around the nodes inside it (splines=true). */
static void frame_begin(dot_ctx *c)
{
    c->bb_on = true;
    c->bb[0] = c->bb[2] = INFINITY;
    c->bb[1] = c->bb[3] = -INFINITY;
}

static void bg_add(dot_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bg_add(dot_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || c->oom) return;
    if (c->bg_n + (size_t)k + 1 > c->bg_cap) {
        size_t cap = (c->bg_n + (size_t)k + 1) * 2;
        char *b = realloc(c->bg, cap);
        if (!b) {
            c->oom = true;
            return;
        }
        c->bg = b, c->bg_cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(c->bg + c->bg_n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    c->bg_n += (size_t)k;
}

/* A rounded rectangle (points) as one xdot B-spline: straight sides (their
 * control points on the line), quarter circles at the corners. */
static void bg_round_rect(dot_ctx *c, double x0, double y0, double x1, double y1, double r)
{
    double k = 0.5523 * r; /* a quarter circle's control distance */
    double p[][2] = {{x0 + r, y0}, {x0 + r, y0}, {x1 - r, y0}, {x1 - r, y0}, {x1 - r + k, y0}, {x1, y0 + r - k}, {x1, y0 + r},
                     {x1, y0 + r}, {x1, y1 - r}, {x1, y1 - r}, {x1, y1 - r + k}, {x1 - r + k, y1}, {x1 - r, y1},
                     {x1 - r, y1}, {x0 + r, y1}, {x0 + r, y1}, {x0 + r - k, y1}, {x0, y1 - r + k}, {x0, y1 - r},
                     {x0, y1 - r}, {x0, y0 + r}, {x0, y0 + r}, {x0, y0 + r - k}, {x0 + r - k, y0}, {x0 + r, y0}};
    int n = (int)(sizeof p / sizeof *p);
    bg_add(c, "b %d", n);
    for (int i = 0; i < n; i++) bg_add(c, " %.1f %.1f", p[i][0], p[i][1]);
    bg_add(c, " ");
}

static void frame_end(dot_ctx *c, const char *id, const char *label, const char *style, const char *color, int fontsize)
{
    c->bb_on = false;
    if (c->bb[0] > c->bb[1]) return;
    double mx = 0.2, my = 0.35 * c->u, top = 0.25 + fontsize / 40.0; /* bb[0..1]: the nodes' edges, bb[2..3]: their centres */
    double x0 = (c->bb[0] - mx) * 72, x1 = (c->bb[1] + mx) * 72, y0 = (c->bb[2] - my) * 72, y1 = (c->bb[3] + my + top) * 72;
    const char *lc = strcmp(color, C_CUT) ? "black" : C_CUT;
    bg_add(c, "c %zu -%s S %zu -%s ", strlen(color), color, strlen(strstr(style, "dashed") ? "dashed" : "solid"),
           strstr(style, "dashed") ? "dashed" : "solid");
    bg_round_rect(c, x0, y0, x1, y1, 9);
    bg_add(c, "F %d.0 9 -Helvetica c %zu -%s T %.1f %.1f 0 %.1f %zu -%s ", fontsize, strlen(lc), lc, (x0 + x1) / 2,
           y1 - fontsize - 3.0, 0.6 * fontsize * (double)strlen(label), strlen(label), label);
    (void)id;
    c->ext[0] = fmin(c->ext[0], x0 / 72), c->ext[1] = fmax(c->ext[1], x1 / 72);
    c->ext[2] = fmin(c->ext[2], y0 / 72), c->ext[3] = fmax(c->ext[3], y1 / 72);
}

/* Two invisible points at the corners of everything drawn: the picture's
 * extent includes the frames (which Graphviz does not measure). Outside
 * every node, they touch none (edge routing needs nodes apart). */
static void emit_extent(dot_ctx *c)
{
    if (!c->bg_n || !(c->ext[0] < c->ext[1])) return;
    double e[4] = {c->ext[0] - 0.05, c->ext[1] + 0.05, c->ext[2] - 0.05, c->ext[3] + 0.05};
    for (int k = 0; k < 2; k++)
        fprintf(c->f, "  frame_extent_%c [shape=point, style=invis, width=0, height=0, label=\"\", loom_role=frame, "
                      "pos=\"%.1f,%.1f!\"];\n",
                "ab"[k], e[k] * 72, e[2 + k] * 72);
}

#define SLOT_W 1.25 /* the distance between nodes side by side in one row of a step */

/* Columns: the parameters (and their Σ gradients) on the left, one column
 * per drawn step, an elision column, and a last column for what lies outside
 * the steps (the loss). Rows: the input x_t at the bottom, then each layer
 * (reverse direction above forward), then what a step adds on top (its
 * loss), then the gradient cells, layer by layer, in rows of their own. */
static bool drawn(const dot_ctx *c, int32_t i) { return c->vis[i] == DRAW && !(c->clear && c->clear[i]); }

/* Op view: inside a step, a node's column is its depth in the step's
 * dataflow (forward: left to right from the step's inputs; backward: right
 * to left, the gradient arriving on the right), its row band is its
 * (layer, direction) as in the cell view, and nodes of one band and depth
 * stack in node order. Steps are identical, so every step is drawn alike. */
#define OP_DX 1.0
#define OP_DY 0.5
static double node_label(const dot_ctx *c, int32_t i, char *buf, size_t size);

/* The drawn nodes v reads at input j: the input, or the drawn nodes behind
 * it when it is hidden plumbing (at most `max`). */
static int drawn_inputs(const dot_ctx *c, int32_t v, int j, int32_t *out, int max)
{
    int32_t u = input_of(c, v, j);
    if (!(c->clear && c->clear[u])) return out[0] = u, 1;
    int k = 0;
    for (; k < c->through[u].n && k < max; k++) out[k] = c->through[u].v[k];
    return k;
}

static bool plan_op_steps(dot_ctx *c, double *colw)
{
    int32_t *depth = calloc((size_t)c->n + 1, sizeof *depth);
    if (!depth) return false;
    int maxd = 0;
    for (int32_t v = 0; v < c->n; v++) {
        const loom_node *nv = N(c, v);
        if (!drawn(c, v) || nv->tags.step < 0 || is_bwd(nv)) continue;
        for (int j = 0; j < nv->n_in; j++) {
            int32_t us[16];
            for (int k = 0, nu_n = drawn_inputs(c, v, j, us, 16); k < nu_n; k++) {
                int32_t u = us[k];
                const loom_node *nu = N(c, u);
                if (drawn(c, u) && nu->tags.step == nv->tags.step && !is_bwd(nu) && !is_recurrent(nu, nv) &&
                    depth[u] + 1 > depth[v])
                    depth[v] = depth[u] + 1;
            }
        }
        maxd = depth[v] > maxd ? depth[v] : maxd;
    }
    for (int32_t v = c->n - 1; v >= 0; v--) {
        const loom_node *nv = N(c, v);
        if (!drawn(c, v) || nv->tags.step < 0 || !is_bwd(nv)) continue;
        maxd = depth[v] > maxd ? depth[v] : maxd;
        for (int j = 0; j < nv->n_in; j++) {
            int32_t us[16];
            for (int k = 0, nu_n = drawn_inputs(c, v, j, us, 16); k < nu_n; k++) {
                int32_t u = us[k];
                const loom_node *nu = N(c, u);
                if (drawn(c, u) && nu->tags.step == nv->tags.step && is_bwd(nu) && depth[v] + 1 > depth[u])
                    depth[u] = depth[v] + 1;
            }
        }
    }
    int D1 = maxd + 1, *cnt = calloc((size_t)256 * D1, sizeof *cnt), band_h[256] = {0};
    double *xoff = calloc((size_t)D1 + 1, sizeof *xoff); /* each depth's x in a step: as wide as its widest label */
    if (!cnt || !xoff) {
        free(depth), free(cnt), free(xoff);
        return false;
    }
    for (int32_t i = 0; i < c->n; i++) {
        if (!drawn(c, i) || N(c, i)->tags.step < 0) continue;
        char label[1024];
        xoff[depth[i]] = fmax(xoff[depth[i]], node_label(c, i, label, sizeof label) + 0.15);
    }
    double dx = c->slide ? 0.7 * OP_DX : OP_DX, dy = OP_DY * c->u;
    for (int d = 0; d <= maxd; d++) xoff[d] = fmax(xoff[d], dx); /* widths, then the centres */
    double at = dx, prev = 0;
    for (int d = 0; d <= maxd; d++) {
        double w = xoff[d];
        at += d ? prev / 2 + w / 2 : 0;
        prev = w, xoff[d] = at;
    }
    double step_w = xoff[maxd] + prev / 2 + 1.5 * dx;
    /* band heights: the most nodes any step puts at one depth of the band */
    for (int pass = 0; pass < 2; pass++) {
        int32_t cur = -2;
        for (int32_t i = 0; i < c->n; i++) {
            const loom_node *n = N(c, i);
            if (!drawn(c, i) || n->tags.step < 0) continue;
            if (n->tags.step != cur) memset(cnt, 0, (size_t)256 * D1 * sizeof *cnt), cur = n->tags.step;
            int k = grid_key(n), idx = cnt[k * D1 + depth[i]]++;
            if (pass == 0 && idx + 1 > band_h[k]) band_h[k] = idx + 1;
            if (pass == 1) {
                c->px[i] = c->col_x[n->tags.step] + xoff[depth[i]];
                c->py[i] = c->row_base[k] + idx * dy;
            }
        }
        if (pass == 0) {
            double acc = 0;
            for (int k = 0; k < 256; k++) {
                c->row_base[k] = acc;
                if (band_h[k]) acc += band_h[k] * dy + 0.35 * c->u;
            }
            c->top_y = acc > 0 ? acc - 0.35 * c->u - dy : 0;
            *colw = step_w;
            /* columns of the drawn steps */
            double x = 0;
            bool el = false;
            for (int t = c->lo; t <= c->hi; t++) {
                int sv = step_vis(c, t);
                if (sv == DRAW) c->col_x[t] = x, x += *colw;
                else if (sv == ELIDE && !el) c->elided_x = x + 0.6, x += 1.8, el = true; /* the label's centre, room on both sides */
            }
            c->right_x = x;
        }
    }
    free(cnt), free(xoff);
    free(depth);
    return true;
}

/* A forward sum outside the steps of one term per step (the loss
 * L = Σ_t l_t): the y of the chain that feeds it, just under the terms'
 * row; NAN for any other node. */
static double sum_row(const dot_ctx *c, int32_t v)
{
    const loom_node *n = N(c, v);
    if (!(loom_op(n->op)->flags & OPF_SUM) || n->tags.step >= 0 || is_bwd(n) || n->n_in < 3) return NAN;
    const loom_node *u = N(c, input_of(c, v, 0));
    int32_t ui = input_of(c, v, 0);
    double y = c->py[ui] == c->py[ui] ? c->py[ui] : row_y(c, u); /* the term's row (a slide stacks a step's nodes) */
    return u->tags.step >= 0 && !is_bwd(u) ? y - 0.42 * c->u : NAN;
}

static bool is_step_node(const dot_ctx *c, int32_t i)
{
    const loom_node *n = N(c, i);
    return drawn(c, i) && !in_cell(c, n) && n->tags.step >= 0 && n->tags.role != LOOM_ROLE_PARAM && !is_param_side(n) &&
           !is_param_grad(c, i);
}

/* Cell view: a step's named nodes of one row key stack upwards in
 * their dataflow order (o_t, then L_t above it), the ones that read nothing
 * drawn in the step (targets y_t) on top, so a step stays one column wide;
 * the rows above make room. */
static bool plan_step_rows(dot_ctx *c, const bool *used)
{
    if (!(c->sub = calloc((size_t)c->n + 1, 1))) return false;
    int nsub[256] = {0};
    for (int32_t i = 0; i < c->n; i++) {
        if (!is_step_node(c, i)) continue;
        const loom_node *n = N(c, i);
        int d = -1;
        bool reads = false; /* anything drawn */
        for (int j = 0; j < n->n_in; j++) {
            int32_t us[16];
            for (int k = 0, m = drawn_inputs(c, i, j, us, 16); k < m; k++)
                if ((reads = reads || c->vis[us[k]] != HIDE), is_step_node(c, us[k]) && N(c, us[k])->tags.step == n->tags.step && grid_key(N(c, us[k])) == grid_key(n) &&
                    c->sub[us[k]] != 255 && c->sub[us[k]] > d)
                    d = c->sub[us[k]];
        }
        c->sub[i] = reads ? (uint8_t)(d + 1 < 14 ? d + 1 : 14) : 255; /* a source: on top, below */
    }
    for (int32_t i = 0; i < c->n; i++)
        if (is_step_node(c, i) && c->sub[i] != 255 && c->sub[i] + 1 > nsub[grid_key(N(c, i))]) nsub[grid_key(N(c, i))] = c->sub[i] + 1;
    for (int32_t i = 0; i < c->n; i++) /* a row key with sources only (inputs x_t): its base row */
        if (is_step_node(c, i) && c->sub[i] == 255) c->sub[i] = (uint8_t)nsub[grid_key(N(c, i))];
    for (int32_t i = 0; i < c->n; i++)
        if (is_step_node(c, i) && c->sub[i] + 1 > nsub[grid_key(N(c, i))]) nsub[grid_key(N(c, i))] = c->sub[i] + 1;
    double acc = 0, h = ROW_H * c->u;
    for (int k = 0; k < 256; k++) {
        if (!used[k]) continue;
        c->row_base[k] = acc;
        acc += h * (nsub[k] > 1 ? nsub[k] : 1);
    }
    c->top_y = acc > 0 ? acc - h : 0;
    return true;
}

/* Columns: the parameters (and their Σ gradients) on the left, one column
 * per drawn step, an elision column, and a last column for what lies outside
 * the steps (the loss). Rows: the input x_t at the bottom, then each layer
 * (reverse direction above forward), then what a step adds on top (its
 * loss), then the gradient cells, layer by layer, in rows of their own. */
static bool grid_plan(dot_ctx *c)
{
    c->px = malloc((size_t)c->n * sizeof *c->px + 1);
    c->py = malloc((size_t)c->n * sizeof *c->py + 1);
    c->col_x = calloc((size_t)c->T + 1, sizeof *c->col_x);
    if (!c->px || !c->py || !c->col_x) return false;
    bool used[256] = {false}, ops = c->o->view == LOOM_DOT_OPS;
    for (int32_t i = 0; i < c->n; i++) {
        c->px[i] = c->py[i] = NAN;
        const loom_node *n = N(c, i);
        if (!drawn(c, i)) continue;
        if (n->tags.step >= 0) used[grid_key(n)] = true;
        if (is_bwd(n) && n->tags.step >= 0) c->has_bwd = true;
    }
    c->n_rows = 0;
    for (int k = 0; k < 256; k++) {
        c->row_of[k] = used[k] ? c->n_rows++ : 0;
        c->row_base[k] = c->row_of[k] * ROW_H * c->u;
    }
    c->top_y = (c->n_rows > 0 ? c->n_rows - 1 : 0) * ROW_H * c->u;
    if (!ops && !plan_step_rows(c, used)) return false;
    double colw = c->has_bwd ? 2.3 : 1.9, x = 0;
    if (c->slide && !ops) { /* as wide as the widest label of the last step (the most digits), and a gap */
        for (int32_t i = 0; i < c->n; i++) {
            const loom_node *n = N(c, i);
            if (!drawn(c, i) || n->tags.step != c->hi || n->tags.role == LOOM_ROLE_PARAM || is_param_side(n)) continue;
            char label[1024];
            double w = node_label(c, i, label, sizeof label);
            if (!in_cell(c, n)) c->slot_w = fmax(c->slot_w, w);
            else if (is_bwd(n)) c->bwd_w = fmax(c->bwd_w, w);
            else c->cell_w = fmax(c->cell_w, w);
        }
        bool named = false; /* recurrent edges labelled h, c need room */
        for (int k = 0; k < c->L * c->D; k++) named = named || __builtin_popcount(c->states[k]) > 1;
        colw = fmax(fmax(c->cell_w, c->bwd_w), c->slot_w) + (named ? 0.6 : 0.3);
    }
    /* cell view: named nodes of one step's row (a decoder's input x_t and
     * its attention weights) stand side by side; the column makes room */
    int most = 1;
    for (int32_t i = 0, count[256 * 16], last = -1; !ops && i < c->n; i++) {
        const loom_node *n = N(c, i);
        if (!is_step_node(c, i)) continue;
        if (n->tags.step != last) memset(count, 0, sizeof count), last = n->tags.step;
        int k = grid_key(n) * 16 + (c->sub ? c->sub[i] & 15 : 0);
        if (++count[k] > most) most = count[k];
    }
    double slot = c->slide ? c->slot_w + 0.25 : SLOT_W;
    if (most > 1 && colw < 0.3 + slot * most) colw = 0.3 + slot * most;
    if (ops) {
        if (!plan_op_steps(c, &colw)) return false;
    } else {
        bool el = false;
        for (int t = c->lo; t <= c->hi; t++) {
            int sv = step_vis(c, t);
            if (sv == DRAW) {
                c->col_x[t] = x;
                x += colw;
            } else if (sv == ELIDE && !el) {
                double w = c->slide ? c->fs * 11 * 0.6 / 72 + 0.4 : 2.2; /* "⋯ 84 steps ⋯" */
                c->elided_x = x - colw / 2 + w / 2; /* the label's centre, clear of the steps on both sides */
                x += w;
                el = true;
            }
        }
        c->right_x = x;
    }
    c->colw = colw;
    /* nodes that are not cell boxes: parameters on the left, each Σ gradient
     * level with its parameter, further left; sources that feed the steps (inputs, lengths)
     * just left of the first step; what follows the steps (an output layer,
     * the loss) right of the last one, climbing above the top row so that
     * the edges into it from every step stay visible */
    int slot_of[256 * 16] = {0}, n_param = 0, n_out = 0, n_src = 0;
    int32_t last_step = -1;
    uint8_t *after = calloc((size_t)c->n + 1, 1); /* depends on some step */
    if (!after) return false;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *n = N(c, i);
        for (int j = 0; j < n->n_in && !after[i]; j++) {
            int32_t u = input_of(c, i, j);
            after[i] = N(c, u)->tags.step >= 0 || after[u];
        }
    }
    /* columns as wide as their widest label: the sources just left of the
     * first step's frame, the parameters left of them, and the Σ gradients
     * left of their parameters (the many edges from parameters into the
     * steps cross nothing, the few into the Σ nodes cross them) */
    double w_src = 0, w_param = 0, w_grad = 0;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *n = N(c, i);
        if (!drawn(c, i) || (!ops && in_cell(c, n)) || n->tags.step >= 0) continue;
        char label[1024];
        double w = node_label(c, i, label, sizeof label);
        if (n->tags.role == LOOM_ROLE_PARAM || is_param_side(n)) w_param = fmax(w_param, w);
        else if (is_param_grad(c, i)) w_grad = fmax(w_grad, w);
        else if (!after[i]) w_src = fmax(w_src, w);
    }
    double first_left = ops ? -0.6 : -c->cell_w / 2 - 0.25; /* the first step's frame */
    double least = c->slide ? 0 : 1; /* a diagram's columns are at least as far left as these */
    double src_x = fmin(-1.15 * least, first_left - 0.3 - w_src / 2);
    double param_x = fmin(-2.3 * least, (w_src > 0 ? src_x - w_src / 2 : first_left) - 0.45 - w_param / 2);
    double grad_x = fmin(-4.1 * least, param_x - w_param / 2 - 0.35 - w_grad / 2);
    double u = c->u;
    c->legend_y = c->top_y;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *n = N(c, i);
        if (!drawn(c, i) || (!ops && in_cell(c, n)) || (ops && n->tags.step >= 0)) continue;
        if (n->tags.role == LOOM_ROLE_PARAM || is_param_side(n)) {
            c->px[i] = param_x;
            c->py[i] = c->top_y - 0.6 * u * n_param++;
        } else if (is_param_grad(c, i)) {
            int32_t p = c->param_of[i];
            c->px[i] = grad_x;
            c->py[i] = p >= 0 && c->py[p] == c->py[p] ? c->py[p] : c->top_y - 0.6 * u * n_param++;
        } else if (n->tags.step >= 0) {
            if (n->tags.step != last_step) memset(slot_of, 0, sizeof slot_of), last_step = n->tags.step;
            int sub = c->sub ? c->sub[i] & 15 : 0;
            c->px[i] = c->col_x[n->tags.step] + slot * slot_of[grid_key(n) * 16 + sub]++;
            c->py[i] = row_y(c, n) + sub * ROW_H * c->u;
        } else if (!after[i]) {
            c->px[i] = src_x;
            c->py[i] = 0.5 * u * n_src++;
        } else if (!ops && sum_row(c, i) == sum_row(c, i)) {
            c->px[i] = c->right_x + 0.3; /* a sum over the steps: at the end of its chain (bundle_sum_term) */
            c->py[i] = sum_row(c, i);
        } else {
            c->px[i] = c->right_x + 0.3;
            c->py[i] = c->top_y + (0.8 + 0.6 * n_out++) * u;
            c->legend_y = c->py[i] > c->legend_y ? c->py[i] : c->legend_y;
        }
    }
    free(after);
    return true;
}

/* One op node. */
/* A name as the picture shows it: "x[0]" of step 0 is x[1], as the steps
 * are counted from t = 1 (and as loom's errors count them). */
static void display_name(const char *name, int step, char *buf, size_t n)
{
    size_t len = strcspn(name, "[");
    char *end;
    long k = name[len] == '[' ? strtol(name + len + 1, &end, 10) : -1;
    if (step >= 0 && k == step && *end == ']' && !end[1]) snprintf(buf, n, "%.*s[%ld]", (int)len, name, k + 1);
    else snprintf(buf, n, "%s", name);
}

/* A node's label (lines apart by '\n'): its name or op, its shape; a
 * gradient of a carried state is ∂L/∂h[t]; the heat's norm below. */
static void op_label(const dot_ctx *c, int32_t i, char *buf, size_t size)
{
    const loom_node *n = N(c, i);
    const char *name = loom_tensor_name(c->g, loom_at(i)), *op = loom_op_name(n->op);
    unsigned flags = loom_op(n->op)->flags;
    /* a gradient summed over several uses (a weight shared by the steps) */
    bool sigma = is_bwd(n) && n->n_in > 1 && (flags & OPF_SUM);
    bool source = n->tags.role == LOOM_ROLE_PARAM || n->tags.role == LOOM_ROLE_INPUT;
    char sh[64], nm[96];
    loom_shape_str(n->shape, sh, sizeof sh);
    size_t at = 0;
    if (flags & OPF_FILL) {
        at = (size_t)snprintf(buf, size, "%g", n->attr.f[0]);
    } else if (is_bwd(n) && n->tags.state > 0 && n->tags.step >= 0) { /* the gradient BPTT carries: ∂L/∂h_t */
        at = (size_t)snprintf(buf, size, "∂L/∂%s[%d]\n%s", state_letter(c, n->tags.state), n->tags.step + 1, sh);
    } else if (name) {
        display_name(name, n->tags.step, nm, sizeof nm);
        at = (size_t)snprintf(buf, size, "%s%s\n%s%s%s", sigma ? "Σ " : "", nm, source || sigma ? "" : op,
                              source || sigma ? "" : " ", sh);
    } else {
        at = (size_t)snprintf(buf, size, "%s%s\n%s", sigma ? "Σ " : "", sigma ? "∂" : op, sh);
    }
    double h = n->tags.state == 1 ? heat_of(c, n->tags.step, n->tags.layer, n->tags.dir) : -1;
    if (has_heat(h) && at + 1 < size) {
        buf[at++] = '\n';
        heat_text(c, n->tags.step, n->tags.layer, n->tags.dir, buf + at, size - at);
    }
}

/* About how wide Graphviz draws a label (inches; Helvetica 9 pt): its
 * longest line's characters (UTF-8 code points) and the margins. */
static double label_width(const char *label)
{
    size_t longest = 0, line = 0;
    for (const char *p = label; *p; p++) {
        if (*p == '\n') line = 0;
        else if (((unsigned char)*p & 0xC0) != 0x80 && ++line > longest) longest = line;
    }
    return 0.2 + 0.075 * (double)longest;
}

/* The heat's norm on a slide: a line of its own, "5e-28", "0"; a star
 * where float32 rounds it to 0 (the heat legend says so). */
static void lab_heat(const dot_ctx *c, lab *b, int t, int l, int d)
{
    double h = heat_of(c, t, l, d);
    if (!has_heat(h)) return;
    char v[32];
    snprintf(v, sizeof v, h == 0 ? "0" : "%.0e%s", h, heat_underflows(c, t, l, d) ? "*" : "");
    lab_raw(b, "<BR/>");
    lab_line(b);
    lab_text(b, v, 0.6);
}

/* A node's label on a slide: its name in notation, a gradient as ∂L/∂x,
 * else the op's symbol. */
static void slide_label(const dot_ctx *c, int32_t i, lab *b)
{
    const loom_node *n = N(c, i);
    const loom_op_desc *op = loom_op(n->op);
    const char *name = loom_tensor_name(c->g, loom_at(i));
    int t = n->tags.step, l = n->tags.layer, d = n->tags.dir;
    if (op->flags & OPF_FILL) {
        char v[32];
        snprintf(v, sizeof v, "%g", n->attr.f[0]);
        lab_text(b, v, 0.6);
    } else if (is_bwd(n) && n->tags.state > 0 && t >= 0) { /* the gradient BPTT carries */
        lab_frac_open(b);
        if (c->D > 1 && d == 1) lab_text(b, "←", 0.6);
        lab_at(c, b, state_letter(c, n->tags.state), t, l);
        lab_frac_close(b);
    } else if (is_param_grad(c, i)) {
        const loom_node *p = N(c, c->param_of[i]);
        const char *pn = loom_tensor_name(c->g, loom_at(c->param_of[i]));
        lab_frac_open(b);
        lab_name(c, b, pn ? pn : "θ", -1, p->tags.layer, p->tags.dir);
        lab_frac_close(b);
    } else if (name) {
        lab_name(c, b, name, t, d < 2 ? l : -1, d);
    } else {
        lab_text(b, op->symbol ? op->symbol : op->name, 0.6);
    }
    if (n->tags.state == 1 && !is_bwd(n)) lab_heat(c, b, t, l, d);
}

/* A cell box on a slide: the states it computes (h₃ and c₃ below it), or
 * for its gradient cell ∂L over them. */
static void slide_cell_label(const dot_ctx *c, const loom_node *nd, lab *b)
{
    int t = nd->tags.step, l = nd->tags.layer, d = nd->tags.dir;
    if (d >= 2) { /* an output layer's gradient: ∂L/∂o_t */
        const char *stem = c->row_stem[grid_key(nd) & 127];
        lab_frac_open(b);
        lab_at(c, b, stem[0] ? stem : "y", t, -1);
        lab_frac_close(b);
        return;
    }
    unsigned m = l < c->L && d < c->D ? c->states[l * c->D + d] : 0;
    if (!m) { /* a layer that carries nothing (an output layer drawn as cells): its name */
        const char *cell = loom_graph_label_text(c->g, nd->tags.cell);
        if (is_bwd(nd)) lab_frac_open(b);
        lab_at(c, b, cell ? cell : "y", t, -1);
        if (is_bwd(nd)) lab_frac_close(b);
        return;
    }
    if (is_bwd(nd)) lab_frac_open(b);
    if (c->D > 1 && d == 1) lab_text(b, "←", 0.6);
    for (int s = 1, first = 1; s <= LOOM_CELL_MAX_STATES; s++) {
        if (!(m & 1u << s)) continue;
        if (!first) { /* a state a line: narrow columns */
            lab_raw(b, "<BR/>");
            lab_line(b);
            if (is_bwd(nd)) lab_text(b, "∂", 0.6);
        }
        first = 0;
        lab_at(c, b, state_letter(c, s), t, l);
    }
    if (is_bwd(nd)) lab_frac_close(b);
    else lab_heat(c, b, t, l, d);
}

/* A label in the picture's style (slide: HTML-like, else plain text with
 * newlines) and its width in inches (the node's font, Graphviz's margins). */
static double node_label(const dot_ctx *c, int32_t i, char *buf, size_t size)
{
    if (!c->slide) {
        op_label(c, i, buf, size);
        return label_width(buf);
    }
    lab b = {buf, size, 0, 0, 0};
    buf[0] = 0;
    const loom_node *n = N(c, i);
    if (c->o->view == LOOM_DOT_CELLS && in_cell(c, n)) slide_cell_label(c, n, &b);
    else slide_label(c, i, &b);
    return 0.22 + b.w * c->fs / 72;
}

/* A node's values on the batch (loom_dot_opts.stats): "min max mean norm". */
static void stats_attr(const dot_ctx *c, int32_t i)
{
    const float *s = c->o->stats ? c->o->stats + 4 * (int64_t)i : NULL;
    if (s && !isnan(s[3])) fprintf(c->f, ", loom_stats=\"%.4g %.4g %.4g %.4g\"", s[0], s[1], s[2], s[3]);
}

/* A drawn node none of whose inputs is drawn (targets y_t behind hidden slices). */
static bool reads_nothing(const dot_ctx *c, int32_t i)
{
    for (int j = 0; j < N(c, i)->n_in; j++) {
        int32_t us[16];
        if (drawn_inputs(c, i, j, us, 16) > 0 && c->vis[us[0]] != HIDE) return false;
    }
    return true;
}

static void emit_op_node(dot_ctx *c, int32_t i)
{
    const loom_node *n = N(c, i);
    bool sigma = is_bwd(n) && n->n_in > 1 && (loom_op(n->op)->flags & OPF_SUM);
    char label[1024];
    double w = node_label(c, i, label, sizeof label);
    FILE *f = c->f;
    fprintf(f, "    n%d [label=", i);
    if (c->slide) fprintf(f, "<%s>", label);
    else {
        fputc('"', f);
        for (const char *p = label; *p; p++) { /* newlines as DOT's \n */
            if (*p == '\n') fputs("\\n", f);
            else {
                if (*p == '"' || *p == '\\') fputc('\\', f);
                fputc(*p, f);
            }
        }
        fputc('"', f);
    }
    double h = n->tags.state == 1 ? heat_of(c, n->tags.step, n->tags.layer, n->tags.dir) : -1;
    if (n->tags.role == LOOM_ROLE_PARAM) fprintf(f, ", fillcolor=\"" C_PARAM_FILL "\", color=\"" C_PARAM_LINE "\"");
    else if (n->tags.role == LOOM_ROLE_INPUT || (n->tags.layer == -1 && n->tags.step >= 0 && !is_bwd(n)) ||
             (c->clear && n->n_in > 0 && is_step_node(c, i) && reads_nothing(c, i)))
        fprintf(f, ", fillcolor=\"" C_INPUT_FILL "\", color=\"" C_INPUT_LINE "\"");
    else if (n->tags.role == LOOM_ROLE_CONST)
        fprintf(f, ", shape=plain, style=\"\", fontcolor=\"#777777\", fontsize=%g", c->slide ? c->fs : 8);
    else if (is_bwd(n))
        fprintf(f, ", fillcolor=\"" C_BWD_FILL "\", color=\"" C_BWD_LINE "\"%s", sigma ? ", penwidth=2.2" : "");
    else if (n->tags.state > 0) fprintf(f, ", fillcolor=\"" C_STATE_FILL "\", color=\"" C_REC "\", penwidth=1.8");
    if (has_heat(h)) heat_attrs(c, h);
    c->half_w = n->tags.role == LOOM_ROLE_CONST ? 0.3 : w / 2;
    pos_attr(c, c->px[i], c->py[i]);
    tag_attrs(f, c->g, n);
    if (c->o->rank && c->o->rank[i] >= 0) fprintf(f, ", loom_rank=\"%d:%d\"", c->o->rank[i], c->o->rank[i]);
    stats_attr(c, i);
    fprintf(f, ", loom_state=%d];\n", n->tags.state);
}

/* ---- cells ---- */

/* A cell's node: a step's node of a layer and direction; a backward node
 * of a step's layer above them too (an output layer's gradient at step t:
 * one box ∂L/∂o_t, between the loss and the top layer's gradient cell). */
static bool in_cell(const dot_ctx *c, const loom_node *n)
{
    if (n->tags.step < 0 || n->tags.layer < 0) return false;
    if (n->tags.dir >= 2) /* above the directions, under named nodes (o_t): what computes their gradient */
        return n->tags.role == LOOM_ROLE_BACKWARD && !(loom_op(n->op)->flags & OPF_LAYOUT) && c->row_stem[grid_key(n) & 127][0];
    return n->tags.role == LOOM_ROLE_FORWARD || n->tags.role == LOOM_ROLE_BACKWARD;
}

/* Id of the drawn object a node belongs to: its cell box in the cell view,
 * itself otherwise; "elided" for elided steps. */
static void obj_id(const dot_ctx *c, int32_t i, char *buf, size_t n)
{
    const loom_node *nd = N(c, i);
    if (c->vis[i] == ELIDE) snprintf(buf, n, "elided");
    else if (c->o->view == LOOM_DOT_CELLS && in_cell(c, nd))
        snprintf(buf, n, "%c_%d_%d_%d", is_bwd(nd) ? 'b' : 'f', nd->tags.step, nd->tags.layer, nd->tags.dir);
    else snprintf(buf, n, "n%d", i);
}

static int box_index(const dot_ctx *c, int t, int l, int d, bool bwd)
{
    return ((t * c->L + l) * (c->D + 1) + (d >= 2 ? c->D : d)) * 2 + bwd;
}

/* Each cell box's first and last rank: when the plan starts and ends it. */
static bool find_box_ranks(dot_ctx *c)
{
    size_t n = (size_t)c->T * c->L * (c->D + 1) * 2;
    if (!(c->box_rank = malloc(2 * n * sizeof *c->box_rank + 1)) || !(c->box_state = malloc(n * sizeof *c->box_state + 1)))
        return false;
    for (size_t k = 0; k < 2 * n; k++) c->box_rank[k] = -1;
    for (size_t k = 0; k < n; k++) c->box_state[k] = -1;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *nd = N(c, i);
        if (!in_cell(c, nd) || nd->tags.layer >= c->L) continue;
        int bi = box_index(c, nd->tags.step, nd->tags.layer, nd->tags.dir, is_bwd(nd));
        if (nd->tags.state == 1) c->box_state[bi] = i; /* the last node of state h: the one the step hands on */
        int32_t r = c->o->rank ? c->o->rank[i] : -1;
        if (r < 0) continue;
        int32_t *b = c->box_rank + 2 * bi;
        if (b[0] < 0 || r < b[0]) b[0] = r;
        if (r > b[1]) b[1] = r;
    }
    return true;
}

static void emit_cell_box(dot_ctx *c, const loom_node *nd)
{
    char id[64];
    bool bwd = is_bwd(nd);
    int t = nd->tags.step, l = nd->tags.layer, d = nd->tags.dir;
    snprintf(id, sizeof id, "%c_%d_%d_%d", bwd ? 'b' : 'f', t, l, d);
    if (!seen_add(c, XXH3_64bits(id, strlen(id)))) return;
    FILE *f = c->f;
    double h = bwd ? -1 : heat_of(c, t, l, d);
    if (c->slide) {
        char buf[1024];
        lab b = {buf, sizeof buf, 0, 0, 0};
        slide_cell_label(c, nd, &b);
        fprintf(f, "    %s [shape=box, style=\"rounded,filled\", width=%.2f, height=%.2f, label=<%s>", id,
                bwd ? c->bwd_w : c->cell_w, 0.55 * c->u, buf);
    } else {
        const char *cell = loom_graph_label_text(c->g, nd->tags.cell), *stem = c->row_stem[grid_key(nd) & 127];
        if (d >= 2) /* an output layer's gradient */
            fprintf(f, "    %s [shape=box, style=\"rounded,filled\", width=1.1, height=0.55, label=\"∂L/∂%s[%d]", id,
                    stem[0] ? stem : "y", t + 1);
        else
            fprintf(f, "    %s [shape=box, style=\"rounded,filled\", width=1.1, height=0.55, label=\"%s%s t=%d\\nlayer %d %s",
                    id, bwd ? "∂ " : "", cell ? cell : "cell", t + 1, l, d ? "←" : "→");
        if (has_heat(h)) {
            char ht[96];
            heat_text(c, t, l, d, ht, sizeof ht);
            fprintf(f, "\\n%s", ht);
        }
        fputc('"', f);
    }
    fprintf(f, ", fillcolor=\"%s\", color=\"%s\", penwidth=1.5", bwd ? C_BWD_FILL : C_STATE_FILL,
            bwd ? C_BWD_LINE : C_REC);
    if (has_heat(h)) heat_attrs(c, h);
    c->half_w = (bwd ? c->bwd_w : c->cell_w) / 2;
    pos_attr(c, c->col_x[t] + (bwd ? BWD_DX : 0), row_y(c, nd));
    int32_t *r = c->box_rank ? c->box_rank + 2 * box_index(c, t, l, d, bwd) : NULL;
    if (r && r[0] >= 0) fprintf(f, ", loom_rank=\"%d:%d\"", r[0], r[1]);
    int32_t sn = c->box_state ? c->box_state[box_index(c, t, l, d, bwd)] : -1;
    if (sn >= 0) stats_attr(c, sn);
    const char *eqs = eq_cell(c->g, nd);
    if (eqs) fprintf(f, ", loom_eq=\"%s\"", eqs); /* all its equations */
    fprintf(f, ", loom_step=%d, loom_layer=%d, loom_dir=%d, loom_role=%s, loom_cell=1];\n", t, l, d,
            bwd ? "backward" : "forward");
}

/* ---- edges ---- */

static void edge_style(FILE *f, const char *cls)
{
    if (!strcmp(cls, "grad")) /* written head → tail (see emit_edge), drawn backwards */
        fprintf(f, "dir=back, color=\"" C_BWD_LINE "\", style=dashed, penwidth=1.3");
    else if (!strcmp(cls, "sum")) /* a weight gradient summed over the steps: not a flow between steps */
        fprintf(f, "dir=back, color=\"" C_BWD_LINE "99\", penwidth=0.9, arrowsize=0.5");
    else if (!strcmp(cls, "recurrent"))
        fprintf(f, "color=\"" C_REC "\", penwidth=2.6, arrowsize=0.8");
    else if (!strcmp(cls, "param"))
        fprintf(f, "color=\"#b8860b66\", penwidth=0.6, arrowsize=0.4");
    else if (!strcmp(cls, "value"))
        fprintf(f, "color=\"#c8c8c8\", style=dotted, arrowhead=none, penwidth=0.6");
    else if (!strcmp(cls, "input"))
        fprintf(f, "color=\"" C_INPUT_LINE "\"");
    else
        fprintf(f, "color=\"#555555\"");
}

static void emit_edge(dot_ctx *c, const char *a, const char *b, const char *cls, int state, const char *label)
{
    char k[32];
    snprintf(k, sizeof k, "%s%d", cls, state);
    if (!seen_add(c, key_of(a, b, k))) return;
    /* a gradient edge a → b is written b → a with dir=back: the layout puts
     * the receiving gradient to the left, the arrow still points at it */
    bool rev = !strcmp(cls, "grad") || !strcmp(cls, "sum");
    fprintf(c->f, "    %s -> %s [", rev ? b : a, rev ? a : b);
    c->n_edges++;
    edge_style(c->f, cls);
    if (label) fprintf(c->f, ", xlabel=\"%s\", fontsize=%g, fontcolor=\"%s\"", label, c->slide ? c->fs : 8, rev ? C_BWD_LINE : C_REC);
    fprintf(c->f, ", loom_class=%s, loom_state=%d];\n", cls, state);
}

/* A state u entering step t: the port node through which it does. */
static void port_name(int32_t u, int t, char *buf, size_t n) { snprintf(buf, n, "p%d_%d", u, t); }

static void add_port(dot_ctx *c, int32_t u, int t)
{
    char id[64];
    port_name(u, t, id, sizeof id);
    if (!seen_add(c, XXH3_64bits(id, strlen(id)))) return;
    if (c->n_ports == c->cap_ports) {
        int cap = c->cap_ports ? c->cap_ports * 2 : 64;
        int32_t *a = realloc(c->port_u, (size_t)cap * sizeof *a), *b = a ? realloc(c->port_t, (size_t)cap * sizeof *b) : NULL;
        if (a) c->port_u = a;
        if (b) c->port_t = b;
        if (!a || !b) {
            c->oom = true;
            return;
        }
        c->cap_ports = cap;
    }
    c->port_u[c->n_ports] = u;
    c->port_t[c->n_ports++] = t;
}

/* Groups items 0..n-1 by their step key[i] in [0, T) (stable: in order
 * within a step), so each step's items are visited once, not per step. */
static bool bucket_by_step(int T, const int32_t *key, int32_t n, bool (*take)(const dot_ctx *, int32_t),
                           const dot_ctx *c, int32_t **order, int32_t **start)
{
    *start = calloc((size_t)T + 2, sizeof **start);
    *order = malloc((size_t)n * sizeof **order + 1);
    if (!*start || !*order) return false;
    for (int32_t i = 0; i < n; i++)
        if (take(c, i)) (*start)[key[i] + 1]++;
    for (int t = 0; t < T; t++) (*start)[t + 1] += (*start)[t];
    int32_t *fill = calloc((size_t)T + 1, sizeof *fill);
    if (!fill) return false;
    for (int32_t i = 0; i < n; i++)
        if (take(c, i)) (*order)[(*start)[key[i]] + fill[key[i]]++] = i;
    free(fill);
    return true;
}

static void emit_ports(dot_ctx *c, int t)
{
    for (int32_t k = c->port_start[t]; k < c->port_start[t + 1]; k++) {
        int p = c->port_order[k];
        const loom_node *u = N(c, c->port_u[p]);
        char id[64];
        port_name(c->port_u[p], t, id, sizeof id);
        /* a slide draws the state's node itself (h₂): its port is a point */
        fprintf(c->f, "    %s [shape=circle, width=%s, height=%s, fixedsize=true, fontsize=8, style=filled, fillcolor=\"" C_STATE_FILL
                      "\", color=\"" C_REC "\", label=\"%s\", loom_step=%d, loom_layer=%d, loom_dir=%d, loom_role=port",
                id, c->slide ? "0.12" : "0.3", c->slide ? "0.12" : "0.3", c->slide ? "" : state_letter(c, u->tags.state), t, u->tags.layer, u->tags.dir);
        /* on the grid: at the step's left edge, in its row band */
        c->half_w = c->slide ? 0.1 : 0;
        pos_attr(c, c->col_x[t] + 0.35, c->row_base[grid_key(u)] + (u->tags.state - 1) * OP_DY * c->u);
        fprintf(c->f, "];\n");
    }
}

static void list_add(dot_ctx *c, id_list *l, int32_t x)
{
    for (int i = 0; i < l->n; i++)
        if (l->v[i] == x) return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        int32_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            c->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
}

/* Cell view: a node outside every cell box without a name that only moves
 * data (slices, reshapes, stacking), a constant, or an expression of
 * weights shared by the steps is plumbing, drawn as nothing: edges pass
 * through it. What computes outside the cells (an output layer, a loss) is
 * drawn. A slide's op view hides the unnamed nodes that only move data and
 * the stored constants (a fill, as the zero initial state, is drawn). */
static void find_clear(dot_ctx *c)
{
    /* an input read only through its per-step rows (x_t; targets y_t, a
     * named row behind unnamed slices) is drawn as those rows: a row is a
     * step's node of the input layer, a named step node, or plumbing in a
     * step whose every reader is a row (readers come later: one pass back) */
    uint8_t *rows_only = malloc((size_t)c->n + 1), *row = calloc((size_t)c->n + 1, 1);
    for (int32_t i = 0; rows_only && i < c->n; i++) rows_only[i] = N(c, i)->tags.role == LOOM_ROLE_INPUT ? 3 : 2;
    for (int32_t v = c->n - 1; rows_only && row && v >= 0; v--) { /* rows_only: bit 1, every reader a row; bit 0, an input */
        const loom_node *n = N(c, v);
        if (c->vis[v] == HIDE) continue;
        row[v] = n->tags.step >= 0 && (n->tags.layer == -1 || loom_tensor_name(c->g, loom_at(v)) ||
                                       ((loom_op(n->op)->flags & OPF_LAYOUT) && (rows_only[v] & 2)));
        for (int j = 0; j < n->n_in; j++)
            if (!row[v]) rows_only[input_of(c, v, j)] &= (uint8_t)~2;
    }
    for (int32_t i = 0; rows_only && i < c->n; i++) rows_only[i] = row && rows_only[i] == 3;
    free(row);
    bool cells = c->o->view == LOOM_DOT_CELLS;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *n = N(c, i);
        const loom_op_desc *op = loom_op(n->op);
        /* cell view: inside a step, only cells and named nodes are drawn (a
         * step's loss); outside, what computes (an output layer, the loss).
         * A slide's op view: every op but those that only move data */
        bool plumbing = cells ? n->tags.step >= 0 || n->n_in == 0 || (op->flags & OPF_LAYOUT) || (n->invariant && !(op->flags & OPF_RANDOM))
                              : (n->tags.role == LOOM_ROLE_CONST && !(op->flags & OPF_FILL)) ||
                                    ((op->flags & OPF_LAYOUT) && !op->symbol);
        c->clear[i] = c->vis[i] != HIDE && !(cells && in_cell(c, n)) &&
                      ((!loom_tensor_name(c->g, loom_at(i)) && n->tags.role != LOOM_ROLE_PARAM &&
                        n->tags.role != LOOM_ROLE_INPUT && plumbing) ||
                       (rows_only && rows_only[i]));
        if (!c->clear[i]) continue;
        for (int j = 0; j < n->n_in; j++) {
            int32_t u = input_of(c, i, j);
            if (c->vis[u] == HIDE) continue;
            if (!c->clear[u]) list_add(c, &c->through[i], u);
            else
                for (int k = 0; k < c->through[u].n; k++) list_add(c, &c->through[i], c->through[u].v[k]);
        }
    }
    free(rows_only);
}

/* Chains per (step, layer, direction), and one per layer for the gradient
 * boxes above the directions (an output layer's, direction 2): slot D. */
static int acc_slot(const dot_ctx *c, int d) { return d >= 2 ? c->D : d; }
static int acc_index(const dot_ctx *c, int t, int l, int d) { return (t * c->L + l) * (c->D + 1) + acc_slot(c, d); }
static void acc_name(int t, int l, int d, char *buf, size_t n) { snprintf(buf, n, "acc_%d_%d_%d", t, l, d); }

static bool has_tuple(const int32_t *v, int n, const int32_t *t, int k)
{
    for (int i = 0; i < n; i++)
        if (!memcmp(v + (size_t)i * (size_t)k, t, (size_t)k * sizeof *t)) return true;
    return false;
}

/* Adds a k-tuple to a growing set of them (arrays of k ints), unless it is
 * there already (false when out of memory). */
static bool add_tuple(dot_ctx *c, int32_t **v, int *n, int *cap, const int32_t *t, int k)
{
    if (has_tuple(*v, *n, t, k)) return true;
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 32;
        int32_t *a = realloc(*v, (size_t)nc * (size_t)k * sizeof *a);
        if (!a) return !(c->oom = true);
        *v = a, *cap = nc;
    }
    memcpy(*v + (size_t)*n * (size_t)k, t, (size_t)k * sizeof *t);
    (*n)++;
    return true;
}

/* Cell view: a gradient cell's contribution to a parameter's Σ goes into
 * its layer's accumulation chain (drawn by emit_acc_chains), not straight
 * to the Σ node: one short edge per step and one per parameter, instead of
 * one from every step to every parameter. */
static bool bundle_into_sigma(dot_ctx *c, int32_t u, int32_t v, const char *cell_id)
{
    const loom_node *nu = N(c, u);
    if (!c->acc || !in_cell(c, nu) || !is_bwd(nu) || c->vis[u] != DRAW || !is_param_grad(c, v) ||
        nu->tags.layer >= c->L || (nu->tags.dir >= c->D && nu->tags.dir != 2))
        return false;
    int t = nu->tags.step, l = nu->tags.layer, d = nu->tags.dir;
    char p[64];
    acc_name(t, l, d, p, sizeof p);
    emit_edge(c, cell_id, p, "sum", 0, NULL);
    c->acc[acc_index(c, t, l, d)] = 1;
    int32_t key[3] = {l, d, v};
    add_tuple(c, &c->acc_to, &c->n_acc_to, &c->cap_acc_to, key, 3);
    return true;
}

/* Each accumulation chain: a point under every gradient cell that feeds
 * it, joined in BPTT order (last step to first, or first to last for the
 * reverse direction), the last point feeding the parameters' Σ nodes. */
static void emit_acc_chains(dot_ctx *c)
{
    if (!c->acc) return;
    for (int l = 0; l < c->L; l++)
        for (int slot = 0; slot <= c->D; slot++) {
            int d = slot == c->D ? 2 : slot;
            char prev[64] = "", p[64];
            int last_t = -1;
            for (int k = 0; k < c->T; k++) {
                int t = d == 1 ? k : c->T - 1 - k;
                if (!c->acc[acc_index(c, t, l, d)]) continue;
                acc_name(t, l, d, p, sizeof p);
                fprintf(c->f, "    %s [shape=point, width=0.07, color=\"" C_BWD_LINE "\", label=\"\", loom_step=%d, "
                              "loom_layer=%d, loom_dir=%d, loom_role=acc",
                        p, t, l, d);
                pos_attr(c, c->col_x[t] + BWD_DX - c->bwd_w / 2 - 0.07, c->row_base[128 + (((l + 1) * 10 + d) & 127)] - 0.42 * c->u);
                fprintf(c->f, "];\n");
                if (prev[0]) emit_edge(c, prev, p, "sum", 0, NULL);
                snprintf(prev, sizeof prev, "%s", p);
                last_t = t;
            }
            if (last_t < 0) continue;
            for (int k = 0; k < c->n_acc_to; k++) {
                if (c->acc_to[3 * k] != l || c->acc_to[3 * k + 1] != d) continue;
                char s[64];
                obj_id(c, c->acc_to[3 * k + 2], s, sizeof s);
                emit_edge(c, prev, s, "sum", 0, NULL);
            }
        }
}

static void bus_name(int t, int r, char *buf, size_t n) { snprintf(buf, n, "bus_%d_%d", t, r); }

/* The bus row of what v is: its cell's (layer, direction), or a step's row
 * of named nodes (an output layer o_t); −1: none. */
static int bus_row(dot_ctx *c, int32_t v)
{
    const loom_node *nv = N(c, v);
    if (in_cell(c, nv)) return nv->tags.layer < c->L && nv->tags.dir < c->D ? nv->tags.layer * c->D + nv->tags.dir : -1;
    if (!c->sub || !is_step_node(c, v)) return -1;
    int key = grid_key(nv) * 16 + (c->sub[v] & 15);
    for (int k = 0; k < c->n_bus_key; k++)
        if (c->bus_key[k] == key) return c->L * c->D + k;
    if (c->n_bus_key == 32) return -1;
    c->bus_key[c->n_bus_key] = key;
    return c->L * c->D + c->n_bus_key++;
}

/* Cell view: a parameter of layer l feeds every step's cell of that layer
 * (and its gradient cell, which uses the weights too) through one bus
 * running under the cells — the same weights at every step — instead of an
 * edge from every parameter to every cell; an output layer's weights
 * reach each o_t the same way. */
static bool bundle_weight_use(dot_ctx *c, int32_t u, int32_t v, const char *cell_id)
{
    const loom_node *nu = N(c, u), *nv = N(c, v);
    if (!c->bus || c->vis[v] != DRAW || nu->tags.role != LOOM_ROLE_PARAM) return false;
    if (in_cell(c, nv) && (nu->tags.layer != nv->tags.layer || nu->tags.dir != nv->tags.dir)) return false;
    int t = nv->tags.step, r = bus_row(c, v);
    if (r < 0) return false;
    char p[64];
    bus_name(t, r, p, sizeof p);
    emit_edge(c, p, cell_id, "param", 0, NULL);
    c->bus[(size_t)t * c->bus_rows + r] = 1;
    int32_t key[3] = {r, u, 0};
    add_tuple(c, &c->bus_from, &c->n_bus_from, &c->cap_bus_from, key, 3);
    return true;
}

/* Cell view: a sum over the steps outside them (the loss L = Σ_t l_t) is
 * fed along a chain through the steps instead of by an edge from each. */
static bool bundle_sum_term(dot_ctx *c, int32_t u, int32_t v)
{
    const loom_node *nu = N(c, u), *nv = N(c, v);
    if (!(loom_op(nv->op)->flags & OPF_SUM) || nv->tags.step >= 0 || is_bwd(nv) || nu->tags.step < 0 || is_bwd(nu) ||
        c->vis[u] != DRAW || nv->n_in < 3)
        return false;
    int32_t key[2] = {v, nu->tags.step};
    char a[64], p[64];
    obj_id(c, u, a, sizeof a);
    snprintf(p, sizeof p, "sum_%d_%d", v, nu->tags.step);
    emit_edge(c, a, p, "forward", 0, NULL);
    add_tuple(c, &c->sum_terms, &c->n_sum_terms, &c->cap_sum_terms, key, 2);
    return true;
}

/* The weight buses (left to right under each layer's cells, fed by the
 * layer's parameters at their left end) and the sum chains (through the
 * steps in time order, into the sum on the right). */
static void emit_buses_and_sums(dot_ctx *c)
{
    for (int r = 0; c->bus && r < c->L * c->D + c->n_bus_key; r++) {
        char prev[64] = "", p[64];
        bool cell = r < c->L * c->D;
        int l = cell ? r / c->D : -1, d = cell ? r % c->D : -1, key = cell ? 0 : c->bus_key[r - c->L * c->D];
        double x0 = cell ? -c->cell_w / 2 - 0.07 : -c->slot_w / 2 - 0.07,
               y = cell ? c->row_base[((l + 1) * 10 + d) & 127] : c->row_base[key / 16] + (key % 16) * ROW_H * c->u;
        for (int t = 0; t < c->T; t++) {
            if (!c->bus[(size_t)t * c->bus_rows + r]) continue;
            bus_name(t, r, p, sizeof p);
            fprintf(c->f, "    %s [shape=point, width=0.05, color=\"" C_PARAM_LINE "\", label=\"\", loom_step=%d, "
                          "loom_layer=%d, loom_dir=%d, loom_role=bus",
                    p, t, l, d);
            pos_attr(c, c->col_x[t] + x0, y - 0.36 * c->u);
            fprintf(c->f, "];\n");
            if (prev[0]) emit_edge(c, prev, p, "param", 0, NULL);
            else
                for (int k = 0; k < c->n_bus_from; k++)
                    if (c->bus_from[3 * k] == r) {
                        char s[64];
                        obj_id(c, c->bus_from[3 * k + 1], s, sizeof s);
                        emit_edge(c, s, p, "param", 0, NULL);
                    }
            snprintf(prev, sizeof prev, "%s", p);
        }
    }
    for (int k = 0; k < c->n_sum_terms; k++) {
        int32_t v = c->sum_terms[2 * k];
        bool first = true;
        for (int j = 0; j < k; j++) first = first && c->sum_terms[2 * j] != v;
        if (!first) continue;
        char prev[64] = "", p[64], vs[64];
        for (int t = 0; t < c->T; t++) {
            int32_t key[2] = {v, t};
            if (!has_tuple(c->sum_terms, c->n_sum_terms, key, 2)) continue;
            snprintf(p, sizeof p, "sum_%d_%d", v, t);
            fprintf(c->f, "    %s [shape=point, width=0.07, color=\"#555555\", label=\"\", loom_step=%d, loom_role=sum", p, t);
            pos_attr(c, c->col_x[t] + c->slot_w / 2 + 0.12, sum_row(c, v));
            fprintf(c->f, "];\n");
            if (prev[0]) emit_edge(c, prev, p, "forward", 0, NULL);
            snprintf(prev, sizeof prev, "%s", p);
        }
        obj_id(c, v, vs, sizeof vs);
        if (prev[0]) emit_edge(c, prev, vs, "forward", 0, NULL);
    }
}

/* Whether the cell view names the state a recurrent edge carries: always
 * on a diagram; on a slide, where the boxes name their states (h₂), only
 * when the cell carries several. */
static bool edge_named(const dot_ctx *c, const loom_node *n)
{
    if (!c->slide) return true;
    int l = n->tags.layer, d = n->tags.dir;
    return l >= 0 && d >= 0 && l < c->L && d < c->D && __builtin_popcount(c->states[l * c->D + d]) > 1;
}

static void emit_edges(dot_ctx *c)
{
    char a[64], b[64];
    bool cells = c->o->view == LOOM_DOT_CELLS;
    for (int32_t v = 0; v < c->n; v++) {
        if (c->vis[v] == HIDE || (c->clear && c->clear[v])) continue;
        const loom_node *nv = N(c, v);
        for (int j = 0, k = 0; j < nv->n_in; k = 0, j++) {
            int32_t u0 = input_of(c, v, j);
            if (c->vis[u0] == HIDE) continue;
            /* through clear plumbing to the drawn nodes behind it */
            bool through = c->clear && c->clear[u0];
            int n_src = through ? c->through[u0].n : 1;
          next_source:
            if (k >= n_src) continue;
            int32_t u = through ? c->through[u0].v[k] : u0;
            k++;
            const loom_node *nu = N(c, u);
            const char *cls = edge_class(nu, nv);
            obj_id(c, u, a, sizeof a);
            obj_id(c, v, b, sizeof b);
            if (!strcmp(a, b)) goto next_source; /* inside one cell box, or both elided */
            bool across = nu->tags.step >= 0 && nv->tags.step >= 0 && nu->tags.step != nv->tags.step;
            if (cells && !strcmp(cls, "value") && (across || nu->tags.layer != nv->tags.layer || nu->tags.dir != nv->tags.dir))
                goto next_source; /* the cell view shows a forward cell feeding only its own backward cell */
            if (!strcmp(cls, "recurrent")) {
                char lab[8];
                snprintf(lab, sizeof lab, "%s", state_letter(c, nu->tags.state));
                if (!cells && c->vis[u] == DRAW && c->vis[v] == DRAW) {
                    char p[64];
                    port_name(u, nv->tags.step, p, sizeof p);
                    emit_edge(c, a, p, "recurrent", nu->tags.state, NULL);
                    emit_edge(c, p, b, "forward", 0, NULL);
                } else {
                    emit_edge(c, a, b, "recurrent", nu->tags.state, cells && edge_named(c, nu) ? lab : NULL);
                }
                goto next_source;
            }
            if (cells && !strcmp(cls, "grad") && bundle_into_sigma(c, u, v, a)) goto next_source;
            if (cells && !strcmp(cls, "param") && bundle_weight_use(c, u, v, b)) goto next_source;
            if (cells && bundle_sum_term(c, u, v)) goto next_source;
            /* between steps, a gradient edge into the gradient of a carried
             * state is that state's: one per state, labelled ∂h, ∂c */
            int state = !strcmp(cls, "grad") && across && nv->tags.state ? nv->tags.state : 0;
            char lab[16];
            snprintf(lab, sizeof lab, "∂%s", state_letter(c, state));
            emit_edge(c, a, b, cls, state, cells && state && edge_named(c, nv) ? lab : NULL);
            goto next_source;
        }
    }
    emit_acc_chains(c);
    emit_buses_and_sums(c);
}

/* ---- legend ---- */

/* A legend node; on the grid at column x, row y of the legend's own grid
 * (above the picture). */
static void lg_node(dot_ctx *c, const char *id, const char *attrs, double x, double y)
{
    fprintf(c->f, "    %s [%s", id, attrs);
    pos_attr(c, x * 1.7, c->legend_y + 2.1 + y * 0.55);
    fprintf(c->f, "];\n");
}

/* A slide's only legend: the heat's colour scale, one row above the
 * picture — five swatches of norms, 0 ("none"), the star's meaning. */
static void emit_slide_heat(dot_ctx *c)
{
    if (!c->o->heat || !(c->heat_hi > 0 || c->heat_zero)) return;
    FILE *f = c->f;
    double y = c->legend_y + 1.6 * c->u, x = 0, em = 0.6 * c->fs / 72; /* clear of a frame's label */
    fprintf(f, "  subgraph cluster_legend {\n");
    double hw = (0.22 + 7 * em) / 2;
    c->half_w = hw;
    fprintf(f, "    lg_heat_t [shape=plain, style=\"\", label=\"‖∂L/∂h‖\"");
    pos_attr(c, x, y);
    fprintf(f, "];\n");
    x += hw + 0.1;
    double w = 0.22 + 5 * em;
    for (int i = 0; i < 6; i++) {
        bool zero = i == 5;
        if (zero && !c->heat_zero) break;
        if (!zero && !(c->heat_hi > 0)) continue;
        double v = zero ? 0 : heat_stop(c, i);
        char col[16];
        heat_colour(c, v, col, sizeof col);
        fprintf(f, "    lg_heat%d [width=%.2f, label=\"", i, w);
        fprintf(f, zero ? "0" : "%.0e", v);
        fprintf(f, "\", fillcolor=\"%s\", fontcolor=\"%s\"%s", col, i >= 3 && !zero ? "white" : "black",
                zero ? ", style=\"rounded,filled,dashed\"" : "");
        c->half_w = w / 2;
        pos_attr(c, x + w / 2, y);
        fprintf(f, "];\n");
        x += w + 0.05;
    }
    if (c->heat_under) {
        hw = 0.11 + 6 * em;
        c->half_w = hw;
        fprintf(f, "    lg_heat_under [shape=plain, style=\"\", label=\"* float32: 0\"");
        pos_attr(c, x + 0.2 + hw, y);
        fprintf(f, "];\n");
    }
    fprintf(f, "  }\n");
}

static void emit_legend(dot_ctx *c)
{
    if (c->slide) {
        emit_slide_heat(c);
        return;
    }
    FILE *f = c->f;
    bool bwd = c->o->part != LOOM_DOT_FORWARD, cuts = false;
    for (int t = 1; t < c->T; t++) cuts = cuts || c->cut[t];
    fprintf(f, "  subgraph cluster_legend {\n    label=\"legend\"; fontsize=10; style=\"rounded\"; color=\"#999999\";\n"
               "    node [fontsize=8, width=0.9, height=0.3];\n");
    frame_begin(c);
    lg_node(c, "lg_input", "label=\"input x_t\", fillcolor=\"" C_INPUT_FILL "\", color=\"" C_INPUT_LINE "\"", 0, 1);
    lg_node(c, "lg_op", "label=\"forward op\", fillcolor=\"" C_FWD_FILL "\", color=\"" C_FWD_LINE "\"", 1.2, 1);
    lg_node(c, "lg_state", "label=\"state h_t\", fillcolor=\"" C_STATE_FILL "\", color=\"" C_REC "\", penwidth=1.8", 2.4, 1);
    lg_node(c, "lg_param", "label=\"parameter\", fillcolor=\"" C_PARAM_FILL "\", color=\"" C_PARAM_LINE "\"", 0, 0);
    fprintf(f, "    lg_input -> lg_op [color=\"" C_INPUT_LINE "\", label=\" data\", fontsize=7];\n"
               "    lg_op -> lg_state [color=\"" C_REC "\", penwidth=2.6, label=\" recurrent\", fontsize=7];\n"
               "    lg_param -> lg_op [color=\"#b8860b66\", penwidth=0.6, label=\" weight use\", fontsize=7];\n");
    if (bwd) {
        /* the backward entries on the lower row, with room for their labels */
        lg_node(c, "lg_grad", "label=\"gradient ∂L/∂·\", fillcolor=\"" C_BWD_FILL "\", color=\"" C_BWD_LINE "\"", 2.4, 0);
        lg_node(c, "lg_grad2", "label=\"Σ_t gradient\", fillcolor=\"" C_BWD_FILL "\", color=\"" C_BWD_LINE "\", penwidth=2", 4.0,
                0);
        fprintf(f, "    lg_grad -> lg_grad2 [color=\"" C_BWD_LINE "\", style=dashed, label=\" gradient flow\", fontsize=7];\n"
                   "    lg_state -> lg_grad [color=\"#c8c8c8\", style=dotted, arrowhead=none, label=\" value used\", fontsize=7];\n");
        if (c->acc) { /* the cell view's Σ_t chains */
            lg_node(c, "lg_sum", "shape=point, width=0.07, color=\"" C_BWD_LINE "\", label=\"\"", 4.0, -0.7);
            lg_node(c, "lg_sum_t", "shape=plain, style=\"\", fontsize=7, label=\"Σ over the steps of a layer's weight "
                               "gradients\\n(a sum, not a flow: it may cross a cut)\"", 2.7, -0.7);
            fprintf(f, "    lg_grad2 -> lg_sum [dir=back, color=\"" C_BWD_LINE "99\", penwidth=0.9, arrowsize=0.5];\n");
        }
    }
    if (cuts) {
        fprintf(f, "    subgraph cluster_lg_cut { label=\"truncation segment\"; fontsize=8; style=dashed; color=\"" C_CUT
                   "\"; penwidth=2;\n");
        lg_node(c, "lg_cut", "label=\"no gradient flow\\ncrosses a cut\", shape=plain, style=\"\", fontcolor=\"" C_CUT
                                "\"", 5.8, 0.5);
        lg_node(c, "lg_cut_a", "style=invis, shape=point, width=0, label=\"\"", 5.2, -0.1);
        lg_node(c, "lg_cut_b", "style=invis, shape=point, width=0, label=\"\"", 5.2, 1.1);
        fprintf(f, "    lg_cut_a -> lg_cut_b [color=\"" C_CUT "\", style=dashed, penwidth=2.2, arrowhead=none];\n");
        fprintf(f, "    }\n");
    }
    if (c->o->heat && (c->heat_hi > 0 || c->heat_zero)) {
        char title[160];
        snprintf(title, sizeof title, "label=\"‖∂L/∂h_t‖, log scale\\n%.1e … %.1e\", shape=plain, style=\"\"", c->heat_lo,
                 c->heat_hi);
        lg_node(c, "lg_heat_t", title, 1, 2.2);
        for (int i = 0; c->heat_hi > 0 && i < 5; i++) {
            double v = heat_stop(c, i);
            char col[16], id[16], at[160];
            heat_colour(c, v, col, sizeof col);
            snprintf(id, sizeof id, "lg_heat%d", i);
            snprintf(at, sizeof at, "label=\"%.1e\", fillcolor=\"%s\", fontcolor=\"%s\", width=0.6", v, col,
                     i >= 3 ? "white" : "black");
            lg_node(c, id, at, 1.9 + 0.45 * i, 2.2);
        }
        if (c->heat_zero) /* its own colour: no gradient at all, not a small one */
            lg_node(c, "lg_heat_zero", "label=\"0: none\", fillcolor=\"" C_HEAT_ZERO "\", style=\"rounded,filled,dashed\", "
                                       "width=0.6", 1.9 + 0.45 * 5 + 0.1, 2.2);
        if (c->heat_under)
            lg_node(c, "lg_heat_under", "label=\"(0 in float32): float32 rounds\\nit to 0; the value is float64's\", "
                                        "shape=plain, style=\"\", fontsize=7", 1.9 + 0.45 * 5 + 1.0, 2.2);
    }
    frame_end(c, "frame_legend", "legend", "rounded", "#999999", 10);
    fprintf(f, "  }\n");
}

/* ---- the whole picture ---- */


static void emit_step(dot_ctx *c, int t, bool cells)
{
    FILE *f = c->f;
    fprintf(f, "  subgraph cluster_t%d {\n    label=\"t = %d\"; loom_step=%d;\n", t, t + 1, t);
    frame_begin(c);
    for (int32_t k = c->step_start[t]; k < c->step_start[t + 1]; k++) {
        int32_t i = c->by_step[k];
        const loom_node *nd = N(c, i);
        if (c->vis[i] != DRAW || (c->clear && c->clear[i])) continue;
        if (cells && in_cell(c, nd)) emit_cell_box(c, nd);
        else emit_op_node(c, i);
    }
    if (!cells) emit_ports(c, t);
    /* the frame spans the full height of the grid, so all steps line up */
    char id[32], label[32];
    snprintf(id, sizeof id, "frame_t%d", t);
    snprintf(label, sizeof label, "t = %d", t + 1);
    if (c->bb[0] <= c->bb[1]) {
        c->bb[2] = c->bb[2] < 0 ? c->bb[2] : 0;
        c->bb[3] = c->bb[3] > c->top_y ? c->bb[3] : c->top_y;
    }
    if (c->slide && cells) c->bb_on = false; /* a slide's cells name their step (h₃): no frames */
    else frame_end(c, id, label, "rounded", "#bbbbbb", c->slide ? (int)c->fs : 14);
    fprintf(f, "  }\n");
}

/* ---- the steps of writing: what to draw, where, then the text ---- */

/* Extent of the tags, the drawn step range, and each node's visibility
 * (only what some root depends on, when roots are given). */
static bool select_nodes(dot_ctx *c)
{
    const loom_dot_opts *o = c->o;
    for (int32_t i = 0; i < c->n; i++) {
        loom_tags t = N(c, i)->tags;
        if (t.step + 1 > c->T) c->T = t.step + 1;
        if (t.layer + 1 > c->L) c->L = t.layer + 1;
        if (t.dir < 2 && t.dir + 1 > c->D) c->D = t.dir + 1;
    }
    c->lo = 0;
    c->hi = c->T - 1;
    if (o->first_step || o->last_step) {
        c->lo = o->first_step < 0 ? 0 : o->first_step;
        c->hi = o->last_step >= c->T || o->last_step < c->lo ? c->T - 1 : o->last_step;
    }
    c->k = o->steps_shown;
    c->elide = c->k > 0 && c->hi - c->lo + 1 > 2 * c->k;
    c->vis = malloc((size_t)c->n + 1);
    c->cut = calloc((size_t)c->T + 2, sizeof *c->cut);
    c->param_of = malloc(((size_t)c->n + 1) * sizeof *c->param_of);
    int n_params = loom_graph_params(c->g, NULL, 0);
    loom_tensor *params = malloc(((size_t)n_params + 1) * sizeof *params);
    if (!c->param_of || !params) return free(params), false;
    for (int32_t i = 0; i < c->n; i++) c->param_of[i] = -1;
    loom_graph_params(c->g, params, n_params);
    for (int k = 0; k < n_params; k++) { /* each parameter's gradient, as loom_backward recorded it */
        int32_t gi = loom_index(loom_grad(c->g, params[k]));
        if (gi >= 0 && gi < c->n) c->param_of[gi] = loom_index(params[k]);
    }
    free(params);
    if (!c->vis || !c->cut) return false;
    for (int32_t i = 0; i < c->n; i++) c->vis[i] = (uint8_t)node_vis(c, i);
    if (o->n_roots > 0 && o->roots) {
        uint8_t *need = calloc((size_t)c->n + 1, 1);
        if (!need) return false;
        for (int r = 0; r < o->n_roots; r++)
            if (loom_graph_has(c->g, o->roots[r])) need[loom_index(o->roots[r])] = 1;
        for (int32_t i = c->n - 1; i >= 0; i--)
            if (need[i])
                for (int j = 0; j < N(c, i)->n_in; j++) need[input_of(c, i, j)] = 1;
        for (int32_t i = 0; i < c->n; i++)
            if (!need[i]) c->vis[i] = HIDE;
        free(need);
    }
    return true;
}

/* Truncation cuts (a detach that takes a state from another step) and the
 * heat scale over the drawn steps. */
static void find_cuts_and_heat(dot_ctx *c)
{
    const loom_dot_opts *o = c->o;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *nd = N(c, i);
        if (!(loom_op(nd->op)->flags & OPF_DETACH)) continue;
        const loom_node *src = N(c, input_of(c, i, 0));
        if (src->tags.state == 0 || src->tags.step < 0 || nd->tags.step < 0 || src->tags.step == nd->tags.step) continue;
        int b = src->tags.step < nd->tags.step ? nd->tags.step : src->tags.step;
        if (b > 0 && b <= c->T) c->cut[b] = true;
    }
    c->heat_lo = INFINITY;
    c->heat_hi = 0;
    for (int t = 0; o->heat && t < o->heat_steps; t++)
        for (int l = 0; l < o->heat_layers; l++)
            for (int d = 0; d < o->heat_dirs; d++) {
                double v = heat_of(c, t, l, d);
                if (step_vis(c, t) != DRAW) continue;
                c->heat_zero |= v == 0;
                c->heat_under |= heat_underflows(c, t, l, d);
                if (v > 0 && isfinite(v)) c->heat_lo = fmin(c->heat_lo, v), c->heat_hi = fmax(c->heat_hi, v);
            }
    /* the scale spans at least three decades below the largest norm: norms
     * within a factor of a few (1.56 to 2.02) look alike, as they are */
    if (c->heat_hi > 0 && c->heat_lo > c->heat_hi / 1000) c->heat_lo = c->heat_hi / 1000;
    /* fixed ends must be finite and positive; else the data's */
    if (o->heat_lo > 0 && isfinite(o->heat_lo)) c->heat_lo = o->heat_lo;
    if (o->heat_hi > 0 && isfinite(o->heat_hi)) c->heat_hi = o->heat_hi;
}

static bool has_step(const dot_ctx *c, int32_t i) { return N(c, i)->tags.step >= 0; }
static bool any_item(const dot_ctx *c, int32_t i) { return true; }

/* Plumbing (cell view), the grid, the ports recurrent edges enter by, and
 * each step's nodes and ports grouped for emitting. */
static bool lay_out(dot_ctx *c)
{
    bool cells = c->o->view == LOOM_DOT_CELLS;
    if (cells || c->slide) {
        c->clear = calloc((size_t)c->n + 1, sizeof *c->clear);
        c->through = calloc((size_t)c->n + 1, sizeof *c->through);
        if (!c->clear || !c->through) return false;
        find_clear(c);
    }
    if (c->oom || !grid_plan(c)) return false;
    if (cells && (c->o->rank || c->o->stats) && !find_box_ranks(c)) return false;
    if (cells && c->has_bwd && !(c->acc = calloc((size_t)c->T * c->L * (c->D + 1) + 1, 1))) return false;
    c->bus_rows = c->L * c->D + 32;
    if (cells && !(c->bus = calloc((size_t)c->T * c->bus_rows + 1, 1))) return false;
    /* every recurrent edge between two drawn steps enters through a port */
    for (int32_t v = 0; !cells && v < c->n; v++) {
        if (!drawn(c, v)) continue;
        for (int j = 0; j < N(c, v)->n_in; j++) {
            int32_t us[16];
            for (int k = 0, nu = drawn_inputs(c, v, j, us, 16); k < nu; k++)
                if (c->vis[us[k]] == DRAW && is_recurrent(N(c, us[k]), N(c, v))) add_port(c, us[k], N(c, v)->tags.step);
        }
    }
    int32_t *step = malloc((size_t)c->n * sizeof *step + 1);
    if (!step) return false;
    for (int32_t i = 0; i < c->n; i++) step[i] = N(c, i)->tags.step;
    bool ok = !c->oom && bucket_by_step(c->T, step, c->n, has_step, c, &c->by_step, &c->step_start) &&
              bucket_by_step(c->T, c->port_t, c->n_ports, any_item, c, &c->port_order, &c->port_start);
    free(step);
    return ok;
}

/* The edge router by the picture's size (drawn nodes × edges): Graphviz's
 * spline router takes ~2.5 s at 20 000 (a 12-step LSTM with its gradients
 * in the cell view), its orthogonal one ~4 s at 200 000; past that,
 * straight lines. (Graphviz 2.42's orthogonal router aborts on some
 * layouts: loom_dot_render runs Graphviz in a child process and, for a
 * router it chose — loom_edges=auto — draws straight lines instead.) */
static const char *splines_for(const dot_ctx *c)
{
    static const char *const name[] = {"true", "true", "ortho", "line"};
    loom_dot_edges e = c->o->edges;
    if (e == LOOM_DOT_EDGES_AUTO) {
        double cost = (double)c->n_nodes * (double)c->n_edges;
        e = cost <= 20000 ? LOOM_DOT_EDGES_CURVED : cost <= 200000 ? LOOM_DOT_EDGES_ORTHO : LOOM_DOT_EDGES_STRAIGHT;
    }
    return name[e <= LOOM_DOT_EDGES_STRAIGHT ? e : 0];
}

static void emit_header(dot_ctx *c)
{
    FILE *f = c->f;
    /* nop2: nodes where they are pinned; edges routed by Graphviz (or, with pos, as given) */
    fprintf(f, "digraph loom {\n  graph [layout=nop2, esep=\"+1\", sep=\"+2\", outputorder=nodesfirst, "
               "fontname=\"Helvetica\", labelloc=t, fontsize=%g, label=\"", c->slide ? 1.4 * c->fs : 14);
    esc(f, c->o->title ? c->o->title : "");
    fprintf(f, "\"%s];\n  node [fontname=\"Helvetica\", fontsize=%g, shape=box, style=\"rounded,filled\", "
               "fillcolor=\"" C_FWD_FILL "\", color=\"" C_FWD_LINE "\", height=%.2f];\n"
               "  edge [fontname=\"Helvetica\", arrowsize=%.2f];\n",
            /* a slide's picture fills a 16:9 slide (scaled up or down to 13.33 × 7.5 in) */
            c->slide ? ", size=\"13.333,7.5!\", loom_style=slide" : "", c->fs, 0.3 * c->u, c->slide ? 0.9 : 0.6);
    if (c->slide) fprintf(f, "  node [width=0.4];\n"); /* as wide as their labels (Graphviz's least: 0.75 in) */
}

/* Parameters (and their Σ gradients), once, before the steps. */
static void emit_params(dot_ctx *c)
{
    const char *plabel = c->o->part == LOOM_DOT_FORWARD ? "parameters" : "parameters and their gradients";
    fprintf(c->f, "  subgraph cluster_params {\n    label=\"%s\";\n", plabel);
    frame_begin(c);
    for (int32_t i = 0; i < c->n; i++)
        if (drawn(c, i) && (N(c, i)->tags.role == LOOM_ROLE_PARAM || is_param_side(N(c, i)) || is_param_grad(c, i)))
            emit_op_node(c, i);
    if (c->slide) c->bb_on = false; /* the colours say what a parameter is */
    else frame_end(c, "frame_params", plabel, "rounded", "#e0d090", 12);
    fprintf(c->f, "  }\n");
}

static void emit_elision(dot_ctx *c)
{
    FILE *f = c->f;
    char lab[64];
    snprintf(lab, sizeof lab, "t = %d … %d", c->lo + c->k + 1, c->hi - c->k + 1);
    int fs = c->slide ? (int)c->fs : 12;
    fprintf(f, "  subgraph cluster_elided {\n    label=\"%s\";\n    elided [shape=plain, style=\"\", fontsize=%d, "
               "label=\"⋯ %d steps ⋯\"",
            lab, fs, c->hi - c->lo + 1 - 2 * c->k);
    frame_begin(c);
    c->half_w = 0.65 * fs / 12;
    pos_attr(c, c->elided_x, c->top_y / 2);
    fprintf(f, "];\n");
    c->bb[2] = 0, c->bb[3] = c->top_y;
    frame_end(c, "frame_elided", lab, "rounded,dashed", "#999999", fs);
    fprintf(f, "  }\n");
}

/* A truncation cut before step t: a dashed red line between two columns. */
static void emit_cut(dot_ctx *c, int t)
{
    FILE *f = c->f;
    double xc = c->o->view == LOOM_DOT_CELLS ? (c->col_x[t - 1] + c->col_x[t]) / 2 + (c->has_bwd ? BWD_DX / 2 : 0)
                                             : c->col_x[t] - 0.15;
    fprintf(f, "  cut%d_a [style=invis, shape=point, width=0, label=\"\"", t);
    pos_attr(c, xc, -0.5 * c->u);
    fprintf(f, "];\n  cut%d_b [shape=plain, style=\"\", fontcolor=\"" C_CUT "\", fontsize=%g, label=\"cut\", loom_cut=%d",
            t, c->slide ? c->fs : 9, t);
    pos_attr(c, xc, c->top_y + 1.0 * c->u);
    fprintf(f, "];\n  cut%d_a -> cut%d_b [color=\"" C_CUT "\", style=dashed, penwidth=2.2, arrowhead=none, "
               "loom_class=cut];\n",
            t, t);
}

/* The steps left to right (one elision for the middle of long sequences),
 * then what lies outside the steps: inputs, stacked outputs, the loss. */
static void emit_body(dot_ctx *c)
{
    bool cells = c->o->view == LOOM_DOT_CELLS, elision_done = false;
    for (int t = c->lo; t <= c->hi; t++) {
        if (step_vis(c, t) == ELIDE) {
            if (!elision_done) emit_elision(c);
            elision_done = true;
            continue;
        }
        if (t > c->lo && c->cut[t] && step_vis(c, t - 1) == DRAW) emit_cut(c, t);
        emit_step(c, t, cells);
    }
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *nd = N(c, i);
        if (drawn(c, i) && nd->tags.step < 0 && nd->tags.role != LOOM_ROLE_PARAM && !is_param_side(nd) &&
            !is_param_grad(c, i))
            emit_op_node(c, i);
    }
}

static void ctx_free(dot_ctx *c)
{
    for (int32_t i = 0; c->through && i < c->n; i++) free(c->through[i].v);
    free(c->clear), free(c->through), free(c->px), free(c->py), free(c->col_x);
    free(c->vis), free(c->cut), free(c->param_of), free(c->seen), free(c->port_u), free(c->port_t);
    free(c->by_step), free(c->step_start), free(c->port_order), free(c->port_start);
    free(c->acc), free(c->acc_to), free(c->bus), free(c->bus_from), free(c->sum_terms);
    free(c->bg), free(c->states), free(c->sub), free(c->box_rank), free(c->box_state);
}

static loom_status write_dot(const loom_graph *g, FILE *f, const loom_dot_opts *opts, loom_error *err)
{
    static const loom_dot_opts defaults;
    dot_ctx c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.o = opts ? opts : &defaults;
    c.f = f;
    c.n = loom_graph_size(g);
    c.ext[0] = c.ext[2] = INFINITY, c.ext[1] = c.ext[3] = -INFINITY;
    c.slide = c.o->style == LOOM_DOT_STYLE_SLIDE;
    c.fs = c.slide ? 16 : 9;
    c.u = c.slide ? 1.3 : 1;
    c.cell_w = c.bwd_w = c.slide ? 0.75 : 1.1; /* a slide's are as wide as their labels (grid_plan) */
    c.slot_w = c.slide ? 0.4 : SLOT_W - 0.25;
    bool ok = select_nodes(&c);
    ok = ok && find_state_names(&c);
    if (ok) find_cuts_and_heat(&c);
    ok = ok && lay_out(&c);
    if (ok) {
        emit_header(&c);
        emit_params(&c);
        emit_body(&c);
        emit_edges(&c);
        emit_legend(&c);
        emit_extent(&c);
        fprintf(f, "  graph [splines=%s%s];\n", splines_for(&c), /* now that the picture's size is known */
                c.o->edges == LOOM_DOT_EDGES_AUTO ? ", loom_edges=auto" : "");
        if (c.bg_n) { /* the frames, behind everything: quoted pieces joined by +, each within Graphviz's 16384 bytes */
            fprintf(f, "  graph [_background=\"");
            for (size_t at = 0, piece = 0; at < c.bg_n; at++, piece++) {
                if (piece >= 8000 && c.bg[at] == ' ') fprintf(f, "\"\n    + \""), piece = 0;
                if (c.bg[at] == '"' || c.bg[at] == '\\') fputc('\\', f);
                fputc(c.bg[at], f);
            }
            fprintf(f, "\"];\n");
        }
        fprintf(f, "}\n");
    }
    ok = ok && !c.oom;
    ctx_free(&c);
    if (!ok) return loom_error_set(err, LOOM_ERR_NOMEM, "dot: out of memory drawing %d nodes", c.n);
    return ferror(f) ? loom_error_set(err, LOOM_ERR_IO, "dot: write error") : LOOM_OK;
}

loom_status loom_dot_write(const loom_graph *g, FILE *f, const loom_dot_opts *opts, loom_error *err)
{
    if (!g || !f) return loom_error_set(err, LOOM_ERR_ARG, "dot: no graph or no file");
    if (loom_graph_failed(g))
        return loom_error_set(err, loom_graph_status(g), "dot: the graph has failed: %s", loom_graph_error(g));
    for (int32_t i = 0; i < loom_graph_size(g); i++) /* the grid has no place for a step computed twice */
        if (loom_graph_node(g, loom_at(i))->tags.role == LOOM_ROLE_RECOMPUTE)
            return loom_error_set(err, LOOM_ERR_ARG, "dot: the graph recomputes its steps (loom_backward_opts.recompute), "
                                                      "which diagrams do not draw: draw it with the backward pass built "
                                                      "without recomputation (the same values)");
    return write_dot(g, f, opts, err);
}

loom_status loom_dot_string(const loom_graph *g, const loom_dot_opts *opts, char **out, size_t *len, loom_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(out, len);
    if (!f) return loom_error_set(err, LOOM_ERR_NOMEM, "dot: out of memory");
    loom_status s = loom_dot_write(g, f, opts, err);
    if (fclose(f) && !s) s = loom_error_set(err, LOOM_ERR_NOMEM, "dot: out of memory");
    if (s) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return s;
}
