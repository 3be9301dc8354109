/* BPTT diagrams: the DOT text parsed back with Graphviz's cgraph and its
 * structure checked; gradient-norm labels against a hand BPTT; rendering. */
#include "helpers.h"
#include "mgu_cell.h"

/* The reason of the last DOT call a test checks: fresh() for each call. */
static loom_error derr;
static loom_error *fresh(void) { return derr = (loom_error){0}, &derr; }
#include "tool.h"

#include <graphviz/cgraph.h>
#include <libxml/parser.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    loom_graph *g;
    loom_rnn rnn;
    loom_tensor x, loss;
    loom_rnn_out o;
} model;

/* x → stack → Σ_t Σ(y_t ⊙ r_t); with `backward`, the gradients of every parameter. */
static model build(const loom_cell_def *cell, int T, int layers, bool bi, loom_trunc trunc, int K, bool backward)
{
    model m;
    m.g = loom_graph_new();
    loom_rnn_init(m.g, &m.rnn, &(loom_rnn_opts){.cell = cell, .input_size = 2, .hidden_size = 3, .layers = layers,
                                                .bidirectional = bi});
    m.x = loom_input(m.g, "x", loom_shape3(T, 2, 2));
    m.o = loom_rnn_apply(m.g, &m.rnn, m.x, &(loom_rnn_args){.trunc = trunc, .truncate = K, .trunc_seed = 3});
    float *r = rnd_buf(2 * (bi ? 6 : 3) * T, -1, 1);
    m.loss = loom_sum_all(m.g, loom_mul(m.g, m.o.output, loom_constant(m.g, loom_tensor_shape(m.g, m.o.output), r)));
    free(r);
    if (backward) {
        int np = m.rnn.n_params * layers * (bi ? 2 : 1), k = 0;
        loom_tensor wrt[64], grads[64];
        for (int l = 0; l < layers; l++)
            for (int d = 0; d < (bi ? 2 : 1); d++)
                for (int i = 0; i < m.rnn.n_params; i++) wrt[k++] = m.rnn.param[l][d][i];
        cr_assert_eq(loom_backward(m.g, m.loss, wrt, np, grads), LOOM_OK, "%s", loom_graph_error(m.g));
    }
    cr_assert(!loom_graph_failed(m.g), "%s", loom_graph_error(m.g));
    return m;
}

static Agraph_t *parse(const loom_graph *g, const loom_dot_opts *o, char **text)
{
    size_t len;
    cr_assert_eq(loom_dot_string(g, o, text, &len, NULL), LOOM_OK);
    cr_assert_gt(len, 100);
    Agraph_t *gr = agmemread(*text);
    cr_assert(gr, "cgraph cannot parse the DOT text");
    return gr;
}

static int attr_int(void *obj, const char *name)
{
    char *v = agget(obj, (char *)name);
    return v && *v ? atoi(v) : -999;
}

static const char *attr(void *obj, const char *name)
{
    char *v = agget(obj, (char *)name);
    return v ? v : "";
}

static int count_clusters(Agraph_t *gr, const char *prefix)
{
    int n = 0;
    for (Agraph_t *s = agfstsubg(gr); s; s = agnxtsubg(s)) {
        if (!strncmp(agnameof(s), prefix, strlen(prefix))) n++;
        n += count_clusters(s, prefix);
    }
    return n;
}

/* Real direction of an edge: gradient edges are written head first (dir=back). */
static void ends(Agedge_t *e, Agnode_t **from, Agnode_t **to)
{
    bool back = !strcmp(attr(e, "dir"), "back");
    *from = back ? aghead(e) : agtail(e);
    *to = back ? agtail(e) : aghead(e);
}

#define FOR_EDGES(gr, e)                                                                               \
    for (Agnode_t *n_ = agfstnode(gr); n_; n_ = agnxtnode(gr, n_))                                     \
        for (Agedge_t *e = agfstout(gr, n_); e; e = agnxtout(gr, e))

Test(dot, forward_op_view_structure)
{
    enum { T = 5 };
    model m = build(&loom_cell_lstm, T, 1, false, LOOM_TRUNC_NONE, 0, false);
    char *text;
    Agraph_t *gr = parse(m.g, &(loom_dot_opts){0}, &text);
    cr_assert_eq(count_clusters(gr, "cluster_t"), T, "one cluster per time step");
    /* one recurrent edge per step pair and state (h and c) */
    int seen[2][T] = {{0}};
    FOR_EDGES(gr, e)
    {
        if (strcmp(attr(e, "loom_class"), "recurrent")) continue;
        int s = attr_int(e, "loom_state"), a = attr_int(agtail(e), "loom_step"), b = attr_int(aghead(e), "loom_step");
        cr_assert(s == 1 || s == 2);
        cr_assert_eq(b, a + 1, "a recurrent edge joins consecutive steps (%d → %d)", a, b);
        seen[s - 1][b]++;
    }
    for (int s = 0; s < 2; s++)
        for (int t = 1; t < T; t++) cr_assert_eq(seen[s][t], 1, "state %d into step %d: %d edges", s, t, seen[s][t]);
    /* parameters once each, outside the steps */
    int params = 0;
    for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n))
        if (!strcmp(attr(n, "loom_role"), "param")) {
            params++;
            cr_assert_eq(attr_int(n, "loom_step"), -1);
        }
    cr_assert_eq(params, 4);
    /* a parameter feeds every step */
    int used_by[T] = {0};
    Agnode_t *w = NULL;
    for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n))
        if (strstr(attr(n, "label"), "weight_hh_l0")) w = n;
    cr_assert(w);
    for (Agedge_t *e = agfstout(gr, w); e; e = agnxtout(gr, e)) used_by[attr_int(aghead(e), "loom_step")]++;
    for (int t = 0; t < T; t++) cr_assert_gt(used_by[t], 0, "weight_hh_l0 has an edge into step %d", t);
    agclose(gr);
    free(text);
    loom_graph_free(m.g);
}

/* Gradient edges run from later steps to earlier ones (in each direction's
 * own order) or stay within a step. */
static void check_grad_edges(Agraph_t *gr, int T, const bool *cut)
{
    int n_grad = 0, n_back_in_time = 0;
    FOR_EDGES(gr, e)
    {
        if (strcmp(attr(e, "loom_class"), "grad")) continue;
        n_grad++;
        Agnode_t *from, *to;
        ends(e, &from, &to);
        int a = attr_int(from, "loom_step"), b = attr_int(to, "loom_step");
        if (a < 0 || b < 0) continue;
        int dir = attr_int(to, "loom_dir");
        int ka = dir == 1 ? T - 1 - a : a, kb = dir == 1 ? T - 1 - b : b;
        cr_assert_geq(ka, kb, "gradient edge %s (t=%d) → %s (t=%d) runs forward in time", agnameof(from), a, agnameof(to), b);
        n_back_in_time += ka > kb;
        for (int c = 1; cut && c < T; c++)
            cr_assert(!(cut[c] && ((a >= c && b < c) || (b >= c && a < c))), "gradient edge crosses the cut at %d", c);
    }
    cr_assert_gt(n_grad, 0);
    if (!cut) cr_assert_gt(n_back_in_time, 0, "BPTT edges between steps");
}

Test(dot, backward_edges_run_back_in_time)
{
    model m = build(&loom_cell_gru, 4, 2, true, LOOM_TRUNC_NONE, 0, true);
    for (int view = 0; view < 2; view++) {
        char *text;
        Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = view, .part = LOOM_DOT_BOTH}, &text);
        check_grad_edges(gr, 4, NULL);
        /* each parameter's gradient is one Σ node fed from every step: in
         * the op view directly, in the cell view through its layer's
         * accumulation chain (points with loom_role=acc, in BPTT order) */
        int sigma = 0;
        for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n))
            if (!strncmp(attr(n, "label"), "Σ ∂L/∂weight_hh_l1_reverse", strlen("Σ ∂L/∂weight_hh_l1_reverse"))) {
                sigma++;
                int from_step[4] = {0}, chain = 0;
                Agnode_t *at = n;
                for (int hops = 0; at && hops < 8; hops++) {
                    Agnode_t *next = NULL;
                    for (Agedge_t *e = agfstedge(gr, at); e; e = agnxtedge(gr, e, at)) {
                        Agnode_t *a, *b;
                        ends(e, &a, &b);
                        if (b != at) continue;
                        if (!strcmp(attr(a, "loom_role"), "acc")) next = a, chain++;
                        else if (attr_int(a, "loom_step") >= 0) from_step[attr_int(a, "loom_step")]++;
                    }
                    at = next;
                }
                for (int t = 0; t < 4; t++) cr_assert_gt(from_step[t], 0, "step %d contributes to the Σ", t);
                cr_assert_eq(chain, view == LOOM_DOT_CELLS ? 4 : 0, "the cell view sums through a chain of 4 points");
            }
        cr_assert_eq(sigma, 1);
        agclose(gr);
        free(text);
    }
    loom_graph_free(m.g);
}

Test(dot, truncation_cuts)
{
    enum { T = 6 };
    model m = build(&loom_cell_rnn_tanh, T, 1, false, LOOM_TRUNC_FIXED, 2, true);
    bool cut[T + 1] = {false};
    cut[2] = cut[4] = true;
    for (int view = 0; view < 2; view++) {
        char *text;
        Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = view, .part = LOOM_DOT_BOTH}, &text);
        cr_assert(agnode(gr, "cut2_b", 0) && agnode(gr, "cut4_b", 0) && !agnode(gr, "cut3_b", 0), "cut lines at 2 and 4");
        cr_assert_eq(count_clusters(gr, "cluster_t"), T);
        check_grad_edges(gr, T, cut);
        int crossing = 0;
        FOR_EDGES(gr, e)
        if (!strcmp(attr(e, "loom_class"), "recurrent")) {
            int a = attr_int(agtail(e), "loom_step"), b = attr_int(aghead(e), "loom_step");
            crossing += (a < 2 && b >= 2) || (a < 4 && b >= 4);
        }
        cr_assert_eq(crossing, 2, "the forward state crosses both cuts");
        agclose(gr);
        free(text);
    }
    loom_graph_free(m.g);
}

