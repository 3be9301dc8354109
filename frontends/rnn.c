/* Unrolling a cell over time: layers, directions, variable lengths,
 * truncated BPTT. Every node built for step t of layer l in direction d
 * carries the tags (t, l, d). */
#include "loom/rnn.h"

#include "loom/inspect.h"
#include "loom/random.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE_STR(s) loom_shape_str((s), (char[64]){0}, 64)

const char *loom_rnn_param_name(const loom_rnn *rnn, int layer, int dir, int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s_l%d%s", rnn->o.prefix ? rnn->o.prefix : "", rnn->param_name[i], layer,
             dir ? "_reverse" : "");
    return buf;
}

loom_status loom_rnn_init(loom_graph *g, loom_rnn *rnn, const loom_rnn_opts *opts)
{
    if (loom_graph_failed(g)) return loom_graph_status(g);
    memset(rnn, 0, sizeof *rnn);
    if (!opts || !opts->cell || !opts->cell->params || !opts->cell->step) {
        loom_graph_fail(g, LOOM_ERR_ARG, "rnn: no cell (or a cell without params/step functions)");
        return LOOM_ERR_ARG;
    }
    rnn->o = *opts;
    if (rnn->o.layers == 0) rnn->o.layers = 1;
    const loom_rnn_opts *o = &rnn->o;
    const char *cn = o->cell->name ? o->cell->name : "cell";
    if (o->input_size < 1 || o->hidden_size < 1 || o->layers < 1 || o->layers > LOOM_RNN_MAX_LAYERS ||
        !(o->dropout >= 0.0f && o->dropout < 1.0f) || o->cell->n_states < 1 || o->cell->n_states > LOOM_CELL_MAX_STATES ||
        o->stacking < LOOM_STACK_PLAIN || o->stacking > LOOM_STACK_DENSE || !(o->state_dropout >= 0.0f && o->state_dropout < 1.0f) ||
        !(o->weight_drop >= 0.0f && o->weight_drop < 1.0f) || !(o->zoneout >= 0.0f && o->zoneout < 1.0f)) {
        loom_graph_fail(g, LOOM_ERR_ARG,
                        "rnn %s: bad options: input_size %d, hidden_size %d, layers %d (1..%d), dropout %g, state dropout %g, "
                        "weight drop %g, zoneout %g (each in [0, 1)), states %d (1..%d), stacking %d",
                        cn, o->input_size, o->hidden_size, o->layers, LOOM_RNN_MAX_LAYERS, o->dropout, o->state_dropout,
                        o->weight_drop, o->zoneout, o->cell->n_states, LOOM_CELL_MAX_STATES, (int)o->stacking);
        return LOOM_ERR_ARG;
    }
    if ((o->proj_size || o->unit_forget_bias) && o->cell != &loom_cell_lstm) {
        loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: %s is the LSTM's (loom_cell_lstm)", cn,
                        o->proj_size ? "proj_size" : "unit_forget_bias");
        return LOOM_ERR_ARG;
    }
    if (o->proj_size && (o->proj_size < 1 || o->proj_size >= o->hidden_size)) {
        loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: proj_size %d must be in [1, hidden_size %d)", cn, o->proj_size, o->hidden_size);
        return LOOM_ERR_ARG;
    }
    rnn->dirs = o->bidirectional ? 2 : 1;
    rnn->out_size = o->proj_size ? o->proj_size : o->hidden_size;
    uint8_t cell = loom_graph_label(g, cn); /* each node says which cell built it */
    int W = rnn->dirs * rnn->out_size;
    for (int l = 0; l < o->layers; l++) {
        int in = o->stacking == LOOM_STACK_DENSE ? o->input_size + l * W : l == 0 ? o->input_size : W;
        loom_param_spec spec[LOOM_CELL_MAX_PARAMS];
        memset(spec, 0, sizeof spec);
        int n = o->cell->params(o->cell, in, o->hidden_size, spec, LOOM_CELL_MAX_PARAMS);
        if (n < 0 || n > LOOM_CELL_MAX_PARAMS || (l > 0 && n != rnn->n_params - (o->proj_size ? 1 : 0))) {
            loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: the cell declares %d parameters for layer %d (0..%d%s)", cn, n, l,
                            LOOM_CELL_MAX_PARAMS, l > 0 ? ", as many as layer 0" : "");
            return LOOM_ERR_ARG;
        }
        if (l == 0) rnn->n_params = n;
        for (int i = 0; i < n; i++) {
            if (!spec[i].name[0] || !memchr(spec[i].name, 0, sizeof spec[i].name) ||
                (l > 0 && strcmp(spec[i].name, rnn->param_name[i]))) {
                loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: parameter %d of layer %d has no name or another name than layer 0's",
                                cn, i, l);
                return LOOM_ERR_ARG;
            }
            memcpy(rnn->param_name[i], spec[i].name, sizeof spec[i].name);
        }
        if (o->proj_size && l == 0) { /* PyTorch's layout: weight_hh (4H, P), then weight_hr (P, H) */
            rnn->n_params = 5;
            memcpy(rnn->param_name[4], "weight_hr", sizeof "weight_hr");
        }
        if (o->unit_forget_bias) /* bias_ih's forget rows [H, 2H) start at 1, bias_hh's at 0: their sum is 1 */
            for (int i = 2; i < 4; i++) spec[i].init = LOOM_INIT_FORGET_GATE, spec[i].b = i == 2 ? 1.0f : 0.0f;
        if (o->proj_size) {
            spec[1].shape = loom_shape2(4 * o->hidden_size, o->proj_size);
            spec[4] = (loom_param_spec){.name = "weight_hr", .shape = loom_shape2(o->proj_size, o->hidden_size),
                                        .init = spec[1].init, .scale = spec[1].scale, .b = spec[1].b};
            n = 5;
        }
        for (int d = 0; d < rnn->dirs; d++) {
            loom_tags saved = loom_graph_set_tags(g, (loom_tags){-1, (int16_t)l, (int8_t)d, LOOM_ROLE_PARAM, 0, cell, 0});
            for (int i = 0; i < n; i++) {
                char name[160];
                const loom_param_spec *s = &spec[i];
                rnn->param[l][d][i] =
                    loom_param_init2(g, loom_rnn_param_name(rnn, l, d, i, name, sizeof name), s->shape, s->init, s->scale, s->b);

            }
            loom_graph_set_tags(g, saved);
        }
        if (o->stacking == LOOM_STACK_HIGHWAY && in == W) { /* the gate between this layer's input and output */
            loom_tags saved = loom_graph_set_tags(g, (loom_tags){-1, (int16_t)l, 2, LOOM_ROLE_PARAM, 0, cell, 0});
            char name[160];
            snprintf(name, sizeof name, "%shighway_l%d.weight", o->prefix ? o->prefix : "", l);
            rnn->highway[l][0] = loom_param_init2(g, name, loom_shape2(W, W), LOOM_INIT_UNIFORM, 1.0f / sqrtf((float)W), 0);
            snprintf(name, sizeof name, "%shighway_l%d.bias", o->prefix ? o->prefix : "", l);
            rnn->highway[l][1] = loom_param_init2(g, name, loom_shape1(W), LOOM_INIT_CONSTANT, -1.0f, 0);
            loom_graph_set_tags(g, saved);
        }
    }
    return loom_graph_status(g);
}

