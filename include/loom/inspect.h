/* loom/inspect.h — looking inside an unrolled recurrent model, as a lecture
 * on backpropagation through time does: the gradient of the loss with
 * respect to every carried state (∂L/∂h_t, ∂L/∂c_t), in float32 as training
 * computes it and in float64 where float32 underflows to 0 (a trained
 * vanilla RNN's ∂L/∂h₁ is near 1e-58).
 *
 * The states of an unrolled stack form a grid: (step t, layer l, direction
 * d, state s), s = 0 for h and 1 for c (an LSTM's) or the cell's own. Arrays
 * over the grid are indexed loom_state_at(grid, t, l, d, s). */
#ifndef LOOM_INSPECT_H
#define LOOM_INSPECT_H

#include "loom/runtime.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int steps, layers, dirs, states;
} loom_state_grid;

static inline size_t loom_state_at(const loom_state_grid *g, int t, int l, int d, int s)
{
    return (((size_t)t * g->layers + l) * g->dirs + d) * g->states + s;
}
static inline size_t loom_state_count(const loom_state_grid *g)
{
    return (size_t)g->steps * g->layers * g->dirs * g->states;
}

/* The node of every state of the grid (the forward graph's, found by the
 * tags loom_rnn_apply gives them), LOOM_INVALID where absent. */
void loom_states_find(const loom_graph *g, const loom_state_grid *grid, loom_tensor *out);
/* State s's name as the cell calls it: h, c, or an equation cell's
 * left-hand side (its nodes' names, "y[3]" → "y"). */
void loom_state_name(const loom_graph *g, int s, char *buf, size_t n);

/* ‖∂L/∂s‖ (L2 over the batch and the units) of every state of the grid:
 * norm as the float32 plan computes it, and, when norm64 is not NULL, the
 * same computed in float64 by the ops' reference kernels (slower; the
 * values float32 rounds to 0). 0 where the loss does not depend on the
 * state (cut by truncation, or absent). Appends the gradient nodes to g and
 * runs them once with binds (every input and parameter the loss needs). */
loom_status loom_state_grad_norms(loom_graph *g, loom_tensor loss, const loom_state_grid *grid, const loom_binding *binds,
                                  int n_binds, float *norm, double *norm64);

/* Those norms as CSV rows "t,layer,direction,state,norm,norm64" (t from 1,
 * layer from 0 as parameter names count them, direction forward or
 * reverse, state by name; norm64 empty when NULL), each row after prefix
 * (e.g. "1000," for a step column; NULL: none). The header is
 * LOOM_STATE_NORMS_HEADER. */
#define LOOM_STATE_NORMS_HEADER "t,layer,direction,state,norm,norm64"
loom_status loom_state_norms_csv(FILE *f, const loom_graph *g, const loom_state_grid *grid, const float *norm,
                                 const double *norm64, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