Test(dot, cell_view_boxes)
{
    enum { T = 3, L = 2, D = 2 };
    model m = build(&loom_cell_lstm, T, L, true, LOOM_TRUNC_NONE, 0, true);
    char *text;
    Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .part = LOOM_DOT_BOTH}, &text);
    int fwd[T][L][D] = {{{0}}}, bwd[T][L][D] = {{{0}}}, boxes = 0;
    for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n)) {
        if (attr_int(n, "loom_cell") != 1) continue;
        boxes++;
        int t = attr_int(n, "loom_step"), l = attr_int(n, "loom_layer"), d = attr_int(n, "loom_dir");
        cr_assert(t >= 0 && t < T && l >= 0 && l < L && d >= 0 && d < D, "%s: t=%d l=%d d=%d", agnameof(n), t, l, d);
        (strcmp(attr(n, "loom_role"), "backward") ? fwd : bwd)[t][l][d]++;
    }
    cr_assert_eq(boxes, 2 * T * L * D);
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) cr_assert(fwd[t][l][d] == 1 && bwd[t][l][d] == 1, "(t=%d l=%d d=%d)", t, l, d);
    /* recurrent edges: one per step pair, layer, direction and state; the
     * reverse direction's run from t+1 to t */
    int rec = 0;
    FOR_EDGES(gr, e)
    if (!strcmp(attr(e, "loom_class"), "recurrent")) {
        rec++;
        int a = attr_int(agtail(e), "loom_step"), b = attr_int(aghead(e), "loom_step"), d = attr_int(aghead(e), "loom_dir");
        cr_assert_eq(b - a, d ? -1 : 1);
    }
    cr_assert_eq(rec, (T - 1) * L * D * 2);
    /* the grid: steps left to right; in a step x_t at the bottom, layers
     * upwards, the reverse direction above the forward one, gradient cells
     * above every forward cell */
    double fx[T], fy[T][L][D], by[T][L][D], xy[T];
    for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n)) {
        double x, y;
        if (sscanf(attr(n, "pos"), "%lf,%lf", &x, &y) != 2) continue;
        int t = attr_int(n, "loom_step"), l = attr_int(n, "loom_layer"), d = attr_int(n, "loom_dir");
        if (attr_int(n, "loom_cell") == 1) {
            if (strcmp(attr(n, "loom_role"), "backward")) fy[t][l][d] = y, fx[t] = x;
            else by[t][l][d] = y;
        } else if (t >= 0 && l == -1) {
            xy[t] = y;
        }
    }
    for (int t = 0; t < T; t++) {
        if (t) cr_assert_gt(fx[t], fx[t - 1], "step %d right of step %d", t, t - 1);
        cr_assert_lt(xy[t], fy[t][0][0]);
        cr_assert_lt(fy[t][0][0], fy[t][0][1]);
        cr_assert_lt(fy[t][0][1], fy[t][1][0]);
        cr_assert_lt(fy[t][1][0], fy[t][1][1]);
        cr_assert_lt(fy[t][1][1], by[t][0][0]);
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) cr_assert_eq(fy[t][l][d], fy[0][l][d], "rows are level across steps");
    }
    agclose(gr);
    free(text);
    loom_graph_free(m.g);
}

/* The example C cell and every cell of the cells folder (but the folder's
 * mgu, whose name the C one has), so that the picture tests see them all. */
static void register_cells(void)
{
    loom_cell_register(&mgu_cell);
    DIR *d = opendir(LOOM_CELLS_DIR);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".cell") || !strcmp(e->d_name, "mgu.cell")) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", LOOM_CELLS_DIR, e->d_name);
        loom_error err = {0};
        cr_assert(loom_cell_load(path, &err), "%s", err.msg);
    }
    closedir(d);
}

/* The cell view tells the truth for every known cell (the example user
 * cell too), stacked and bidirectional: no forward edge skips a step (an
 * expression of parameters a cell builds inside its step — MGU slices its
 * weight_hh — is shared by the steps and drawn beside the parameters), and
 * every parameter reaches every step of its layer and direction. */
Test(dot, cell_view_is_true_for_every_cell)
{
    enum { T = 4, L = 2 };
    register_cells();
    int n_cells;
    const loom_cell_def *const *cells = loom_cells(&n_cells);
    for (int c = 0; c < n_cells; c++)
        for (int bi = 0; bi < 2; bi++) {
            int D = bi ? 2 : 1;
            model m = build(cells[c], T, L, bi, LOOM_TRUNC_NONE, 0, false);
            char *text;
            Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS}, &text);
            FOR_EDGES(gr, e)
            {
                int a = attr_int(agtail(e), "loom_step"), b = attr_int(aghead(e), "loom_step");
                if (a < 0 || b < 0 || !strcmp(attr(e, "loom_class"), "input")) continue;
                cr_assert(abs(a - b) <= 1, "%s%s: %s edge %s (t=%d) → %s (t=%d) skips a step", cells[c]->name,
                          bi ? " bidirectional" : "", attr(e, "loom_class"), agnameof(agtail(e)), a, agnameof(aghead(e)), b);
            }
            for (int l = 0; l < L; l++)
                for (int d = 0; d < D; d++)
                    for (int i = 0; i < m.rnn.n_params; i++) {
                        char name[128];
                        loom_rnn_param_name(&m.rnn, l, d, i, name, sizeof name);
                        Agnode_t *p = NULL;
                        for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n))
                            if (!strcmp(attr(n, "loom_role"), "param") && !strncmp(attr(n, "label"), name, strlen(name)) &&
                                attr(n, "label")[strlen(name)] == '\\')
                                p = n;
                        cr_assert(p, "%s: parameter %s is drawn", cells[c]->name, name);
                        bool reaches[T] = {false};
                        /* along its layer's weight bus (points with loom_role=bus) into the cells */
                        Agnode_t *queue[64];
                        int head = 0, tail = 0;
                        queue[tail++] = p;
                        while (head < tail) {
                            for (Agedge_t *e = agfstout(gr, queue[head++]); e; e = agnxtout(gr, e)) {
                                Agnode_t *h = aghead(e);
                                if (!strcmp(attr(h, "loom_role"), "bus") && tail < 64) queue[tail++] = h;
                                else if (attr_int(h, "loom_cell") == 1) reaches[attr_int(h, "loom_step")] = true;
                            }
                        }
                        for (int t = 0; t < T; t++)
                            cr_assert(reaches[t], "%s%s: %s does not reach step %d", cells[c]->name, bi ? " bi" : "", name, t);
                    }
            agclose(gr);
            free(text);
            loom_graph_free(m.g);
        }
}

/* Every parameter of every cell has its own Σ ∂L/∂name node in the backward
 * diagram, in both views, stacked and bidirectional too — also where two
 * parameters' gradients are equal (the RNNs' and the LSTM's bias_ih and
 * bias_hh), which hash-consing would otherwise merge into one. */
Test(dot, every_parameter_has_its_gradient_sum)
{
    enum { T = 3, L = 2 };
    int n_builtin, n_cells;
    loom_cells(&n_builtin);
    register_cells();
    const loom_cell_def *const *cells = loom_cells(&n_cells);
    for (int c = 0; c < n_cells; c++)
        for (int view = 0; view < 2; view++) {
            model m = build(cells[c], T, L, true, LOOM_TRUNC_NONE, 0, true);
            char *text;
            Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = view ? LOOM_DOT_CELLS : LOOM_DOT_OPS, .part = LOOM_DOT_BOTH},
                                 &text);
            for (int l = 0; l < L; l++)
                for (int d = 0; d < 2; d++)
                    for (int i = 0; i < m.rnn.n_params; i++) {
                        char name[128], want[160];
                        loom_rnn_param_name(&m.rnn, l, d, i, name, sizeof name);
                        snprintf(want, sizeof want, "∂L/∂%s\\n", name);
                        int found = 0, sums = 0;
                        for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n)) {
                            const char *label = attr(n, "label");
                            bool sum = !strncmp(label, "Σ ", strlen("Σ "));
                            if (!strncmp(label + (sum ? strlen("Σ ") : 0), want, strlen(want))) found++, sums += sum;
                        }
                        cr_assert_eq(found, 1, "%s, %s view: %d nodes labelled %s", cells[c]->name, view ? "cell" : "op",
                                     found, want);
                        /* a user cell may slice a parameter: its gradient is then the pieces' Σs side by side */
                        if (c < n_builtin)
                            cr_assert_eq(sums, 1, "%s, %s view: ∂L/∂%s is a Σ over the steps", cells[c]->name,
                                         view ? "cell" : "op", name);
                    }
            agclose(gr);
            free(text);
            loom_graph_free(m.g);
        }
}

/* A slide-ready backward cell view: between two steps, one gradient edge
 * per carried state (∂h and ∂c of an LSTM), and each layer's weight
 * gradients summed along one chain (tested in backward_edges_run_back_in_time)
 * instead of an edge from every step to every Σ; each box names its cell. */