void loom_rnn_init_inputs(loom_graph *g, const loom_rnn *rnn, int batch, loom_tensor init[LOOM_CELL_MAX_STATES])
{
    static const char *const names[LOOM_CELL_MAX_STATES] = {"h0", "c0", "s2_0", "s3_0"};
    int S = rnn->o.cell ? rnn->o.cell->n_states : 0, rows = rnn->o.layers * rnn->dirs;
    for (int s = 0; s < LOOM_CELL_MAX_STATES; s++)
        init[s] = s < S ? loom_input(g, names[s], loom_shape3(rows, batch, s ? rnn->o.hidden_size : rnn->out_size)) : LOOM_INVALID;
}

void loom_trunc_draw(uint64_t seed, int64_t run, int mean, float *xi, int64_t n)
{
    uint64_t s = loom_mix(seed * 0x9E3779B97F4A7C15ull ^ loom_mix((uint64_t)run));
    double cut = mean > 1 ? 1.0 / mean : 1.0;                       /* 1 − π */
    float keep = mean > 1 ? (float)((double)mean / (mean - 1)) : 0; /* 1/π */
    for (int64_t i = 0; i < n; i++) xi[i] = loom_uniform(&s) < cut ? 0.0f : keep;
}

/* The truncation built into the graph: cut[d·(T+1) + t] (a stop_gradient
 * at the boundary into step t of direction d) and, for a random draw,
 * xi[d·T + t] (its weight). Returns the forward direction's cuts in list. */
