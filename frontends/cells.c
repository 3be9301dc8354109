/* Built-in cells with PyTorch's equations, gate order and parameter layout.
 * Every cell's parameters are, in order: weight_ih (G·H, I), weight_hh
 * (G·H, H), bias_ih (G·H), bias_hh (G·H), G = gates per cell, all drawn from
 * U(−1/√H, 1/√H) as PyTorch does. */
#include "loom/rnn.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { W_IH, W_HH, B_IH, B_HH };

static int gated_params(int gates, int input_size, int hidden_size, loom_param_spec *s, int max)
{
    if (max < 4) return 4;
    float a = 1.0f / sqrtf((float)hidden_size);
    int gh = gates * hidden_size;
    s[W_IH] = (loom_param_spec){.name = "weight_ih", .shape = loom_shape2(gh, input_size), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[W_HH] = (loom_param_spec){.name = "weight_hh", .shape = loom_shape2(gh, hidden_size), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[B_IH] = (loom_param_spec){.name = "bias_ih", .shape = loom_shape1(gh), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[B_HH] = (loom_param_spec){.name = "bias_hh", .shape = loom_shape1(gh), .init = LOOM_INIT_UNIFORM, .scale = a};
    return 4;
}

static int rnn_params(const loom_cell_def *d, int i, int h, loom_param_spec *s, int max)
{
    return gated_params(1, i, h, s, max);
}
static int gru_params(const loom_cell_def *d, int i, int h, loom_param_spec *s, int max)
{
    return gated_params(3, i, h, s, max);
}
static int lstm_params(const loom_cell_def *d, int i, int h, loom_param_spec *s, int max)
{
    return gated_params(4, i, h, s, max);
}

/* x W_ihᵀ + b_ih and h W_hhᵀ + b_hh, each (B, G·H). */
static loom_tensor in_proj(loom_graph *g, const loom_tensor *p, loom_tensor x)
{
    return loom_add(g, loom_matmul(g, x, p[W_IH], false, true), p[B_IH]);
}

static loom_tensor hid_proj(loom_graph *g, const loom_tensor *p, loom_tensor h)
{
    return loom_add(g, loom_matmul(g, h, p[W_HH], false, true), p[B_HH]);
}

static int hidden_of(loom_graph *g, const loom_tensor *state)
{
    loom_shape s = loom_tensor_shape(g, state[0]);
    return s.d[s.rank - 1];
}

/* h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) */
static loom_tensor rnn_tanh_step(loom_graph *g, const loom_cell_def *d, const loom_tensor *p, loom_tensor x,
                                 const loom_tensor *state, loom_tensor *next)
{
    next[0] = loom_tanh(g, loom_add(g, in_proj(g, p, x), hid_proj(g, p, state[0])));
    return next[0];
}

/* h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) */
static loom_tensor rnn_relu_step(loom_graph *g, const loom_cell_def *d, const loom_tensor *p, loom_tensor x,
                                 const loom_tensor *state, loom_tensor *next)
{
    next[0] = loom_relu(g, loom_add(g, in_proj(g, p, x), hid_proj(g, p, state[0])));
    return next[0];
}

/* Gates r, z, n (PyTorch's order):
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr)
 *   z = σ(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
 *   h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n) */
/* Names a gate after its letter and the step ("f[3]"), as an equation
 * cell names its left-hand sides: the op view labels it, and
 * loom_gate_means finds it. (Names are not part of a graph's fingerprint.) */
static loom_tensor gate(loom_graph *g, loom_tensor x, const char *letter)
{
    int t = loom_graph_tags(g).step;
    if (t >= 0 && loom_valid(x) && !loom_tensor_name(g, x)) {
        char nm[32];
        snprintf(nm, sizeof nm, "%s[%d]", letter, t);
        loom_tensor_set_name(g, x, nm);
    }
    return x;
}

static loom_tensor gru_step(loom_graph *g, const loom_cell_def *d, const loom_tensor *p, loom_tensor x,
                            const loom_tensor *state, loom_tensor *next)
{
    int H = hidden_of(g, state);
    loom_tensor gi = in_proj(g, p, x), gh = hid_proj(g, p, state[0]);
    loom_tensor r = gate(g, loom_sigmoid(g, loom_add(g, loom_slice(g, gi, 1, 0, H), loom_slice(g, gh, 1, 0, H))), "r");
    loom_tensor z = gate(g, loom_sigmoid(g, loom_add(g, loom_slice(g, gi, 1, H, H), loom_slice(g, gh, 1, H, H))), "z");
    loom_tensor n = gate(g, loom_tanh(g, loom_add(g, loom_slice(g, gi, 1, 2 * H, H), loom_mul(g, r, loom_slice(g, gh, 1, 2 * H, H)))),
                         "n");
    next[0] = loom_add(g, n, loom_mul(g, z, loom_sub(g, state[0], n)));
    return next[0];
}

/* Gates i, f, g, o (PyTorch's order) from x W_ihᵀ + b_ih + h W_hhᵀ + b_hh:
 *   c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g),  h' = σ(o) ⊙ tanh(c')
 * With a projection (h narrower than c: loom_rnn_opts.proj_size),
 * h' = (σ(o) ⊙ tanh(c')) W_hrᵀ, W_hr the fifth parameter. */
static loom_tensor lstm_step(loom_graph *g, const loom_cell_def *d, const loom_tensor *p, loom_tensor x,
                             const loom_tensor *state, loom_tensor *next)
{
    int H = hidden_of(g, state + 1), P = hidden_of(g, state);
    loom_tensor z = loom_add(g, in_proj(g, p, x), hid_proj(g, p, state[0]));
    loom_tensor i = gate(g, loom_sigmoid(g, loom_slice(g, z, 1, 0, H)), "i");
    loom_tensor f = gate(g, loom_sigmoid(g, loom_slice(g, z, 1, H, H)), "f");
    loom_tensor c = gate(g, loom_tanh(g, loom_slice(g, z, 1, 2 * H, H)), "g");
    loom_tensor o = gate(g, loom_sigmoid(g, loom_slice(g, z, 1, 3 * H, H)), "o");
    next[1] = loom_add(g, loom_mul(g, f, state[1]), loom_mul(g, i, c));
    next[0] = loom_mul(g, o, loom_tanh(g, next[1]));
    if (P != H) next[0] = loom_matmul(g, next[0], p[4], false, true);
    return next[0];
}

const loom_cell_def loom_cell_rnn_tanh = {"rnn_tanh", 1, rnn_params, rnn_tanh_step, NULL};
const loom_cell_def loom_cell_rnn_relu = {"rnn_relu", 1, rnn_params, rnn_relu_step, NULL};
const loom_cell_def loom_cell_gru = {"gru", 1, gru_params, gru_step, NULL};
const loom_cell_def loom_cell_lstm = {"lstm", 2, lstm_params, lstm_step, NULL};

/* ---- the registry: built-ins first, then registered user cells ---- */

static const loom_cell_def *registry[LOOM_MAX_CELLS] = {&loom_cell_rnn_tanh, &loom_cell_rnn_relu, &loom_cell_gru,
                                                        &loom_cell_lstm};
static int n_registry = 4;

const loom_cell_def *const *loom_cells(int *n)
{
    if (n) *n = n_registry;
    return registry;
}

const loom_cell_def *loom_cell_by_name(const char *name)
{
    for (int i = 0; name && i < n_registry; i++)
        if (!strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}

loom_status loom_cell_register(const loom_cell_def *cell)
{
    if (!cell || !cell->name || !*cell->name || !cell->params || !cell->step) return LOOM_ERR_ARG;
    const loom_cell_def *known = loom_cell_by_name(cell->name);
    if (known) return known == cell ? LOOM_OK : LOOM_ERR_ARG;
    if (n_registry == LOOM_MAX_CELLS) return LOOM_ERR_STATE;
    registry[n_registry++] = cell;
    return LOOM_OK;
}

int loom_cell_lib_load(const char *path, loom_error *err)
{
    if (!path) return loom_error_set(err, LOOM_ERR_ARG, "cell library: no path"), -1;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        loom_error_set(err, LOOM_ERR_ARG, "%s: cannot load: %s", path, why ? why : "unknown reason");
        return -1;
    }
    const loom_cell_def *const *cells = dlsym(h, "loom_cell_lib");
    if (!cells) {
        loom_error_set(err, LOOM_ERR_ARG, "%s exports no loom_cell_lib (const loom_cell_def *const loom_cell_lib[] = {&cell, NULL})", path);
        dlclose(h);
        return -1;
    }
    int n = 0;
    for (; n < LOOM_MAX_CELLS && cells[n]; n++) {
        loom_status s = loom_cell_register(cells[n]);
        if (s) {
            const char *nm = cells[n]->name ? cells[n]->name : "";
            if (s == LOOM_ERR_STATE)
                loom_error_set(err, s, "%s: cell '%s': %d cells are known already", path, nm, LOOM_MAX_CELLS);
            else if (loom_cell_by_name(nm))
                loom_error_set(err, s, "%s: a cell named '%s' is already known", path, nm);
            else
                loom_error_set(err, s, "%s: cell %d ('%s') lacks a name, a params or a step function", path, n, nm);
            return -1; /* the cells before it stay registered: the object stays loaded */
        }
    }
    return n;
}