Test(dot, cell_view_backward_bundles_gradient_edges)
{
    enum { T = 6, L = 2 };
    model m = build(&loom_cell_lstm, T, L, false, LOOM_TRUNC_NONE, 0, true);
    char *text;
    Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .part = LOOM_DOT_BOTH}, &text);
    int per[T][L][3] = {{{0}}}, into_sigma_from_cells = 0;
    FOR_EDGES(gr, e)
    {
        Agnode_t *from, *to;
        ends(e, &from, &to);
        bool cells = attr_int(from, "loom_cell") == 1 && attr_int(to, "loom_cell") == 1;
        int a = attr_int(from, "loom_step"), b = attr_int(to, "loom_step"), l = attr_int(to, "loom_layer");
        if (!strcmp(attr(e, "loom_class"), "grad") && cells && a == b + 1 && l == attr_int(from, "loom_layer")) {
            int s = attr_int(e, "loom_state");
            cr_assert(s == 1 || s == 2, "a gradient edge between steps carries state 1 or 2, not %d", s);
            cr_assert_str_eq(attr(e, "xlabel"), s == 1 ? "∂h" : "∂c");
            per[b][l][s]++;
        }
        if (attr_int(from, "loom_cell") == 1 && !strncmp(attr(to, "label"), "Σ", strlen("Σ"))) into_sigma_from_cells++;
    }
    for (int t = 0; t < T - 1; t++)
        for (int l = 0; l < L; l++)
            cr_assert(per[t][l][1] == 1 && per[t][l][2] == 1, "t=%d l=%d: %d ∂h and %d ∂c edges", t, l, per[t][l][1],
                      per[t][l][2]);
    cr_assert_eq(into_sigma_from_cells, 0, "no cell feeds a Σ directly");
    int boxes = 0;
    for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n))
        if (attr_int(n, "loom_cell") == 1) {
            boxes++;
            cr_assert(strstr(attr(n, "label"), "lstm t="), "%s", attr(n, "label"));
        }
    cr_assert_eq(boxes, 2 * T * L);
    agclose(gr);
    free(text);
    loom_graph_free(m.g);
}

Test(dot, long_sequences_elide_the_middle)
{
    model m = build(&loom_cell_rnn_tanh, 40, 1, false, LOOM_TRUNC_NONE, 0, true);
    for (int view = 0; view < 2; view++) {
        char *text;
        Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = view, .part = LOOM_DOT_BOTH, .steps_shown = 3}, &text);
        cr_assert_eq(count_clusters(gr, "cluster_t"), 6);
        cr_assert_eq(count_clusters(gr, "cluster_elided"), 1);
        cr_assert(agnode(gr, "elided", 0));
        cr_assert(strstr(text, "34 steps"), "the elision says how many steps it hides");
        for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n)) {
            int t = attr_int(n, "loom_step");
            cr_assert(t < 3 || t >= 37 || t == -999 || t == -1, "step %d is elided", t);
        }
        agclose(gr);
        free(text);
    }
    loom_graph_free(m.g);
}

/* ‖∂L/∂h_t‖ of a vanilla RNN by hand (hand_rnn_grad_norms): the labels in the
 * diagram must carry these norms, and the float64 ones match to 1e-12. */
Test(dot, gradient_norm_labels_match_hand_bptt)
{
    enum { T = 6, I = 2, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = I, .hidden_size = H});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, 1, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    float r[H] = {0.7f, -1.1f, 0.4f};
    loom_tensor loss = loom_sum_all(g, loom_mul(g, loom_slice(g, o.output, 0, T - 1, 1), loom_constant(g, loom_shape3(1, 1, H), r)));
    loom_store *st = loom_store_new(g);
    loom_store_init(st, 5);
    float *xv = rnd_buf(T * I, -1, 1);
    loom_binding b[5] = {{x, xv}};
    for (int i = 0; i < 4; i++) b[1 + i] = (loom_binding){rnn.param[0][0][i], loom_store_data(st, rnn.param[0][0][i])};
    float heat[T];
    double heat64[T];
    cr_assert_eq(loom_state_grad_norms(g, loss, &(loom_state_grid){T, 1, 1, 1}, b, 5, heat, heat64), LOOM_OK, "%s",
                 loom_graph_error(g));

    double want_t[T];
    hand_rnn_grad_norms(T, I, H, xv, b[1].data, b[2].data, b[3].data, b[4].data, r, want_t);
    char *text;
    Agraph_t *gv = parse(g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .heat = heat, .heat_steps = T, .heat_layers = 1,
                                             .heat_dirs = 1},
                         &text);
    int labelled = 0;
    for (Agnode_t *n = agfstnode(gv); n; n = agnxtnode(gv, n)) {
        if (attr_int(n, "loom_cell") != 1) continue;
        int t = attr_int(n, "loom_step");
        double want = want_t[t];
        double got = atof(attr(n, "loom_grad_norm"));
        cr_assert(fabs(got - want) <= 1e-4 * (want + 1e-6), "step %d: label %g, hand BPTT %g", t, got, want);
        cr_assert(fabs(heat64[t] - want) <= 1e-12 * want, "step %d: float64 %.17g, hand BPTT %.17g", t, heat64[t], want);
        char shown[32];
        snprintf(shown, sizeof shown, "%.2e", want);
        cr_assert(strstr(attr(n, "label"), shown), "step %d's label shows %s: %s", t, shown, attr(n, "label"));
        cr_assert(strlen(attr(n, "fillcolor")) == 7, "coloured by its norm");
        labelled++;
    }
    cr_assert_eq(labelled, T);
    cr_assert(strstr(text, "log scale"), "a legend explains the colours");
    agclose(gv);
    free(text), free(xv);
    loom_store_free(st);
    loom_graph_free(g);
}

/* ---- rendering and the command ---- */

static char tmpdir[64];
static void mk(void) { cr_assert(mkdtemp(strcpy(tmpdir, "/tmp/loom-dot-XXXXXX"))); }
static void rm_all(void)
{
    const char *names[] = {"a.svg", "a.png", "a.pdf", "a.dot", "b.svg", "c.jpg", "keep.svg", "keep.dot", "dir.svg/x",
                           "dir.svg", "layout.txt"};
    char p[128];
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        if (unlink(p)) rmdir(p);
    }
    rmdir(tmpdir);
}
TestSuite(render, .init = mk, .fini = rm_all);

static const char *tp(const char *name) { return tmp_path(tmpdir, name); }

static size_t file_bytes(const char *path, unsigned char *head, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(head, 1, n, f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fclose(f);
    return got ? size : 0;
}

Test(render, svg_png_pdf)
{
    cr_assert(loom_dot_can_render(), "this build has Graphviz");
    model m = build(&loom_cell_lstm, 3, 1, false, LOOM_TRUNC_NONE, 0, true);
    char *text;
    size_t len;
    loom_dot_string(m.g, &(loom_dot_opts){.part = LOOM_DOT_BOTH}, &text, &len, NULL);
    cr_assert_eq(loom_dot_render(text, "svg", tp("a.svg"), fresh()), LOOM_OK, "%s", derr.msg);
    cr_assert_eq(loom_dot_render(text, "png", tp("a.png"), fresh()), LOOM_OK, "%s", derr.msg);
    cr_assert_eq(loom_dot_render(text, "pdf", tp("a.pdf"), fresh()), LOOM_OK, "%s", derr.msg);
    free(text);
    xmlDocPtr doc = xmlReadFile(tp("a.svg"), NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    cr_assert(doc, "the SVG parses as XML");
    xmlNodePtr root = xmlDocGetRootElement(doc);
    cr_assert(root && !strcmp((const char *)root->name, "svg"));
    int children = 0;
    for (xmlNodePtr c = root->children; c; c = c->next) children += c->type == XML_ELEMENT_NODE;
    cr_assert_gt(children, 0);
    xmlFreeDoc(doc);
    unsigned char h[24];
    cr_assert_gt(file_bytes(tp("a.png"), h, sizeof h), 1000);
    cr_assert(!memcmp(h, "\x89PNG\r\n\x1a\n", 8) && !memcmp(h + 12, "IHDR", 4), "a PNG signature and header");
    cr_assert_gt(file_bytes(tp("a.pdf"), h, sizeof h), 1000);
    cr_assert(!memcmp(h, "%PDF-", 5));
    cr_assert_neq(loom_dot_render("digraph { a -> ", "svg", tp("b.svg"), fresh()), LOOM_OK);
    cr_assert(strstr(derr.msg, "cannot parse"), "%s", derr.msg);
    loom_graph_free(m.g);
}

Test(render, loom_dot_command)
{
    char *ok_args[] = {"--cell", "gru", "--layers", "2", "--bidirectional", "--backward", "--view", "cell",
                       "--truncate", "2", "-o", (char *)tp("a.svg")};
    cr_assert_eq(cmd_dot(12, ok_args), 0);
    unsigned char h[8];
    cr_assert_gt(file_bytes(tp("a.svg"), h, sizeof h), 1000);
    char *heat_args[] = {"--cell", "rnn_tanh", "--seq-len", "12", "--grad-norms", "--loss", "last",
                         "--steps-shown", "0", "-o", (char *)tp("a.dot")};
    cr_assert_eq(cmd_dot(11, heat_args), 0);
    FILE *f = fopen(tp("a.dot"), "r");
    char line[4096];
    double prev = -1;
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "loom_grad_norm=\"");
        if (!p || !strstr(line, "loom_state=1")) continue;
        double v = atof(p + strlen("loom_grad_norm=\""));
        /* a tanh RNN with its loss at the last step: the norm shrinks going back in time */
        if (prev >= 0) cr_assert_gt(v, prev * 0.999, "‖∂L/∂h_t‖ grows towards the loss");
        prev = v;
        seen++;
    }
    fclose(f);
    cr_assert_eq(seen, 12);
    /* a long sequence is drawn as its first and last steps by default */
    char *long_args[] = {"--seq-len", "200", "-o", (char *)tp("a.dot")};
    cr_assert_eq(cmd_dot(4, long_args), 0);
    f = fopen(tp("a.dot"), "r");
    int clusters = 0, elided = 0;
    while (fgets(line, sizeof line, f)) {
        clusters += strstr(line, "subgraph cluster_t") != NULL;
        elided += strstr(line, "subgraph cluster_elided") != NULL;
    }
    fclose(f);
    cr_assert(clusters == 8 && elided == 1, "%d step clusters, %d elisions", clusters, elided); /* 4 + 4 */
    struct {
        int argc;
        char *argv[6];
    } bad[] = {
        {2, {"--cell", "lstm"}},                                   /* no -o */
        {3, {"--cell", "transformer", "-o"}},                      /* unknown cell */
        {4, {"--view", "tree", "-o", "x.dot"}},                    /* unknown view */
        {3, {"--random-truncation", "-o", "x.dot"}},               /* needs --truncate */
        {2, {"-o", (char *)tp("c.jpg")}},                          /* unknown format */
        {3, {"--frobnicate", "-o", "x.dot"}},                      /* unknown flag */
        {4, {"--seq-len", "0", "-o", "x.dot"}},                    /* out of range */
    };
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(cmd_dot(bad[i].argc, bad[i].argv), 2, "bad case %u", i);
    cr_assert_neq(access(tp("c.jpg"), F_OK), 0);
}