static int plan_cuts(const loom_rnn_args *a, int T, int D, bool *cut, float *xi, int *list, int max)
{
    int n = 0;
    if (!a || a->trunc == LOOM_TRUNC_NONE || a->truncate < 1 || loom_valid(a->trunc_xi)) return 0;
    if (a->trunc == LOOM_TRUNC_RANDOM) loom_trunc_draw(a->trunc_seed, 0, a->truncate, xi, (int64_t)D * T);
    for (int d = 0; d < D; d++)
        for (int t = 1; t < T; t++) {
            int into = d ? t - 1 : t; /* the reverse direction enters step t−1 from t */
            bool c = a->trunc == LOOM_TRUNC_RANDOM ? xi[d * T + into] == 0 : t % a->truncate == 0;
            cut[d * (T + 1) + into] = c;
            if (c && d == 0 && n < max) list[n++] = t;
        }
    return n;
}

/* Tags the state a step hands to the next one (for diagrams and gradient
 * norms) and names it h[t], c[t], ... unless it has a name. A cell that
 * passes a state through unchanged returns an older node: that one keeps
 * the tags of the step that made it. */
static void mark_state(loom_graph *g, loom_tensor st, int t, int s)
{
    const loom_node *n = loom_graph_node(g, st);
    if (!n || n->tags.step != t) return;
    loom_tags tags = n->tags;
    tags.state = (uint8_t)(s + 1);
    loom_tensor_set_tags(g, st, tags);
    if (!loom_tensor_name(g, st)) {
        static const char *const letter[] = {"h", "c"};
        char nm[32];
        if (s < 2) snprintf(nm, sizeof nm, "%s[%d]", letter[s], t);
        else snprintf(nm, sizeof nm, "s%d[%d]", s, t);
        loom_tensor_set_name(g, st, nm);
    }
}

static loom_rnn_out invalid_out(void)
{
    loom_rnn_out o;
    memset(&o, 0, sizeof o);
    o.output = LOOM_INVALID;
    for (int s = 0; s < LOOM_CELL_MAX_STATES; s++) o.final[s] = LOOM_INVALID;
    return o;
}

/* What one unroll works with: sizes, the mask, cut positions, and the
 * per-step tensors passed between layers. */
typedef struct {
    const loom_rnn *rnn;
    const loom_cell_def *cell;
    const char *cn;                /* the cell's name, for messages */
    uint8_t cell_label;            /* and as a tag */
    int T, B, H, D, L, S;
    int W[LOOM_CELL_MAX_STATES];   /* each state's width: h is out_size (a projection's), the others H */
    loom_tensor mask;              /* (T, B) sequence mask, or invalid */
    bool *cut;                     /* cut[d·(T+1) + t]: a cut at the boundary into step t of direction d */
    float *xi;                     /* a random truncation's weights built into the graph, [d·T + t] */
    loom_tensor xi_const;          /* the same as a constant (or invalid) */
    loom_tensor *in_t;             /* the current layer's step inputs */
    loom_tensor *out_t;            /* step outputs, [d · T + t] */
    loom_tensor *finals;           /* [s · L · D + l · D + d] */
} unroll;

/* Tags of a forward node of this stack at (step, layer, direction). */
static loom_tags tags(const unroll *u, int t, int l, int d)
{
    return (loom_tags){t, (int16_t)l, (int8_t)d, LOOM_ROLE_FORWARD, 0, u->cell_label, 0};
}

/* ---- recurrent regularisation (loom_rnn_opts) ---- */

/* A mask's seed: one per use (what), layer, direction, step (−1: every step) and state. */
static uint64_t mask_seed(const loom_rnn_opts *o, uint64_t what, int l, int d, int t, int s)
{
    return o->seed + what * 0x9E3779B97F4A7C15ull + (uint64_t)l * 1000003u + (uint64_t)d * 7919u + (uint64_t)(t + 1) * 131u +
           (uint64_t)s;
}

