/* Unrolling a cell over time: layers, directions, variable lengths,
 * truncated BPTT. Every node built for step t of layer l in direction d
 * carries the tags (t, l, d). */
#include "loom/rnn.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE_STR(s) loom_shape_str((s), (char[64]){0}, 64)

const char *loom_rnn_param_name(const loom_rnn *rnn, int layer, int dir, int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s_l%d%s", rnn->o.prefix ? rnn->o.prefix : "", rnn->spec[layer][i].name, layer,
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
        !(o->dropout >= 0.0f && o->dropout < 1.0f) || o->cell->n_states < 1 || o->cell->n_states > LOOM_CELL_MAX_STATES) {
        loom_graph_fail(g, LOOM_ERR_ARG,
                        "rnn %s: bad options: input_size %d, hidden_size %d, layers %d (1..%d), dropout %g ([0, 1)), "
                        "states %d (1..%d)",
                        cn, o->input_size, o->hidden_size, o->layers, LOOM_RNN_MAX_LAYERS, o->dropout, o->cell->n_states,
                        LOOM_CELL_MAX_STATES);
        return LOOM_ERR_ARG;
    }
    rnn->dirs = o->bidirectional ? 2 : 1;
    for (int l = 0; l < o->layers; l++) {
        int in = l == 0 ? o->input_size : rnn->dirs * o->hidden_size;
        int n = o->cell->params(o->cell, in, o->hidden_size, rnn->spec[l]);
        if (n < 0 || n > LOOM_CELL_MAX_PARAMS) {
            loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: the cell declares %d parameters (at most %d)", cn, n,
                            LOOM_CELL_MAX_PARAMS);
            return LOOM_ERR_ARG;
        }
        rnn->n_params = n;
        for (int d = 0; d < rnn->dirs; d++) {
            loom_tags saved = loom_graph_set_tags(g, (loom_tags){-1, (int16_t)l, (int8_t)d, LOOM_ROLE_PARAM, 0});
            for (int i = 0; i < n; i++) {
                char name[160];
                const loom_param_spec *s = &rnn->spec[l][i];
                rnn->param[l][d][i] =
                    loom_param_init(g, loom_rnn_param_name(rnn, l, d, i, name, sizeof name), s->shape, s->init, s->scale);
            }
            loom_graph_set_tags(g, saved);
        }
    }
    return loom_graph_status(g);
}

/* Boundaries where the state passes through stop_gradient: cut[t] means a
 * cut between steps t−1 and t. */