static int files_in(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Infinite or NaN norms, and an infinite fixed scale, draw (hottest and
 * coldest colours; the data's own scale) instead of indexing the palette
 * with a NaN; the command refuses an infinite --heat-range. */
Test(render, non_finite_heat)
{
    model m = build(&loom_cell_rnn_tanh, 4, 1, false, LOOM_TRUNC_NONE, 0, false);
    float heat[4] = {INFINITY, NAN, 1e-3f, 1.0f};
    float ranges[][2] = {{0, 0}, {1, INFINITY}, {1, (float)1e39}, {NAN, NAN}, {INFINITY, 0}};
    for (unsigned r = 0; r < sizeof ranges / sizeof *ranges; r++) {
        char *text;
        Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .heat = heat, .heat_steps = 4,
                                                   .heat_layers = 1, .heat_dirs = 1, .heat_lo = ranges[r][0],
                                                   .heat_hi = ranges[r][1]},
                             &text);
        int coloured = 0;
        for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n))
            coloured += *attr(n, "loom_grad_norm") && attr(n, "fillcolor")[0] == '#';
        cr_assert_eq(coloured, 4, "range %u: every step is coloured", r);
        agclose(gr);
        free(text);
    }
    char *args[] = {"--grad-norms", "--heat-range", "1:inf", "-o", (char *)tp("a.svg")};
    cr_assert_eq(cmd_dot(5, args), 2);
    args[2] = "1:1e39";
    cr_assert_eq(cmd_dot(5, args), 2);
    loom_graph_free(m.g);
}

/* Heat that tells the truth: a step no gradient reaches (0) has a colour
 * and a legend entry of its own, not the smallest norm's; a norm float32
 * rounds to 0 is shown from float64 and marked; norms within a factor of
 * 1.3 of each other get nearly one colour (the scale spans at least three
 * decades, its range in the legend). */
Test(render, heat_zero_underflow_and_narrow_ranges)
{
    model m = build(&loom_cell_rnn_tanh, 4, 1, false, LOOM_TRUNC_NONE, 0, false);
    float heat[4] = {0, 0, 1.56f, 2.02f};
    double heat64[4] = {0, 5e-58, 1.56, 2.02};
    char *text;
    Agraph_t *gr = parse(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .heat = heat, .heat64 = heat64, .heat_steps = 4,
                                               .heat_layers = 1, .heat_dirs = 1},
                         &text);
    char fill[4][16] = {{0}};
    for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n)) {
        if (attr_int(n, "loom_cell") != 1) continue;
        int t = attr_int(n, "loom_step");
        snprintf(fill[t], sizeof fill[t], "%s", attr(n, "fillcolor"));
        if (t == 1) cr_assert(strstr(attr(n, "label"), "5.00e-58 (0 in float32)"), "%s", attr(n, "label"));
        if (t == 0) cr_assert(strstr(attr(n, "label"), "‖∂L/∂h‖ 0"), "%s", attr(n, "label"));
    }
    cr_assert_str_eq(fill[0], "#ffffff", "0 is white");
    cr_assert_str_neq(fill[1], "#ffffff", "an underflow is not 0");
    cr_assert_str_neq(fill[1], fill[2]);
    unsigned r2, g2, b2, r3, g3, b3;
    sscanf(fill[2], "#%02x%02x%02x", &r2, &g2, &b2);
    sscanf(fill[3], "#%02x%02x%02x", &r3, &g3, &b3);
    cr_assert(abs((int)r2 - (int)r3) + abs((int)g2 - (int)g3) + abs((int)b2 - (int)b3) < 60, "1.56 and 2.02 look alike: %s %s",
              fill[2], fill[3]);
    cr_assert(agnode(gr, "lg_heat_zero", 0), "the legend has 0's colour");
    cr_assert(agnode(gr, "lg_heat_under", 0), "the legend explains the float32 mark");
    cr_assert(strstr(attr(agnode(gr, "lg_heat_t", 0), "label"), "5.0e-58 … 2.0e+00"), "the scale's range: %s",
              attr(agnode(gr, "lg_heat_t", 0), "label"));
    agclose(gr);
    free(text);
    /* the same without zeros or float64: no entries for them */
    float plain[4] = {1.56f, 1.7f, 1.9f, 2.02f};
    gr = parse(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .heat = plain, .heat_steps = 4, .heat_layers = 1, .heat_dirs = 1},
               &text);
    cr_assert(!agnode(gr, "lg_heat_zero", 0) && !agnode(gr, "lg_heat_under", 0));
    cr_assert(strstr(attr(agnode(gr, "lg_heat_t", 0), "label"), "2.0e-03 … 2.0e+00"), "three decades: %s",
              attr(agnode(gr, "lg_heat_t", 0), "label"));
    agclose(gr);
    free(text);
    loom_graph_free(m.g);
}

/* Output files are replaced atomically: a directory, a missing directory
 * or a failing render is an error (non-zero status) and leaves the old
 * file as it was and no temporary file behind; a new file gets the mode
 * the umask gives. */
Test(render, outputs_are_replaced_atomically)
{
    model m = build(&loom_cell_rnn_tanh, 2, 1, false, LOOM_TRUNC_NONE, 0, false);
    FILE *f = fopen(tp("keep.svg"), "w");
    fputs("old", f);
    fclose(f);
    chmod(tp("keep.svg"), 0640);
    cr_assert_neq(loom_dot_render("digraph { a -> ", "svg", tp("keep.svg"), fresh()), LOOM_OK);
    cr_assert_neq(loom_dot_render("digraph { a -> b }", "no-such-format", tp("keep.svg"), fresh()), LOOM_OK);
    unsigned char h[4] = {0};
    cr_assert_eq(file_bytes(tp("keep.svg"), h, 3), 3, "the old file is intact");
    cr_assert(!memcmp(h, "old", 3));
    int before = files_in(tmpdir);
    cr_assert_eq(loom_dot_save(m.g, NULL, tp("keep.svg"), fresh()), LOOM_OK, "%s", derr.msg);
    struct stat st;
    cr_assert_eq(stat(tp("keep.svg"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "a replaced file keeps its mode");
    cr_assert_eq(files_in(tmpdir), before, "no temporary file is left");
    mode_t old = umask(022);
    cr_assert_eq(loom_dot_save(m.g, NULL, tp("keep.dot"), fresh()), LOOM_OK, "%s", derr.msg);
    umask(old);
    cr_assert_eq(stat(tp("keep.dot"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "a new file gets 0666 less the umask, got %o", st.st_mode & 0777);
    mkdir(tp("dir.svg"), 0755);
    cr_assert_neq(loom_dot_save(m.g, NULL, tp("dir.svg"), fresh()), LOOM_OK);
    cr_assert(strstr(derr.msg, "directory"), "%s", derr.msg);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir.svg", tmpdir);
    cr_assert_neq(loom_dot_save(m.g, NULL, missing, fresh()), LOOM_OK);
    char *args[] = {"-o", missing};
    cr_assert_eq(cmd_dot(2, args), 1, "a file that cannot be written is a failure");
    args[1] = (char *)tp("dir.svg");
    cr_assert_eq(cmd_dot(2, args), 1);
    cr_assert_eq(files_in(tmpdir), before + 2, "keep.dot and dir.svg, no temporaries");
    loom_graph_free(m.g);
}

/* Graphviz's own measure of the drawn nodes (the "plain" output: name,
 * centre, width, height in inches): no two overlap. Frames (drawn around
 * their members) and the invisible ends of cut lines are left out. */
static int overlaps(const char *dot, char *first, size_t n)
{
    cr_assert_eq(loom_dot_render(dot, "plain", tp("layout.txt"), fresh()), LOOM_OK, "%s", derr.msg);
    FILE *f = fopen(tp("layout.txt"), "r");
    enum { MAX = 4096 };
    char line[4096], name[64];
    double (*box)[4] = malloc(MAX * sizeof *box);
    char (*names)[64] = malloc(MAX * sizeof *names);
    int m = 0, bad = 0;
    while (fgets(line, sizeof line, f) && m < MAX) {
        double x, y, w, h;
        if (sscanf(line, "node %63s %lf %lf %lf %lf", name, &x, &y, &w, &h) != 5) continue;
        int k;
        if (!strncmp(name, "frame_", 6) || !strncmp(name, "lg_cut_", 7) || (sscanf(name, "cut%d_", &k) == 1)) continue;
        box[m][0] = x, box[m][1] = y, box[m][2] = w, box[m][3] = h;
        memcpy(names[m++], name, sizeof name);
    }
    fclose(f);
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++)
            if (fabs(box[i][0] - box[j][0]) < (box[i][2] + box[j][2]) / 2 - 0.01 &&
                fabs(box[i][1] - box[j][1]) < (box[i][3] + box[j][3]) / 2 - 0.01 && !bad++)
                snprintf(first, n, "%.63s and %.63s", names[i], names[j]);
    free(box), free(names);
    unlink(tp("layout.txt"));
    return bad;
}

/* What a user draws of a language model of their own: the output layer
 * applied to the stacked outputs and the loss are drawn and fed by every
 * step, the decoder's weights reach them, inputs and targets sit apart from
 * the steps' rows — and in both views with and without gradients, no node
 * overlaps another (legend included). */
Test(render, language_model_pictures_are_whole)
{
    enum { T = 4, B = 2, I = 3, H = 4, V = 5 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = I, .hidden_size = H, .layers = 2});
    loom_tensor dw = loom_param(g, "decoder.weight", loom_shape2(V, H)), db = loom_param(g, "decoder.bias", loom_shape1(V));
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I)), tg = loom_input_i32(g, "targets", loom_shape2(T, B));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_cross_entropy(g, loom_add(g, loom_matmul(g, o.output, dw, false, true), db), tg, LOOM_NO_MASK);
    loom_tensor_set_name(g, loss, "loss");
    int n = loom_graph_params(g, NULL, 0);
    loom_tensor p[16], grads[16];
    loom_graph_params(g, p, n);
    for (int part = 0; part < 2; part++) {
        if (part) cr_assert_eq(loom_backward(g, loss, p, n, grads), LOOM_OK);
        for (int view = 0; view < 2; view++) {
            char *text, first[160] = "";
            Agraph_t *gr = parse(g, &(loom_dot_opts){.view = view, .part = part ? LOOM_DOT_BOTH : LOOM_DOT_FORWARD}, &text);
            Agnode_t *dec = NULL, *lossn = NULL;
            for (Agnode_t *v = agfstnode(gr); v; v = agnxtnode(gr, v)) {
                if (!strncmp(attr(v, "label"), "decoder.weight", 14)) dec = v;
                if (!strncmp(attr(v, "label"), "loss\\n", 6)) lossn = v;
            }
            cr_assert(dec && lossn, "view %d: the decoder weight and the loss are drawn", view);
            cr_assert_not_null(agfstout(gr, dec), "view %d: the decoder weight feeds something", view);
            if (view == LOOM_DOT_CELLS) { /* every step's top cell feeds the output layer */
                int from_step[T] = {0};
                FOR_EDGES(gr, e)
                if (attr_int(agtail(e), "loom_cell") == 1 && attr_int(agtail(e), "loom_layer") == 1 &&
                    attr_int(aghead(e), "loom_step") < 0 && strcmp(attr(e, "loom_class"), "value"))
                    from_step[attr_int(agtail(e), "loom_step")]++;
                for (int t = 0; t < T; t++) cr_assert_gt(from_step[t], 0, "step %d feeds the output layer", t);
            }
            cr_assert_eq(overlaps(text, first, sizeof first), 0, "view %d, part %d: %s overlap", view, part, first);
            agclose(gr);
            free(text);
        }
    }
    loom_graph_free(g);
}