/* An inverted-dropout mask of shape s (0, or 1/(1 − p)): the same values
 * wherever it is used in one run (they depend on the seed, the run and the
 * element); ones in evaluation plans. */
static loom_tensor dropout_mask(loom_graph *g, loom_shape s, float p, uint64_t seed)
{
    return loom_dropout(g, loom_fill(g, s, 1.0f), p, seed);
}

/* What a layer's steps share: its parameters, the recurrent ones through
 * their DropConnect mask, and the hidden state's variational mask. */
typedef struct {
    loom_tensor param[LOOM_CELL_MAX_PARAMS];
    loom_tensor state_mask; /* invalid: none */
} layer_regs;

static void layer_regs_new(loom_graph *g, const unroll *u, int l, int d, int in_width, layer_regs *r)
{
    const loom_rnn *rnn = u->rnn;
    const loom_rnn_opts *o = &rnn->o;
    memcpy(r->param, rnn->param[l][d], sizeof r->param);
    r->state_mask = LOOM_INVALID;
    if (o->weight_drop > 0) {
        bool rec[LOOM_CELL_MAX_PARAMS] = {false};
        if (loom_cell_recurrent_params(u->cell, in_width, o->hidden_size, rec, LOOM_CELL_MAX_PARAMS)) {
            loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: weight drop: cannot tell the recurrent weights", u->cn);
            return;
        }
        for (int i = 0; i < rnn->n_params; i++)
            if (rec[i]) {
                char name[LOOM_NAME_MAX + 16];
                r->param[i] = loom_dropout(g, r->param[i], o->weight_drop, mask_seed(o, 1, l, d, -1, i));
                loom_rnn_param_name(rnn, l, d, i, name, sizeof name - 8);
                if (!loom_tensor_name(g, r->param[i])) loom_tensor_set_name(g, r->param[i], strcat(name, "_dropped"));
            }
    }
    if (o->state_dropout > 0) {
        char name[64];
        r->state_mask = dropout_mask(g, loom_shape2(u->B, u->W[0]), o->state_dropout, mask_seed(o, 2, l, d, -1, 0));
        snprintf(name, sizeof name, "mask_h_l%d%s", l, d ? "_reverse" : "");
        if (!loom_tensor_name(g, r->state_mask)) loom_tensor_set_name(g, r->state_mask, name);
    }
}

static bool check_step(loom_graph *g, const unroll *u, loom_tensor y, const loom_tensor *next);

/* One step of layer l in direction d: the cell on x and the states st (h
 * through its mask), the new states zoned out; the step's output (h's
 * zoned-out value where the output is h), or invalid after an error. */
static loom_tensor cell_step(loom_graph *g, const unroll *u, const layer_regs *r, int l, int d, int t, loom_tensor x,
                             const loom_tensor *st, loom_tensor *next)
{
    const loom_rnn_opts *o = &u->rnn->o;
    loom_tensor in[LOOM_CELL_MAX_STATES];
    for (int s = 0; s < u->S; s++) in[s] = st[s], next[s] = LOOM_INVALID;
    if (loom_valid(r->state_mask)) in[0] = loom_mul(g, st[0], r->state_mask);
    char where[160]; /* an error the cell's step makes says where it was made */
    snprintf(where, sizeof where, "cell %s, step %d of %d, layer %d, %s", u->cn, t + 1, u->T, l, d ? "reverse" : "forward");
    loom_graph_set_context(g, where);
    loom_tensor y = u->cell->step(g, u->cell, r->param, x, in, next);
    loom_graph_set_context(g, NULL);
    if (!check_step(g, u, y, next)) return LOOM_INVALID;
    if (o->zoneout > 0) { /* s_{t−1} + k ⊙ (s̃_t − s_{t−1}), k 1 with probability 1 − p (its expectation 1 − p in evaluation) */
        bool y_is_h = y.id == next[0].id;
        for (int s = 0; s < u->S; s++) {
            loom_tensor k = loom_affine(g, dropout_mask(g, loom_shape2(u->B, u->W[s]), o->zoneout, mask_seed(o, 3, l, d, t, s)),
                                        1.0f - o->zoneout, 0.0f);
            next[s] = loom_add(g, st[s], loom_mul(g, k, loom_sub(g, next[s], st[s])));
        }
        if (y_is_h) y = next[0];
    }
    return loom_graph_failed(g) ? LOOM_INVALID : y;
}

