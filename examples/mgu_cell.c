/* The minimal gated unit (Zhou et al., 2016), written only against loom's
 * public API: one gate f decides both how much to forget and how much of the
 * candidate to take.
 *
 *   f  = σ(W_f x + U_f h + b_f)
 *   h̃ = tanh(W_h x + U_h (f ⊙ h) + b_h)
 *   h' = (1 − f) ⊙ h + f ⊙ h̃
 *
 * Parameters (stacked like PyTorch's gates, rows [f; h]):
 *   weight_ih (2H, I), weight_hh (2H, H), bias (2H).
 * loom_rnn_init names them weight_ih_l0, weight_hh_l0, bias_l0 (…_reverse),
 * and loom_rnn_apply unrolls the cell over time, layers and directions.
 * Built as a shared object (libmgu_cell.so) it reaches the loom command
 * through --cell-lib; cells/mgu.cell is the same cell as equations, its
 * gates apart (W_f, W_h, ...). */
#include "mgu_cell.h"

#include <math.h>

static int mgu_params(const loom_cell_def *def, int input_size, int hidden_size, loom_param_spec *s, int max)
{
    if (max < 3) return 3; /* the count, nothing written */
    float a = 1.0f / sqrtf((float)hidden_size);
    s[0] = (loom_param_spec){.name = "weight_ih", .shape = loom_shape2(2 * hidden_size, input_size), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[1] = (loom_param_spec){.name = "weight_hh", .shape = loom_shape2(2 * hidden_size, hidden_size), .init = LOOM_INIT_UNIFORM, .scale = a};
    s[2] = (loom_param_spec){.name = "bias", .shape = loom_shape1(2 * hidden_size), .init = LOOM_INIT_UNIFORM, .scale = a};
    return 3;
}

static loom_tensor mgu_step(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x,
                            const loom_tensor *state, loom_tensor *next)
{
    loom_tensor h = state[0];
    int H = loom_tensor_shape(g, h).d[1];
    /* x [W_f; W_h]ᵀ + [b_f; b_h] in one matmul, then split */
    loom_tensor xp = loom_add(g, loom_matmul(g, x, p[0], false, true), p[2]);
    loom_tensor U_f = loom_slice(g, p[1], 0, 0, H), U_h = loom_slice(g, p[1], 0, H, H);
    loom_tensor f = loom_sigmoid(g, loom_add(g, loom_slice(g, xp, 1, 0, H), loom_matmul(g, h, U_f, false, true)));
    loom_tensor cand = loom_tanh(g, loom_add(g, loom_slice(g, xp, 1, H, H), loom_matmul(g, loom_mul(g, f, h), U_h, false, true)));
    next[0] = loom_add(g, h, loom_mul(g, f, loom_sub(g, cand, h))); /* (1 − f) h + f h̃ */
    return next[0];
}

const loom_cell_def mgu_cell = {"mgu", 1, mgu_params, mgu_step, NULL};

/* For loom --cell-lib: the cells this object holds, as a shared object
 * exports them (loom_cell_lib_load). */
const loom_cell_def *const loom_cell_lib[] = {&mgu_cell, NULL};