/* Graphviz's own drawing of the edges (the "plain" output: each edge's
 * B-spline control points): no edge passes through a node box other than
 * its ends. Points (ports, buses, the Σ chains' joints), frames' corners and
 * cut lines' ends are no boxes; boxes are shrunk by 0.02 in (an edge may
 * graze a corner). Returns how many edges cross; the first is named. */
static int edges_cross(const char *dot, char *first, size_t n)
{
    cr_assert_eq(loom_dot_render(dot, "plain", tp("layout.txt"), fresh()), LOOM_OK, "%s", derr.msg);
    FILE *f = fopen(tp("layout.txt"), "r");
    enum { MAX = 8192 };
    static char line[1 << 16];
    char name[64], tail[64], head[64];
    double (*box)[4] = malloc(MAX * sizeof *box);
    char (*names)[64] = malloc(MAX * sizeof *names);
    int m = 0, bad = 0;
    long edges_at = -1;
    while (fgets(line, sizeof line, f)) { /* the nodes first */
        double x, y, w, h;
        if (!strncmp(line, "edge ", 5) && edges_at < 0) edges_at = ftell(f) - (long)strlen(line);
        if (sscanf(line, "node %63s %lf %lf %lf %lf", name, &x, &y, &w, &h) != 5 || m == MAX) continue;
        int k;
        if (!strncmp(name, "frame_", 6) || !strncmp(name, "lg_cut_", 7) || sscanf(name, "cut%d_", &k) == 1 || w < 0.1) continue;
        box[m][0] = x, box[m][1] = y, box[m][2] = w / 2 - 0.02, box[m][3] = h / 2 - 0.02;
        memcpy(names[m++], name, sizeof name);
    }
    cr_assert(edges_at >= 0, "the picture has edges");
    fseek(f, edges_at, SEEK_SET);
    while (fgets(line, sizeof line, f)) {
        int k, used;
        if (sscanf(line, "edge %63s %63s %d%n", tail, head, &k, &used) != 3) continue;
        const char *at = line + used;
        double (*pt)[2] = malloc((size_t)k * sizeof *pt);
        for (int i = 0; i < k; i++) {
            cr_assert_eq(sscanf(at, "%lf %lf%n", &pt[i][0], &pt[i][1], &used), 2);
            at += used;
        }
        bool crossed = false;
        for (int s = 0; s + 3 < k && !crossed; s += 3) /* each cubic piece, sampled */
            for (int q = 0; q <= 24 && !crossed; q++) {
                double u = q / 24.0, a = (1 - u) * (1 - u) * (1 - u), b = 3 * u * (1 - u) * (1 - u), c = 3 * u * u * (1 - u),
                       d = u * u * u;
                double x = a * pt[s][0] + b * pt[s + 1][0] + c * pt[s + 2][0] + d * pt[s + 3][0];
                double y = a * pt[s][1] + b * pt[s + 1][1] + c * pt[s + 2][1] + d * pt[s + 3][1];
                for (int i = 0; i < m && !crossed; i++) {
                    if (!strcmp(names[i], tail) || !strcmp(names[i], head)) continue;
                    if (fabs(x - box[i][0]) < box[i][2] && fabs(y - box[i][1]) < box[i][3]) {
                        crossed = true;
                        if (!bad) snprintf(first, n, "%.63s -> %.63s crosses %.63s", tail, head, names[i]);
                    }
                }
            }
        bad += crossed;
        free(pt);
    }
    fclose(f);
    free(box), free(names);
    unlink(tp("layout.txt"));
    return bad;
}

/* Every picture of the README (the loom dot lines of docs/make_pictures.sh,
 * run here with -o replaced): no edge is drawn through a node, and no node
 * overlaps another. */
Test(render, readme_pictures_route_edges_around_nodes, .timeout = 600)
{
    register_cells();
    FILE *sh = fopen(LOOM_DOCS_DIR "/make_pictures.sh", "r");
    cr_assert(sh);
    char line[1024];
    int pictures = 0;
    while (fgets(line, sizeof line, sh)) {
        if (strncmp(line, "$loom dot ", 10)) continue;
        char *argv[64], *save = NULL;
        int argc = 0;
        for (char *t = strtok_r(line + 10, " \n", &save); t && argc < 62; t = strtok_r(NULL, " \n", &save)) argv[argc++] = t;
        for (int i = 0; i + 1 < argc; i++)
            if (!strcmp(argv[i], "-o")) argv[i + 1] = (char *)tp("readme.dot");
        cr_assert_eq(cmd_dot(argc, argv), 0, "%s", line);
        char *text = slurp(tp("readme.dot")), first[256] = "";
        cr_assert_eq(overlaps(text, first, sizeof first), 0, "picture %d: %s overlap", pictures + 1, first);
        cr_assert_eq(edges_cross(text, first, sizeof first), 0, "picture %d (%s): %s", pictures + 1, argv[1], first);
        free(text);
        pictures++;
    }
    fclose(sh);
    cr_assert_geq(pictures, 9, "the README's pictures: %d", pictures);
}

/* The command's pictures (long ones elided): no node overlaps another, no
 * edge crosses a node. */
Test(render, command_pictures_do_not_overlap)
{
    const char *const cases[][14] = {
        {"--cell", "lstm", "--layers", "2", "--bidirectional", "--view", "cell", "--backward", "--grad-norms", "--truncate", "2"},
        {"--cell", "mgu", "--seq-len", "5", "--view", "cell", "--backward"},
        {"--cell", "gru", "--seq-len", "3", "--backward"},
        {"--cell", "lstm", "--seq-len", "100", "--view", "cell", "--grad-norms", "--truncate", "7"},
        {"--cell", "rnn_tanh", "--seq-len", "40"},
    };
    register_cells();
    for (unsigned k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *argv[16];
        int argc = 0;
        for (; argc < 14 && cases[k][argc]; argc++) argv[argc] = (char *)cases[k][argc];
        argv[argc++] = "-o", argv[argc++] = (char *)tp("a.dot");
        cr_assert_eq(cmd_dot(argc, argv), 0);
        FILE *f = fopen(tp("a.dot"), "r");
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        rewind(f);
        char *text = calloc((size_t)len + 1, 1), first[160] = "";
        cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        cr_assert_eq(overlaps(text, first, sizeof first), 0, "case %u: %s overlap", k, first);
        cr_assert_eq(edges_cross(text, first, sizeof first), 0, "case %u: %s", k, first);
        free(text);
    }
}

/* A graph built without the unroller (no step tags) still draws: its nodes
 * sit outside any step. */
Test(dot, untagged_graph)
{
    loom_graph *g = loom_graph_new();
    loom_tensor a = loom_input(g, "a", loom_shape2(2, 3)), w = loom_param(g, "w", loom_shape2(4, 3)), gw;
    loom_tensor loss = loom_sum_all(g, loom_tanh(g, loom_matmul(g, a, w, false, true)));
    cr_assert_eq(loom_backward(g, loss, &w, 1, &gw), LOOM_OK);
    for (int view = 0; view < 2; view++) {
        char *text;
        Agraph_t *gr = parse(g, &(loom_dot_opts){.view = view, .part = LOOM_DOT_BOTH}, &text);
        cr_assert_eq(count_clusters(gr, "cluster_t"), 0);
        cr_assert(agnode(gr, "n1", 0), "the parameter is drawn");
        agclose(gr);
        free(text);
    }
    loom_graph_free(g);
}

/* ---- slides ---- */

/* The smallest text of an SVG, in pixels, when the picture is fit into a
 * 1920 × 1080 frame: each <text>'s font-size times the drawing's scale
 * (the first group's transform) times the frame's pixels per point. */
static void min_text(xmlNodePtr n, double *least, int *count)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (!xmlStrcmp(n->name, (const xmlChar *)"text")) {
            xmlChar *fs = xmlGetProp(n, (const xmlChar *)"font-size");
            if (fs) *least = fmin(*least, atof((const char *)fs)), ++*count;
            xmlFree(fs);
        }
        min_text(n->children, least, count);
    }
}