/* Checks x, the initial states, the lengths and the truncation; sets the
 * sizes and the mask. */
static bool check_args(loom_graph *g, unroll *u, loom_tensor x, const loom_rnn_args *args)
{
    const loom_rnn_opts *o = &u->rnn->o;
    char buf[160];
    if (!u->cell || u->rnn->dirs < 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "rnn: not initialised (call loom_rnn_init first)"));
    loom_shape xs = loom_tensor_shape(g, x);
    if (!loom_graph_has(g, x) || xs.rank != 3 || xs.d[2] != o->input_size || loom_tensor_dtype(g, x) != LOOM_F32)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: input %s must be f32 of shape (T, B, %d)", u->cn,
                                           loom_tensor_str(g, x, buf, sizeof buf), o->input_size));
    u->T = xs.d[0], u->B = xs.d[1], u->H = o->hidden_size, u->D = u->rnn->dirs, u->L = o->layers;
    u->S = u->cell->n_states;
    for (int s = 0; s < u->S; s++) u->W[s] = s ? u->H : u->rnn->out_size;
    for (int s = 0; args && s < u->S; s++) {
        loom_shape state_shape = loom_shape3(u->L * u->D, u->B, u->W[s]);
        loom_tensor i0 = args->init[s];
        if (loom_valid(i0) && (!loom_graph_has(g, i0) || !loom_shape_eq(loom_tensor_shape(g, i0), state_shape)))
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE,
                                               "rnn %s: initial state %d %s must have shape %s (layers·dirs, B, H)", u->cn,
                                               s, loom_tensor_str(g, i0, buf, sizeof buf), SHAPE_STR(state_shape)));
    }
    u->mask = LOOM_INVALID;
    if (args && loom_valid(args->lengths)) {
        loom_shape ls = loom_tensor_shape(g, args->lengths);
        if (!loom_graph_has(g, args->lengths) || ls.rank != 1 || ls.d[0] != u->B ||
            loom_tensor_dtype(g, args->lengths) != LOOM_I32)
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: lengths %s must be i32 of shape (%d,)", u->cn,
                                               loom_tensor_str(g, args->lengths, buf, sizeof buf), u->B));
        u->mask = loom_sequence_mask(g, args->lengths, u->T);
    }
    if (args && args->trunc != LOOM_TRUNC_NONE && args->truncate < 1)
        return !loom_valid(
            loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: truncation length %d must be >= 1", u->cn, args->truncate));
    if (args && args->trunc == LOOM_TRUNC_RANDOM && loom_valid(args->trunc_xi) &&
        (!loom_graph_has(g, args->trunc_xi) || loom_tensor_dtype(g, args->trunc_xi) != LOOM_F32 ||
         loom_tensor_shape(g, args->trunc_xi).rank != 1 || loom_tensor_numel(g, args->trunc_xi) != (int64_t)u->D * u->T))
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: the truncation weights %s must be f32 of shape (%d,) (dirs·T)",
                                           u->cn, loom_tensor_str(g, args->trunc_xi, buf, sizeof buf), u->D * u->T));
    return true;
}

/* x_t: the input row (layer −1) of step t. */
static void step_inputs(loom_graph *g, unroll *u, loom_tensor x)
{
    for (int t = 0; t < u->T; t++) {
        loom_graph_set_tags(g, tags(u, t, -1, 0));
        u->in_t[t] = loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(u->B, u->rnn->o.input_size));
        if (!loom_tensor_name(g, u->in_t[t])) {
            char nm[32];
            snprintf(nm, sizeof nm, "x[%d]", t);
            loom_tensor_set_name(g, u->in_t[t], nm);
        }
    }
}

/* The step's new states and output must be (B, H). */
static bool check_step(loom_graph *g, const unroll *u, loom_tensor y, const loom_tensor *next)
{
    char buf[160];
    for (int s = 0; s < u->S && !loom_graph_failed(g); s++)
        if (!loom_shape_eq(loom_tensor_shape(g, next[s]), loom_shape2(u->B, u->W[s])))
            loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: step returned state %d %s, expected (%d,%d)", u->cn, s,
                            loom_tensor_str(g, next[s], buf, sizeof buf), u->B, u->W[s]);
    if (!loom_graph_failed(g) && !loom_shape_eq(loom_tensor_shape(g, y), loom_shape2(u->B, u->W[0])))
        loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: step returned output %s, expected (%d,%d)", u->cn,
                        loom_tensor_str(g, y, buf, sizeof buf), u->B, u->W[0]);
    return !loom_graph_failed(g);
}