static int plan_cuts(const loom_rnn_args *a, int T, bool *cut, int *list, int max)
{
    int n = 0;
    if (!a || a->trunc == LOOM_TRUNC_NONE || a->truncate < 1) return 0;
    uint64_t s = a->trunc_seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (int t = 0;;) {
        int len = a->truncate;
        if (a->trunc == LOOM_TRUNC_RANDOM) { /* uniform in [1, 2K−1]: mean K */
            s += 0x9E3779B97F4A7C15ull;
            uint64_t z = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            len = 1 + (int)(z % (uint64_t)(2 * a->truncate - 1));
        }
        t += len;
        if (t >= T) break;
        cut[t] = true;
        if (n < max) list[n++] = t;
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

loom_rnn_out loom_rnn_apply(loom_graph *g, const loom_rnn *rnn, loom_tensor x, const loom_rnn_args *args)
{
    loom_rnn_out out = invalid_out();
    if (loom_graph_failed(g)) return out;
    const loom_rnn_opts *o = &rnn->o;
    const loom_cell_def *cell = o->cell;
    const char *cn = cell && cell->name ? cell->name : "cell";
    if (!cell || rnn->dirs < 1) {
        loom_graph_fail(g, LOOM_ERR_ARG, "rnn: not initialised (call loom_rnn_init first)");
        return out;
    }
    loom_shape xs = loom_tensor_shape(g, x);
    if (!loom_graph_has(g, x) || xs.rank != 3 || xs.d[2] != o->input_size || loom_tensor_dtype(g, x) != LOOM_F32) {
        char buf[160];
        loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: input %s must be f32 of shape (T, B, %d)", cn,
                        loom_tensor_str(g, x, buf, sizeof buf), o->input_size);
        return out;
    }
    int T = xs.d[0], B = xs.d[1], H = o->hidden_size, D = rnn->dirs, L = o->layers, S = cell->n_states;
    loom_shape state_shape = loom_shape3(L * D, B, H);
    for (int s = 0; args && s < S; s++) {
        loom_tensor i0 = args->init[s];
        if (loom_valid(i0) && (!loom_graph_has(g, i0) || !loom_shape_eq(loom_tensor_shape(g, i0), state_shape))) {
            char buf[160];
            loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: initial state %d %s must have shape %s (layers·dirs, B, H)", cn,
                            s, loom_tensor_str(g, i0, buf, sizeof buf), SHAPE_STR(state_shape));
            return out;
        }
    }
    loom_tensor mask = LOOM_INVALID;
    if (args && loom_valid(args->lengths)) {
        loom_shape ls = loom_tensor_shape(g, args->lengths);
        if (!loom_graph_has(g, args->lengths) || ls.rank != 1 || ls.d[0] != B ||
            loom_tensor_dtype(g, args->lengths) != LOOM_I32) {
            char buf[160];
            loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: lengths %s must be i32 of shape (%d,)", cn,
                            loom_tensor_str(g, args->lengths, buf, sizeof buf), B);
            return out;
        }
        mask = loom_sequence_mask(g, args->lengths, T);
    }
    if (args && args->trunc != LOOM_TRUNC_NONE && args->truncate < 1) {
        loom_graph_fail(g, LOOM_ERR_ARG, "rnn %s: truncation length %d must be >= 1", cn, args->truncate);
        return out;
    }

    /* Step inputs of the current layer, and step outputs per direction. The
     * layers pass each step's output straight to the next layer's step (no
     * stacking and re-slicing), so that step t of layer l+1 reads step t of
     * layer l and nothing else. */
    bool *cut = calloc((size_t)T + 1, sizeof *cut);
    loom_tensor *in_t = malloc((size_t)T * sizeof *in_t), *out_t = malloc((size_t)(2 * T) * sizeof *out_t);
    loom_tensor *finals = malloc((size_t)(S * L * D) * sizeof *finals);
    if (!cut || !in_t || !out_t || !finals) {
        free(cut), free(in_t), free(out_t), free(finals);
        loom_graph_fail(g, LOOM_ERR_NOMEM, "rnn: out of memory");
        return out;
    }
    out.n_cuts = plan_cuts(args, T, cut, out.cuts, LOOM_RNN_MAX_CUTS);

    loom_tags saved = loom_graph_tags(g);
    /* x_t: the input row (layer −1) of step t */
    for (int t = 0; t < T; t++) {
        loom_graph_set_tags(g, (loom_tags){t, -1, 0, LOOM_ROLE_FORWARD, 0});
        in_t[t] = loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(B, o->input_size));
        if (!loom_tensor_name(g, in_t[t])) {
            char nm[32];
            snprintf(nm, sizeof nm, "x[%d]", t);
            loom_tensor_set_name(g, in_t[t], nm);
        }
    }
    for (int l = 0; l < L && !loom_graph_failed(g); l++) {
        for (int d = 0; d < D; d++) {
            loom_tensor st[LOOM_CELL_MAX_STATES], next[LOOM_CELL_MAX_STATES];
            loom_graph_set_tags(g, (loom_tags){-1, (int16_t)l, (int8_t)d, LOOM_ROLE_FORWARD, 0});
            for (int s = 0; s < S; s++) {
                loom_tensor i0 = args ? args->init[s] : LOOM_INVALID;
                st[s] = loom_valid(i0) ? loom_reshape(g, loom_slice(g, i0, 0, l * D + d, 1), loom_shape2(B, H))
                                       : loom_fill(g, loom_shape2(B, H), 0.0f);
            }
            for (int k = 0; k < T; k++) {
                int t = d ? T - 1 - k : k;
                loom_graph_set_tags(g, (loom_tags){t, (int16_t)l, (int8_t)d, LOOM_ROLE_FORWARD, 0});
                /* crossing a truncation boundary: the state enters as a constant */
                if (k > 0 && (d ? cut[t + 1] : cut[t]))
                    for (int s = 0; s < S; s++) st[s] = loom_stop_gradient(g, st[s]);
                for (int s = 0; s < S; s++) next[s] = LOOM_INVALID;
                loom_tensor y = cell->step(g, cell, rnn->param[l][d], in_t[t], st, next);
                for (int s = 0; s < S && !loom_graph_failed(g); s++)
                    if (!loom_shape_eq(loom_tensor_shape(g, next[s]), loom_shape2(B, H))) {
                        char buf[160];
                        loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: step returned state %d %s, expected (%d,%d)", cn, s,
                                        loom_tensor_str(g, next[s], buf, sizeof buf), B, H);
                    }
                if (!loom_graph_failed(g) && !loom_shape_eq(loom_tensor_shape(g, y), loom_shape2(B, H))) {
                    char buf[160];
                    loom_graph_fail(g, LOOM_ERR_SHAPE, "rnn %s: step returned output %s, expected (%d,%d)", cn,
                                    loom_tensor_str(g, y, buf, sizeof buf), B, H);
                }
                if (loom_graph_failed(g)) break;
                if (loom_valid(mask)) {
                    /* past a sequence's end its state holds and its output is 0 */
                    loom_tensor m = loom_reshape(g, loom_slice(g, mask, 0, t, 1), loom_shape2(B, 1));
                    for (int s = 0; s < S; s++) next[s] = loom_where(g, m, next[s], st[s]);
                    y = loom_mul(g, y, m);
                }
                for (int s = 0; s < S; s++) {
                    st[s] = next[s];
                    mark_state(g, st[s], t, s);
                }
                out_t[d * T + t] = y;
            }
            for (int s = 0; s < S; s++) {
                loom_graph_set_tags(g, (loom_tags){-1, (int16_t)l, (int8_t)d, LOOM_ROLE_FORWARD, 0});
                finals[s * L * D + l * D + d] = loom_reshape(g, st[s], loom_shape3(1, B, H));
            }
        }
        /* the next layer's step inputs: [forward; reverse] (dir 2 = both),
         * with dropout between layers */
        for (int t = 0; t < T && !loom_graph_failed(g); t++) {
            loom_graph_set_tags(g, (loom_tags){t, (int16_t)l, (int8_t)(D == 2 ? 2 : 0), LOOM_ROLE_FORWARD, 0});
            in_t[t] = D == 2 ? loom_concat(g, (loom_tensor[]){out_t[t], out_t[T + t]}, 2, 1) : out_t[t];
            if (l < L - 1 && o->dropout > 0.0f)
                in_t[t] = loom_dropout(g, in_t[t], o->dropout, o->seed + (uint64_t)l * 1000003u + (uint64_t)t);
        }
    }
    if (!loom_graph_failed(g)) {
        for (int t = 0; t < T; t++) {
            loom_graph_set_tags(g, (loom_tags){t, (int16_t)(L - 1), (int8_t)(D == 2 ? 2 : 0), LOOM_ROLE_FORWARD, 0});
            out_t[t] = loom_reshape(g, in_t[t], loom_shape3(1, B, D * H));
        }
        loom_graph_set_tags(g, (loom_tags){-1, (int16_t)(L - 1), 0, LOOM_ROLE_FORWARD, 0});
        out.output = loom_concat(g, out_t, T, 0);
        loom_graph_set_tags(g, LOOM_TAGS_NONE);
        for (int s = 0; s < S; s++) out.final[s] = loom_concat(g, finals + s * L * D, L * D, 0);
    }
    loom_graph_set_tags(g, saved);
    free(cut), free(in_t), free(out_t), free(finals);
    if (loom_graph_failed(g)) return invalid_out();
    return out;
}