static double slide_min_px(const char *svg, int *texts)
{
    xmlDocPtr doc = xmlReadFile(svg, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    cr_assert(doc, "%s parses as XML", svg);
    xmlNodePtr root = xmlDocGetRootElement(doc), g = root->children;
    while (g && (g->type != XML_ELEMENT_NODE || xmlStrcmp(g->name, (const xmlChar *)"g"))) g = g->next;
    cr_assert(g, "the drawing's group");
    xmlChar *w = xmlGetProp(root, (const xmlChar *)"width"), *h = xmlGetProp(root, (const xmlChar *)"height"),
            *tr = xmlGetProp(g, (const xmlChar *)"transform");
    double scale = 0, least = INFINITY;
    cr_assert(tr && sscanf((const char *)tr, "scale(%lf", &scale) == 1, "the drawing's scale");
    double px = fmin(1920 / atof((const char *)w), 1080 / atof((const char *)h)) * scale;
    *texts = 0;
    min_text(g, &least, texts);
    xmlFree(w), xmlFree(h), xmlFree(tr);
    xmlFreeDoc(doc);
    return least * px;
}

/* --style slide: fills a 16:9 slide, and every label — node, edge, frame,
 * title — is readable on it: at least 13 px in a 1920 × 1080 frame for
 * 20 steps of any cell (forward or with gradients), at least 20 px for a
 * lecture's few steps; the picture is scaled to 13.33 × 7.5 in. */
Test(render, slide_labels_are_readable_at_1920)
{
    static const struct {
        const char *args[12];
        double floor;
    } cases[] = {
        {{"--cell", "rnn_tanh", "--view", "cell", "--seq-len", "20"}, 13},
        {{"--cell", "lstm", "--view", "cell", "--seq-len", "20"}, 13},
        {{"--cell", "gru", "--layers", "2", "--view", "cell", "--seq-len", "20"}, 13},
        {{"--cell", "rnn_tanh", "--view", "cell", "--seq-len", "20", "--backward"}, 13},
        {{"--cell", "lstm", "--view", "cell", "--seq-len", "20", "--backward"}, 13},
        {{"--cell", "mgu", "--view", "cell", "--seq-len", "20", "--backward"}, 13},
        {{"--cell", "rnn_tanh", "--view", "cell", "--seq-len", "4", "--backward"}, 20},
        {{"--cell", "lstm", "--bidirectional", "--view", "cell", "--seq-len", "4", "--backward"}, 20},
        {{"--cell", "rnn_tanh", "--view", "cell", "--seq-len", "100", "--grad-norms"}, 20},
        {{"--cell", "rnn_tanh", "--seq-len", "2"}, 13},
    };
    register_cells();
    for (unsigned k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *argv[20];
        int argc = 0;
        for (; argc < 12 && cases[k].args[argc]; argc++) argv[argc] = (char *)cases[k].args[argc];
        argv[argc++] = "--style", argv[argc++] = "slide", argv[argc++] = "-o", argv[argc++] = (char *)tp("s.svg");
        cr_assert_eq(cmd_dot(argc, argv), 0, "case %u", k);
        int texts;
        double px = slide_min_px(tp("s.svg"), &texts);
        cr_assert_gt(texts, 10, "case %u: the labels are text", k);
        cr_assert_geq(px, cases[k].floor, "case %u (%s %s, T = %s): the smallest label is %.1f px at 1920 x 1080", k,
                      cases[k].args[1], cases[k].args[3], cases[k].args[5], px);
        xmlDocPtr doc = xmlReadFile(tp("s.svg"), NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        xmlChar *w = xmlGetProp(xmlDocGetRootElement(doc), (const xmlChar *)"width"),
                *h = xmlGetProp(xmlDocGetRootElement(doc), (const xmlChar *)"height");
        double W = atof((const char *)w), H = atof((const char *)h);
        cr_assert(fabs(W - 960) < 1 || fabs(H - 540) < 1, "case %u: fills a 13.33 x 7.5 in slide (%g x %g pt)", k, W, H);
        xmlFree(w), xmlFree(h);
        xmlFreeDoc(doc);
    }
}

/* A slide's labels are the lecture's notation: h_t, x_t, o_t, L_t, y_t with
 * subscript steps from 1, W_hh, ∂L/∂h_t as a fraction, gates by name, ops
 * as symbols; no shapes, no plumbing (reshape, slice) and no legend. */
Test(render, slide_labels_are_mathematical)
{
    register_cells();
    char *argv[] = {"--cell", "lstm", "--seq-len", "3", "--backward", "--style", "slide", "-o", (char *)tp("m.dot")};
    cr_assert_eq(cmd_dot(9, argv), 0);
    char *op = slurp(tp("m.dot"));
    char *cell_argv[] = {"--cell", "lstm", "--layers", "2", "--seq-len", "3", "--view", "cell", "--backward",
                         "--style", "slide", "-o", (char *)tp("c.dot")};
    cr_assert_eq(cmd_dot(13, cell_argv), 0);
    char *cell = slurp(tp("c.dot"));
    /* the op view: gates by name with their step, ops as symbols, the state's gradient as a fraction */
    const char *const in_op[] = {"label=<f₂>", "label=<i₃>", "label=<g₁>", "label=<c₂>", "label=<h₃>", "label=<tanh>",
                                 "label=<⊙>", "label=<x₁>", "label=<y₂>", "label=<L₃>", "label=<Wᵢₕ>", "∂L</TD>",
                                 ">∂h₂</TD>", "size=\"13.333,7.5!\""};
    for (unsigned k = 0; k < sizeof in_op / sizeof *in_op; k++) cr_assert(strstr(op, in_op[k]), "op view: %s", in_op[k]);
    const char *const not_op[] = {"reshape", "slice", "(2,4)", "lg_", "legend"};
    for (unsigned k = 0; k < sizeof not_op / sizeof *not_op; k++) cr_assert(!strstr(op, not_op[k]), "op view: no %s", not_op[k]);
    /* the cell view: states with subscript step and superscript layer, c below h; the weights' layer */
    const char *const in_cell[] = {"label=<h₁⁽¹⁾<BR/>c₁⁽¹⁾>", "label=<h₃⁽²⁾<BR/>c₃⁽²⁾>", ">∂h₂⁽²⁾<BR/>∂c₂⁽²⁾</TD>",
                                   "label=<Wₕₕ⁽²⁾>", ">∂bᵢₕ⁽¹⁾</TD>", "label=<o₃>"};
    for (unsigned k = 0; k < sizeof in_cell / sizeof *in_cell; k++) cr_assert(strstr(cell, in_cell[k]), "cell view: %s", in_cell[k]);
    cr_assert(!strstr(cell, "layer 0") && !strstr(cell, "t=1"), "no diagram labels");
    /* an encoder–decoder: each part's weights marked (enc, dec), the attention weights α_t by their step, the
     * decoder's output layer by its name; one recurrent layer, so no layer superscripts */
    char *s2s_argv[] = {"--seq2seq", "additive", "--cell", "gru", "--seq-len", "3", "--view", "cell", "--style", "slide",
                        "-o", (char *)tp("s.dot")};
    cr_assert_eq(cmd_dot(12, s2s_argv), 0);
    char *s2s = slurp(tp("s.dot"));
    const char *const in_s2s[] = {"label=<α₄>", "label=<α₆>", "label=<Wᵢₕ<SUP>enc</SUP>>", "label=<Wₕₕ<SUP>dec</SUP>>",
                                  "label=<W<SUB>q</SUB><SUP>dec</SUP>>", "label=<dense₅>", "label=<h₂>", "label=<x₄>"};
    for (unsigned k = 0; k < sizeof in_s2s / sizeof *in_s2s; k++) cr_assert(strstr(s2s, in_s2s[k]), "seq2seq: %s", in_s2s[k]);
    cr_assert(!strstr(s2s, "⁽"), "no layer superscripts");
    free(op), free(cell), free(s2s);
}

/* What the loss reaches, the picture shows reaching it: in the command's
 * model (d2l's RNN: o_t, L_t, targets y_t) drawn as cells with gradients,
 * every parameter's Σ gradient is fed by a gradient edge — the output
 * layer's too, through the boxes ∂L/∂o[t], which feed the top layer's
 * gradient cells. */
Test(render, every_gradient_sum_is_fed_in_the_cell_view)
{
    register_cells();
    for (int style = 0; style < 2; style++) {
        char *argv[] = {"--cell", "gru", "--layers", "2", "--seq-len", "3", "--view", "cell", "--backward",
                        "--style", style ? "slide" : "diagram", "-o", (char *)tp("g.dot")};
        cr_assert_eq(cmd_dot(13, argv), 0);
        char *text = slurp(tp("g.dot"));
        Agraph_t *gr = agmemread(text);
        cr_assert(gr);
        int sums = 0, out_boxes = 0;
        for (Agnode_t *v = agfstnode(gr); v; v = agnxtnode(gr, v)) {
            bool sigma = !strcmp(attr(v, "loom_role"), "backward") && attr_int(v, "loom_step") < 0;
            if (!strncmp(agnameof(v), "b_", 2) && attr_int(v, "loom_dir") == 2) { /* ∂L/∂o[t] feeds ∂h_t of the top layer */
                out_boxes++;
                bool feeds = false;
                for (Agedge_t *e = agfstedge(gr, v); e; e = agnxtedge(gr, e, v)) {
                    Agnode_t *o = agtail(e) == v ? aghead(e) : agtail(e);
                    feeds = feeds || (!strcmp(attr(e, "loom_class"), "grad") && !strncmp(agnameof(o), "b_", 2) &&
                                      attr_int(o, "loom_layer") == 1 && attr_int(o, "loom_dir") == 0);
                }
                cr_assert(feeds, "style %d: %s feeds the top layer's gradient cell", style, agnameof(v));
            }
            if (!sigma) continue;
            sums++;
            int fed = 0;
            for (Agedge_t *e = agfstedge(gr, v); e; e = agnxtedge(gr, e, v))
                fed += !strcmp(attr(e, "loom_class"), "sum") || !strcmp(attr(e, "loom_class"), "grad");
            cr_assert_gt(fed, 0, "style %d: %s is fed by the steps", style, agnameof(v));
        }
        cr_assert_eq(sums, 2 * 4 + 2, "style %d: every parameter's Σ (two GRU layers, the output layer)", style);
        cr_assert_eq(out_boxes, 3, "style %d: one ∂L/∂o[t] per step", style);
        agclose(gr);
        free(text);
    }
}

/* Graphviz 2.42's orthogonal router aborts on some layouts (an assertion in
 * its maze; this 2-layer bidirectional GRU is one): loom renders in a child
 * process, so the caller lives. A router loom picked falls back to straight
 * edges and the picture is written; one the caller asked for is refused
 * with Graphviz's reason, the old file left as it was. */
Test(render, graphviz_crash_is_contained)
{
    FILE *f = fopen(tp("old.svg"), "w");
    fputs("old", f);
    fclose(f);
    char *asked[] = {"--cell", "gru", "--layers", "2", "--bidirectional", "--backward", "--view", "cell", "--truncate", "2",
                     "--edges", "ortho", "-o", (char *)tp("old.svg")};
    int rc = cmd_dot(14, asked);
    char *text = slurp(tp("old.svg"));
    if (rc) cr_assert_str_eq(text, "old", "a failed picture leaves the old file");
    else cr_assert_gt(strlen(text), 1000, "or Graphviz drew it");
    free(text);
    /* the DOT of that picture, its router loom's: drawn, whatever Graphviz does */
    char *dot_args[] = {"--cell", "gru", "--layers", "2", "--bidirectional", "--backward", "--view", "cell", "--truncate", "2",
                        "--edges", "ortho", "-o", (char *)tp("p.dot")};
    cr_assert_eq(cmd_dot(14, dot_args), 0);
    char *dot = slurp(tp("p.dot"));
    char *at = strstr(dot, "splines=ortho");
    cr_assert(at, "the router asked for");
    size_t n = strlen(dot);
    char *auto_dot = malloc(n + 32);
    snprintf(auto_dot, n + 32, "%.*ssplines=ortho, loom_edges=auto%s", (int)(at - dot), dot, at + strlen("splines=ortho"));
    cr_assert_eq(loom_dot_render(auto_dot, "svg", tp("p.svg"), fresh()), LOOM_OK, "%s", derr.msg);
    loom_status st = loom_dot_render(dot, "svg", tp("q.svg"), fresh());
    if (st) cr_assert(strstr(derr.msg, "crashed") && access(tp("q.svg"), F_OK) != 0, "%s", derr.msg);
    cr_assert_eq(loom_dot_render("digraph { a -> ", "svg", tp("r.svg"), fresh()), LOOM_ERR_FORMAT);
    cr_assert(strstr(derr.msg, "syntax error"), "Graphviz's reason: %s", derr.msg);
    free(dot), free(auto_dot);
}

/* Regularisers in the cell view: each shared mask is one node — the
 * hidden state's, the one between layers, the weight drop of W_hh —
 * feeding the box of every step; a per-step mask (zoneout) stays inside
 * its step's box. */
Test(dot, shared_masks_are_one_node_feeding_every_step)
{
    enum { T = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = 2, .hidden_size = 3, .layers = 2,
                                            .dropout = 0.3f, .variational = true, .state_dropout = 0.2f, .weight_drop = 0.3f,
                                            .zoneout = 0.1f});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, 2, 2));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_sum_all(g, o.output);
    char *text;
    Agraph_t *gr = parse(g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .roots = &loss, .n_roots = 1}, &text);
    const char *masks[3] = {"mask_h_l0", "mask_l0", "weight_hh_l1_dropped"};
    const int layer[3] = {0, 0, 1}; /* the box each feeds: layer 0's state and its output (joined in its box); layer 1's W_hh */
    for (int k = 0; k < 3; k++) {
        Agnode_t *m = NULL;
        for (Agnode_t *n = agfstnode(gr); n; n = agnxtnode(gr, n)) {
            const char *label = agget(n, "label");
            if (label && !strncmp(label, masks[k], strlen(masks[k])) && label[strlen(masks[k])] == '\\') m = n;
        }
        cr_assert(m, "%s is a node of its own", masks[k]);
        for (int t = 0; t < T; t++) {
            char box[32];
            snprintf(box, sizeof box, "f_%d_%d_0", t, layer[k]);
            Agnode_t *b = agnode(gr, box, 0);
            cr_assert(b && agedge(gr, m, b, NULL, 0), "%s feeds %s", masks[k], box);
        }
    }
    cr_assert(!strstr(text, "label=\"dropout\\n(2,3)\""), "zoneout's masks (one a step) stay inside the boxes");
    agclose(gr);
    free(text);
    loom_graph_free(g);
}