/* One direction of one layer over all steps (the reverse direction from
 * T−1 down to 0), from its initial states to its final ones. */
static void run_direction(loom_graph *g, unroll *u, int l, int d, const loom_rnn_args *args)
{
    int T = u->T, S = u->S, B = u->B;
    loom_tensor st[LOOM_CELL_MAX_STATES], next[LOOM_CELL_MAX_STATES];
    loom_graph_set_tags(g, tags(u, -1, (int16_t)l, (int8_t)d));
    layer_regs regs; /* built once, outside the steps: every step shares them */
    layer_regs_new(g, u, l, d, loom_tensor_shape(g, u->in_t[0]).d[1], &regs);
    for (int s = 0; s < S; s++) {
        loom_tensor i0 = args ? args->init[s] : LOOM_INVALID;
        st[s] = loom_valid(i0) ? loom_reshape(g, loom_slice(g, i0, 0, l * u->D + d, 1), loom_shape2(B, u->W[s]))
                               : loom_fill(g, loom_shape2(B, u->W[s]), 0.0f);
    }
    for (int k = 0; k < T; k++) {
        int t = d ? T - 1 - k : k;
        loom_graph_set_tags(g, tags(u, t, (int16_t)l, (int8_t)d));
        /* crossing a truncation boundary: the state enters as a constant,
         * or (random truncation) with its gradient weighted by ξ */
        if (k > 0 && u->cut[d * (T + 1) + t])
            for (int s = 0; s < S; s++) st[s] = loom_stop_gradient(g, st[s]);
        else if (k > 0 && args && args->trunc == LOOM_TRUNC_RANDOM) {
            loom_tensor xi = loom_valid(args->trunc_xi) ? args->trunc_xi : u->xi_const;
            for (int s = 0; s < S; s++) st[s] = loom_scale_grad(g, st[s], xi, d * T + t);
        }
        loom_tensor y = cell_step(g, u, &regs, l, d, t, u->in_t[t], st, next);
        if (!loom_valid(y)) return;
        if (loom_valid(u->mask)) {
            /* past a sequence's end its state holds and its output is 0 */
            loom_tensor m = loom_reshape(g, loom_slice(g, u->mask, 0, t, 1), loom_shape2(B, 1));
            for (int s = 0; s < S; s++) next[s] = loom_where(g, m, next[s], st[s]);
            y = loom_mul(g, y, m);
        }
        for (int s = 0; s < S; s++) {
            st[s] = next[s];
            mark_state(g, st[s], t, s);
        }
        u->out_t[d * T + t] = y;
    }
    loom_graph_set_tags(g, tags(u, -1, (int16_t)l, (int8_t)d));
    for (int s = 0; s < S; s++) u->finals[(s * u->L + l) * u->D + d] = loom_reshape(g, st[s], loom_shape3(1, B, u->W[s]));
}

/* Layer l's input x and output y at step t ([forward; reverse]) joined into
 * the next layer's input — after the last layer, the stack's output — as
 * the stacking says (loom_stacking), dropout between layers applied to y.
 * The layers pass each step's output straight to the next layer's step (no
 * stacking and re-slicing), so that step t of layer l+1 reads step t of
 * layer l (and, joined, what layer l read) and nothing else. */
/* Variational dropout between layers: layer l's mask for outputs of shape s (invalid: none). */
static loom_tensor layer_mask(loom_graph *g, const loom_rnn *rnn, int l, loom_shape s)
{
    const loom_rnn_opts *o = &rnn->o;
    return l < o->layers - 1 && o->dropout > 0.0f && o->variational ? dropout_mask(g, s, o->dropout, mask_seed(o, 4, l, 0, -1, 0))
                                                                     : LOOM_INVALID;
}

static loom_tensor join(loom_graph *g, const loom_rnn *rnn, int l, int t, loom_tensor x, loom_tensor y, loom_tensor mask)
{
    const loom_rnn_opts *o = &rnn->o;
    bool last = l == o->layers - 1, same = loom_tensor_shape(g, x).d[1] == rnn->dirs * rnn->out_size;
    if (loom_valid(mask)) /* one mask for every step */
        y = loom_mul(g, y, mask);
    else if (!last && o->dropout > 0.0f)
        y = loom_dropout(g, y, o->dropout, o->seed + (uint64_t)l * 1000003u + (uint64_t)t);
    if (o->stacking == LOOM_STACK_RESIDUAL && same) return loom_add(g, y, x);
    if (o->stacking == LOOM_STACK_HIGHWAY && same) { /* x + g ⊙ (y − x) */
        loom_tensor gate = loom_sigmoid(g, loom_add(g, loom_matmul(g, x, rnn->highway[l][0], false, true), rnn->highway[l][1]));
        return loom_add(g, x, loom_mul(g, gate, loom_sub(g, y, x)));
    }
    if (o->stacking == LOOM_STACK_DENSE && !last) return loom_concat(g, (loom_tensor[]){x, y}, 2, 1);
    return y;
}

static void join_layer(loom_graph *g, unroll *u, int l)
{
    int T = u->T;
    loom_graph_set_tags(g, tags(u, -1, (int16_t)l, (int8_t)(u->D == 2 ? 2 : 0)));
    loom_tensor mask = layer_mask(g, u->rnn, l, loom_shape2(u->B, u->D * u->W[0])); /* outside the steps: shared */
    char name[32];
    snprintf(name, sizeof name, "mask_l%d", l);
    if (loom_valid(mask)) loom_tensor_set_name(g, mask, name);
    for (int t = 0; t < T && !loom_graph_failed(g); t++) {
        loom_graph_set_tags(g, tags(u, t, (int16_t)l, (int8_t)(u->D == 2 ? 2 : 0)));
        loom_tensor y = u->D == 2 ? loom_concat(g, (loom_tensor[]){u->out_t[t], u->out_t[T + t]}, 2, 1) : u->out_t[t];
        u->in_t[t] = join(g, u->rnn, l, t, u->in_t[t], y, mask);
    }
}

/* output (T, B, D·H): the last layer's steps stacked; final[s]: (L·D, B, H). */
static void gather_outputs(loom_graph *g, unroll *u, loom_rnn_out *out)
{
    int T = u->T, L = u->L, D = u->D;
    for (int t = 0; t < T; t++) {
        loom_tags at = tags(u, t, (int16_t)(L - 1), (int8_t)(D == 2 ? 2 : 0));
        loom_graph_set_tags(g, at);
        u->out_t[t] = loom_reshape(g, u->in_t[t], loom_shape3(1, u->B, D * u->W[0]));
        /* the last step's is the final state's reshape (one node, made first, outside the steps): it is the step's */
        const loom_node *n = loom_graph_node(g, u->out_t[t]);
        if (n && n->tags.step < 0) loom_tensor_set_tags(g, u->out_t[t], at);
    }
    loom_graph_set_tags(g, tags(u, -1, (int16_t)(L - 1), 0));
    out->output = loom_concat(g, u->out_t, T, 0);
    loom_graph_set_tags(g, LOOM_TAGS_NONE);
    for (int s = 0; s < u->S; s++) out->final[s] = loom_concat(g, u->finals + s * L * D, L * D, 0);
}