/* ---- the interactive page, in a real browser ---- */

/* Debian's chromium, headless: the page's DOM after its scripts ran
 * (--dump-dom; the virtual time budget lets the asynchronous work — a step
 * inflated — finish first), or NULL when there is no browser. */
static char *browser_dom(const char *url)
{
    if (system("command -v chromium > /dev/null 2>&1")) return NULL;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "chromium --headless --no-sandbox --disable-gpu --user-data-dir=%s/chromium --virtual-time-budget=30000 --dump-dom '%s' 2>/dev/null",
             tmpdir, url);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t cap = 1 << 20, n = 0;
    char *dom = malloc(cap);
    for (size_t r; (r = fread(dom + n, 1, cap - n - 1, p)) > 0;)
        if ((n += r) + 1 == cap) dom = realloc(dom, cap *= 2);
    dom[n] = 0;
    pclose(p);
    return dom;
}

/* The page at `path` opened with `hash` (#selftest…): its self-test's
 * results (a pointer into *dom, to free), no script error; NULL (the test
 * skipped) when there is no browser. */
static const char *selftest(const char *path, const char *hash, char **dom)
{
    char url[512];
    snprintf(url, sizeof url, "file://%s%s", path, hash);
    if (!(*dom = browser_dom(url))) cr_skip_test("no browser: install Debian's chromium (sh scripts/bootstrap --tests) to run the page's tests");
    const char *r = strstr(*dom, "<pre id=\"selftest\">");
    cr_assert(r, "the page ran its self-test (no script error stopped it)");
    cr_assert(strstr(r, "\"errors\":[]"), "no script errors: %.300s", r);
    return r;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The ids of the nodes a DOT text places (the lines "    id [... pos=...]"),
 * sorted (as the page's self-test reports them), space-separated. */
static int dot_node_ids(const char *dot, char *out, size_t size, int *edges)
{
    int n = 0, cap = 1024;
    char **id_of = malloc((size_t)cap * sizeof *id_of);
    *edges = 0;
    for (const char *l = dot; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char id[64];
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[8192];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        if (strstr(line, " -> ")) {
            (*edges)++;
            continue;
        }
        if (sscanf(line, " %63[A-Za-z0-9_] [", id) == 1 && strstr(line, "pos=\"") && strcmp(id, "node") && strcmp(id, "graph")) {
            if (n == cap) id_of = realloc(id_of, (size_t)(cap *= 2) * sizeof *id_of);
            id_of[n++] = strdup(id);
        }
    }
    qsort(id_of, (size_t)n, sizeof *id_of, str_cmp);
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        at += (size_t)snprintf(out + at, at < size ? size - at : 0, "%s%s", i ? " " : "", id_of[i]);
        free(id_of[i]);
    }
    free(id_of);
    return n;
}

/* loom dot -o g.html: one file, no network; opened in headless Chromium
 * with #selftest, the page runs its scripted interactions (search, hover a
 * cell, an op's tooltip, forward only) and writes the results into its
 * DOM. Every node the DOT has is on the page and no other, the edges are
 * the DOT's, no script error. */
Test(render, html_page_in_a_browser, .timeout = 120)
{
    char *argv[] = {"--cell", "lstm", "--layers", "2", "--seq-len", "4", "--backward", "-o", (char *)tp("g.html")};
    cr_assert_eq(cmd_dot(9, argv), 0);
    char *page = slurp(tp("g.html"));
    cr_assert(!strstr(page, "http://") && !strstr(page, "https://") && !strstr(page, "<script src"), "self-contained");
    free(page);
    char *dom;
    const char *r = selftest(tp("g.html"), "#selftest", &dom);
    cr_assert(strstr(r, "\"search\":{\"query\":\"weight_hh_l0\",\"matches\":2"), "search finds both layers' W_hh: %.200s",
              strstr(r, "\"search\""));
    cr_assert(strstr(r, "\"shown\":\"block\"") && strstr(r, "step: t = 1\\nlayer: 0"), "hovering a cell shows its tags");
    cr_assert(strstr(r, "shape: ("), "an op's tooltip gives its shape");
    /* a cell box opened into its ops (the op view's nodes of its step, layer, direction) and closed */
    const char *op = strstr(r, "\"opened\":{\"id\":\"f_0_0_0\",\"ops\":");
    cr_assert(op, "the first cell opens: %.200s", strstr(r, "\"opened\""));
    cr_assert_gt(atoi(op + strlen("\"opened\":{\"id\":\"f_0_0_0\",\"ops\":")), 10, "its ops");
    cr_assert(strstr(op, " f[1] ") && strstr(op, " c[1] ") && strstr(op, "h[1]"), "the gates and states of t = 1: %.200s", op);
    cr_assert(strstr(op, "\"isOpen\":true,\"hit\":true,\"closed\":true"), "open, an op found under the pointer, closed: %.300s", op);
    cr_assert(strstr(r, "\"fwdOnly\":true"), "forward only hides the backward nodes");
    /* the plan, stepped through: at the first call nodes wait, at the end none, BPTT from the last step back */
    const char *plan = strstr(r, "\"plan\":{\"calls\":");
    cr_assert(plan, "the page knows the plan's order");
    int calls = 0, waiting = 0;
    cr_assert_eq(sscanf(plan, "\"plan\":{\"calls\":%d,\"waitingAtStart\":%d", &calls, &waiting), 2);
    cr_assert(calls > 50 && waiting > 10, "%d calls, %d nodes waiting at the first", calls, waiting);
    cr_assert(strstr(plan, "\"waitingAtEnd\":0,\"bpttOrder\":true"), "%.120s", plan);
    /* with --grad-norms: the norms along t as a plot, a click on a point selects its step's cell */
    char *nargv[] = {"--cell", "rnn_tanh", "--seq-len", "6", "--view", "cell", "--grad-norms", "-o", (char *)tp("n.html")};
    cr_assert_eq(cmd_dot(9, nargv), 0);
    char *ndom;
    const char *nr = strstr(selftest(tp("n.html"), "#selftest", &ndom), "\"norms\":{");
    const char *want_norms = "\"norms\":{\"curves\":1,\"points\":6,\"selected\":\"f_1_0_0\",\"want\":\"f_1_0_0\"}";
    cr_assert(nr && !strncmp(nr, want_norms, strlen(want_norms)),
              "the plot: %.120s", nr ? nr : "(none)");
    free(ndom);
    /* read the DOT of the same picture and compare ids and edge counts */
    const char *views[2] = {"cell", "op"};
    for (int k = 0; k < 2; k++) {
        char *dargv[] = {"--cell", "lstm", "--layers", "2", "--seq-len", "4", "--backward", "--view", (char *)views[k], "-o",
                         (char *)tp("g.dot")};
        cr_assert_eq(cmd_dot(11, dargv), 0);
        char *dot = slurp(tp("g.dot"));
        static char ids[1 << 20];
        int edges, n = dot_node_ids(dot, ids, sizeof ids, &edges);
        char want[256];
        snprintf(want, sizeof want, "\"%s\":{\"nodes\":%d,\"edges\":%d,\"ids\":\"", views[k], n, edges);
        const char *got = strstr(r, want);
        cr_assert(got, "%s view: %d nodes and %d edges, as the DOT: %.120s", views[k], n, edges, strstr(r, views[k]));
        got += strlen(want);
        cr_assert(!strncmp(got, ids, strlen(ids)) && got[strlen(ids)] == '"', "%s view: the same node ids", views[k]);
        free(dot);
    }
    free(dom);
}

/* A long sequence's op view: the page parses at once the steps the
 * command's op view draws (the first and last 4 of 20) and gets the others
 * closed (compressed); a cell of a closed step opened in the cell view shows
 * its ops once its step is opened, and with every step opened the op view
 * is the DOT of every step, node for node and edge for edge. */
Test(render, html_page_opens_closed_steps, .timeout = 120)
{
    char *argv[] = {"--cell", "gru", "--layers", "2", "--seq-len", "20", "--backward", "--steps-shown", "4", "-o", (char *)tp("c.html")};
    cr_assert_eq(cmd_dot(11, argv), 0);
    char *dom;
    const char *r = selftest(tp("c.html"), "#selftest&openall", &dom);
    const char *c = strstr(r, "\"closed\":{\"steps\":12,");
    cr_assert(c, "12 steps closed: %.200s", strstr(r, "\"closed\""));
    int ops = 0;
    const char *co = strstr(c, "\"loading\":true,\"cellOps\":");
    cr_assert(co && sscanf(co, "\"loading\":true,\"cellOps\":%d", &ops) == 1 && ops > 10,
              "the cell's inset waits for its step, then shows its ops: %.200s", c);
    cr_assert(strstr(c, "\"left\":0,") && strstr(c, "\"waitingEdges\":0}"), "every step opened, every edge drawn: %.200s", c);
    char *dargv[] = {"--cell", "gru", "--layers", "2", "--seq-len", "20", "--backward", "--view", "op", "--steps-shown", "0",
                     "-o", (char *)tp("c.dot")};
    cr_assert_eq(cmd_dot(13, dargv), 0);
    char *dot = slurp(tp("c.dot"));
    static char ids[1 << 20];
    int edges, n = dot_node_ids(dot, ids, sizeof ids, &edges);
    char want[256];
    snprintf(want, sizeof want, "\"op\":{\"nodes\":%d,\"edges\":%d,\"ids\":\"", n, edges);
    const char *got = strstr(r, want);
    cr_assert(got, "the op view, every step opened: %d nodes and %d edges, as the DOT: %.120s", n, edges, strstr(r, "\"op\":{"));
    got += strlen(want);
    cr_assert(!strncmp(got, ids, strlen(ids)) && got[strlen(ids)] == '"', "the same node ids");
    free(dot), free(dom);
}

/* An equation cell's page: a node's tooltip gives the statement that built
 * it (a gradient node, the statement it is the gradient of), a cell box's
 * all of the cell's statements. */
Test(render, html_page_shows_equations, .timeout = 120)
{
    char *argv[] = {"--cell", LOOM_CELLS_DIR "/gru_eq.cell", "--seq-len", "3", "--backward", "-o", (char *)tp("e.html")};
    cr_assert_eq(cmd_dot(7, argv), 0);
    char *dom;
    const char *r = strstr(selftest(tp("e.html"), "#selftest", &dom), "\"equations\":[");
    cr_assert(r, "the page found equation nodes");
    cr_assert(strstr(r, "[\"gi[1]\\nop: add") && strstr(r, "from gru_eq: gi = weight_ih @ x + bias_ih"), "a named node: %.300s", r);
    cr_assert(strstr(r, "gradient of gru_eq: "), "a gradient node: %.300s", r);
    cr_assert(strstr(r, "equations of gru_eq:\\n  gi = weight_ih @ x + bias_ih\\n  gh = weight_hh @ h + bias_hh\\n"
                        "  r = sigmoid(gi[0:H] + gh[0:H])"),
              "a cell box: %.600s", r);
    free(dom);
}

/* An encoder–decoder's page: the attention weights of its first sentence
 * (on random tokens) as a heat map, a row per decoder step summing to 1; a
 * click on the second row goes to the second decoder step's attention node. */
Test(render, html_page_attention_map, .timeout = 120)
{
    char *argv[] = {"--seq2seq", "additive", "--seq-len", "5", "--backward", "-o", (char *)tp("s.html")};
    cr_assert_eq(cmd_dot(7, argv), 0);
    char *page = slurp(tp("s.html"));
    cr_assert(strstr(page, "\"attention\": {\"rows\": 3, \"cols\": 5, \"w\": ["), "the weights in the page");
    free(page);
    char *dom;
    const char *r = strstr(selftest(tp("s.html"), "#selftest", &dom), "\"attention\":{");
    const char *want = "\"attention\":{\"rows\":3,\"cols\":5,\"nodes\":3,\"sums\":true,";
    cr_assert(r && !strncmp(r, want, strlen(want)), "3 decoder steps over 5 source positions: %.200s", r ? r : "(none)");
    char sel[32] = "", wanted[32] = "";
    cr_assert(sscanf(strstr(r, "\"selected\":"), "\"selected\":\"%31[^\"]\",\"want\":\"%31[^\"]\"", sel, wanted) == 2 &&
                  !strcmp(sel, wanted) && strstr(r, "\"label\":\"attention[7]\""),
              "row 2 goes to attention[7]: %.200s", r);
    /* without attention, no map */
    char *nargv[] = {"--seq2seq", "none", "--seq-len", "3", "-o", (char *)tp("s0.html")};
    cr_assert_eq(cmd_dot(6, nargv), 0);
    page = slurp(tp("s0.html"));
    cr_assert(strstr(page, "\"attention\": null"));
    free(page), free(dom);
}

/* Truncated BPTT on the page: each cut's dashed line is drawn (both its
 * ends are invisible points), as many as the DOT has. */
Test(render, html_page_draws_truncation_cuts, .timeout = 120)
{
    char *argv[] = {"--cell", "gru", "--truncate", "3", "--seq-len", "8", "--backward", "--view", "cell", "-o", (char *)tp("t.html")};
    cr_assert_eq(cmd_dot(11, argv), 0);
    char *dargv[] = {"--cell", "gru", "--truncate", "3", "--seq-len", "8", "--backward", "--view", "cell", "-o", (char *)tp("t.dot")};
    cr_assert_eq(cmd_dot(11, dargv), 0);
    char *dot = slurp(tp("t.dot"));
    int cuts = 0;
    for (const char *p = dot; (p = strstr(p, "loom_class=cut")); p++) cuts++;
    free(dot);
    cr_assert_eq(cuts, 2, "a cut before steps 4 and 7");
    char *dom;
    const char *r = strstr(selftest(tp("t.html"), "#selftest", &dom), "\"cuts\":");
    cr_assert(r && atoi(r + strlen("\"cuts\":")) == cuts, "every cut drawn: %.40s", r ? r : "(none)");
    free(dom);
}

/* A name is text on the page, whatever it holds: "</script>" in a tensor's
 * name cannot end the page's data, and the page still finds the node. */
Test(render, html_page_names_are_text, .timeout = 120)
{
    model m = build(&loom_cell_gru, 3, 1, false, LOOM_TRUNC_NONE, 0, false);
    loom_tensor_set_name(m.g, m.loss, "</script><b>L & \"it\"</b>");
    cr_assert_eq(loom_dot_save(m.g, NULL, tp("n.html"), fresh()), LOOM_OK, "%s", derr.msg);
    char *page = slurp(tp("n.html"));
    cr_assert(!strstr(page, "</script><b>"), "the name does not end a script element");
    free(page);
    char *dom;
    const char *r = selftest(tp("n.html"), "#selftest&find=%3C%2Fscript%3E", &dom);
    char *dot;
    size_t len;
    cr_assert_eq(loom_dot_string(m.g, &(loom_dot_opts){.view = LOOM_DOT_CELLS}, &dot, &len, NULL), LOOM_OK);
    static char ids[1 << 16];
    int edges, n = dot_node_ids(dot, ids, sizeof ids, &edges);
    char want[96];
    snprintf(want, sizeof want, "\"cell\":{\"nodes\":%d,\"edges\":%d,", n, edges);
    cr_assert(strstr(r, want), "every node and edge: %s in %.120s", want, r);
    free(dot), free(dom);
    loom_graph_free(m.g);
}