loom_rnn_out loom_rnn_apply(loom_graph *g, const loom_rnn *rnn, loom_tensor x, const loom_rnn_args *args)
{
    loom_rnn_out out = invalid_out();
    if (loom_graph_failed(g)) return out;
    unroll u = {.rnn = rnn, .cell = rnn->o.cell};
    u.cn = u.cell && u.cell->name ? u.cell->name : "cell";
    u.cell_label = loom_graph_label(g, u.cn);
    if (!check_args(g, &u, x, args)) return out;
    u.cut = calloc((size_t)u.D * (u.T + 1), sizeof *u.cut);
    u.xi = calloc((size_t)u.D * u.T, sizeof *u.xi);
    u.in_t = malloc((size_t)u.T * sizeof *u.in_t);
    u.out_t = malloc((size_t)(2 * u.T) * sizeof *u.out_t);
    u.finals = malloc((size_t)(u.S * u.L * u.D) * sizeof *u.finals);
    loom_tags saved = loom_graph_tags(g);
    if (!u.cut || !u.xi || !u.in_t || !u.out_t || !u.finals) {
        loom_graph_fail(g, LOOM_ERR_NOMEM, "rnn: out of memory");
    } else {
        out.n_cuts = plan_cuts(args, u.T, u.D, u.cut, u.xi, out.cuts, LOOM_RNN_MAX_CUTS);
        u.xi_const = args && args->trunc == LOOM_TRUNC_RANDOM && !loom_valid(args->trunc_xi)
                         ? loom_constant(g, loom_shape1(u.D * u.T), u.xi)
                         : LOOM_INVALID;
        step_inputs(g, &u, x);
        for (int l = 0; l < u.L && !loom_graph_failed(g); l++) {
            for (int d = 0; d < u.D && !loom_graph_failed(g); d++) run_direction(g, &u, l, d, args);
            join_layer(g, &u, l);
        }
        if (!loom_graph_failed(g)) gather_outputs(g, &u, &out);
    }
    loom_graph_set_tags(g, saved);
    free(u.cut), free(u.xi), free(u.in_t), free(u.out_t), free(u.finals);
    return loom_graph_failed(g) ? invalid_out() : out;
}

loom_tensor loom_rnn_step(loom_graph *g, const loom_rnn *rnn, int t, loom_tensor x, loom_tensor (*state)[LOOM_RNN_MAX_LAYERS])
{
    if (loom_graph_failed(g)) return LOOM_INVALID;
    unroll u = {.rnn = rnn, .cell = rnn->o.cell};
    u.cn = u.cell && u.cell->name ? u.cell->name : "cell";
    if (!u.cell || rnn->dirs != 1)
        return loom_graph_fail(g, LOOM_ERR_ARG, "rnn step: needs an initialised stack of one direction");
    const loom_rnn_opts *o = &rnn->o;
    loom_shape xs = loom_tensor_shape(g, x);
    char buf[160];
    if (!loom_graph_has(g, x) || xs.rank != 2 || xs.d[1] != o->input_size || loom_tensor_dtype(g, x) != LOOM_F32)
        return loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s step: input %s must be f32 of shape (B, %d)", u.cn,
                               loom_tensor_str(g, x, buf, sizeof buf), o->input_size);
    u.cell_label = loom_graph_label(g, u.cn);
    u.B = xs.d[0], u.H = o->hidden_size, u.D = 1, u.L = o->layers, u.S = u.cell->n_states, u.T = t + 1;
    for (int s = 0; s < u.S; s++) u.W[s] = s ? u.H : rnn->out_size;
    for (int s = 0; s < u.S; s++)
        for (int l = 0; l < u.L; l++)
            if (!loom_graph_has(g, state[s][l]) || !loom_shape_eq(loom_tensor_shape(g, state[s][l]), loom_shape2(u.B, u.W[s])))
                return loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s step: state %d of layer %d %s must have shape (%d,%d)",
                                       u.cn, s, l, loom_tensor_str(g, state[s][l], buf, sizeof buf), u.B, u.W[s]);
    loom_tags saved = loom_graph_tags(g);
    loom_tensor in = x, y = LOOM_INVALID;
    for (int l = 0; l < u.L && !loom_graph_failed(g); l++) {
        loom_tensor st[LOOM_CELL_MAX_STATES], next[LOOM_CELL_MAX_STATES];
        for (int s = 0; s < u.S; s++) st[s] = state[s][l], next[s] = LOOM_INVALID;
        loom_graph_set_tags(g, tags(&u, t, (int16_t)l, 0));
        layer_regs regs; /* the same masks as the unrolled stack's, step by step */
        layer_regs_new(g, &u, l, 0, loom_tensor_shape(g, in).d[1], &regs);
        y = cell_step(g, &u, &regs, l, 0, t, in, st, next);
        if (!loom_valid(y)) break;
        for (int s = 0; s < u.S; s++) {
            state[s][l] = next[s];
            mark_state(g, next[s], t, s);
        }
        in = join(g, rnn, l, t, in, y, layer_mask(g, rnn, l, loom_tensor_shape(g, y)));
    }
    loom_graph_set_tags(g, saved);
    return loom_graph_failed(g) ? LOOM_INVALID : in;
}
