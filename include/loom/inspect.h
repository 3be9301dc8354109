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

#include "loom/model.h"
#include "loom/rnn.h"
#include "loom/runtime.h"
#include "loom/train.h"


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

/* Those norms as rows of a metrics file (loom_metrics_open with the
 * columns LOOM_STATE_NORMS_COLUMNS, or "step," LOOM_STATE_NORMS_COLUMNS
 * when step >= 0 goes first): t from 1, layer from 0 as parameter names
 * count them, direction forward or reverse, the state by name, norm, and
 * norm64 (empty when NULL). */
#define LOOM_STATE_NORMS_COLUMNS "t,layer,direction,state,norm,norm64"
loom_status loom_state_norms_rows(loom_metrics *m, const loom_graph *g, const loom_state_grid *grid, const float *norm,
                                  const double *norm64, int64_t step);

/* The largest singular value of each step's Jacobian ∂s_t/∂s_{t−1}, s the
 * cell's carried states of one layer and direction joined (h; h and c for
 * an LSTM) — CS224n's argument: ‖∂L/∂s_1‖ ≤ ‖∂L/∂s_T‖ ∏_t ‖∂s_t/∂s_{t−1}‖₂.
 * Each Jacobian is made of vector–Jacobian products of the cell's own step
 * (one row per product, all in one run of a one-step graph), and its norm
 * found by power iteration on JᵀJ in double precision; the mean over the
 * batch's first max_seqs sequences (0: all) goes to
 * sigma[(t · layers + l) · dirs + d]. The norm only bounds how a gradient
 * shrinks (a product of such norms can exceed 1 while the gradient
 * vanishes); radius (when not NULL) gets J's spectral radius, the largest
 * modulus of its eigenvalues — the factor by which a gradient shrinks,
 * step after step, where the steps are alike. The first step a direction
 * takes (t = 0 forward, T − 1 reverse) starts from the initial state and
 * gets NAN. rnn is the stack g unrolled; binds as loom_state_grad_norms's. */
loom_status loom_state_jacobian_norms(loom_graph *g, const loom_rnn *rnn, const loom_state_grid *grid,
                                      const loom_binding *binds, int n_binds, int max_seqs, double *sigma, double *radius);

/* The mean activation of every gate of every step: the nodes a cell
 * names (an LSTM's i, f, o; a GRU's r, z; an equation cell's left-hand
 * sides) whose op is a sigmoid, averaged over the batch and the units.
 * mean[((t · layers + l) · dirs + d) · LOOM_MAX_GATES + k] is gate k's
 * (name[k]), NAN where a step has none; malloc'd, loom_gates_free. */
#define LOOM_MAX_GATES 16
typedef struct {
    int n;
    char name[LOOM_MAX_GATES][16];
    double *mean;
} loom_gates;
loom_status loom_gate_means(loom_graph *g, const loom_state_grid *grid, const loom_binding *binds, int n_binds,
                            loom_gates *out);
void loom_gates_free(loom_gates *gates);

/* The eigenvalues of a real n × n matrix (row-major, not changed):
 * re[k] + i·im[k], in no particular order. Hessenberg reduction and the
 * shifted QR algorithm; LOOM_ERR_VALUE if it does not converge (or a value
 * is not finite). */
loom_status loom_eigenvalues(const double *a, int n, double *re, double *im);
/* Which of a cell's parameters multiply a carried state (W_hh; an
 * equation cell's U_f, U_h): rec[i] for parameter i of the cell at these
 * sizes — the matrices whose spectra govern how a gradient vanishes. */
loom_status loom_cell_recurrent_params(const loom_cell_def *cell, int input_size, int hidden_size, bool *rec, int max);

/* The eigenvalues of every recurrent weight of a stack, by block: each
 * parameter that multiplies a state (loom_cell_recurrent_params) of shape
 * (k·H, H) is k square blocks (an LSTM's W_hh: i, f, g, o in PyTorch's
 * order), each block's H eigenvalues sorted by modulus, largest first. The
 * weights' values are the ones bound in binds. *out is malloc'd (*n
 * entries); loom_spectra_free. */
typedef struct {
    int layer, dir, param, block; /* param: index in the cell's parameters (rnn->param[layer][dir][param]) */
    int n;                        /* H */
    double *re, *im;              /* n each */
} loom_spectrum;
loom_status loom_rnn_spectra(const loom_graph *g, const loom_rnn *rnn, const loom_binding *binds, int n_binds,
                             loom_spectrum **out, int *n);
void loom_spectra_free(loom_spectrum *s, int n);

/* The Jacobian norms, gate means and spectra above as rows of a metrics
 * file opened with the columns named here (t from 1, layer from 0,
 * direction forward or reverse; steps without a value are left out). */
#define LOOM_JACOBIAN_COLUMNS "t,layer,direction,sigma_max,spectral_radius"
loom_status loom_jacobian_rows(loom_metrics *m, const loom_state_grid *grid, const double *sigma, const double *radius);
#define LOOM_GATE_COLUMNS "t,layer,direction,gate,mean"
loom_status loom_gate_rows(loom_metrics *m, const loom_state_grid *grid, const loom_gates *gates);
#define LOOM_SPECTRUM_COLUMNS "layer,direction,parameter,block,k,re,im,modulus"
loom_status loom_spectra_rows(loom_metrics *m, const loom_graph *g, const loom_rnn *rnn, const loom_spectrum *spec, int n);

/* A trained model on one batch, to look inside: a checkpoint's model (a
 * language model, or the adding or copy task) built over one batch, with
 * its weights, the batch, and zero initial states — everything bound, the
 * loss ready for loom_state_grad_norms. */
typedef enum { LOOM_BATCH_HELD_OUT = 0, LOOM_BATCH_TRAINING } loom_batch_from;
typedef struct {
    /* which batch: the held-out one the run evaluated on (a language model:
     * the window at the start of its held-out text, see loom_lm_held_out;
     * a task: its held-out batch), or a training one (the window at the
     * start of the text; the task's first batch) */
    loom_batch_from from;
    const char *text;  /* a language model: this text in place of the checkpoint's own */
    int steps;         /* a language model: the window's length (0: its training length) */
    bool last_step;    /* the loss of the last step alone (else the model's own loss:
                          a language model's and the copy task's over every step,
                          the adding task's at its last step) */
} loom_probe_opts;

typedef struct {
    loom_model_desc model;     /* the checkpoint's description */
    loom_graph *g;
    loom_store *store;         /* its weights */
    const loom_rnn *rnn;       /* the recurrent stack */
    loom_state_grid grid;      /* its carried states over the batch's steps */
    loom_tensor loss;
    const loom_binding *binds; /* every input and parameter the loss needs */
    int n_binds;
    /* the model and the buffers bound */
    loom_lm lm;
    loom_task_model task;
    void *x, *y, *zero;
    loom_binding *own_binds;
} loom_probe;

/* Opens ckpt into p; the reason of a failure in err (a checkpoint of an
 * encoder–decoder is refused: it has two stacks). */
loom_status loom_probe_open(loom_probe *p, const char *ckpt, const loom_probe_opts *o, loom_error *err);
/* The same for a model being trained: its description, the run's seed (a
 * task's batches), and the weights of `weights` (a trainer's store) bound
 * by name, not copied — the probe sees them as training changes them. A
 * language model's window is the first tokens of ids[0..n) (its held-out
 * text); o->text is not used. */
loom_status loom_probe_new(loom_probe *p, const loom_model_desc *m, uint64_t seed, const loom_store *weights,
                           const int32_t *ids, int64_t n, const loom_probe_opts *o, loom_error *err);
void loom_probe_close(loom_probe *p);

/* The gradient norms of a model being trained, every `every` steps, as
 * rows `step,t,layer,direction,state,norm,norm64` of a metrics file: a
 * probe of its weights (loom_probe_new) and the norms' buffers. */
typedef struct {
    loom_probe probe;
    loom_metrics *m;
    long every;
    float *norm;
    double *norm64;
} loom_norms_log;
/* Opens `path` (a resumed run keeps its rows up to step `resumed`; −1: a
 * new run) and the probe (arguments as loom_probe_new's). */
loom_status loom_norms_log_open(loom_norms_log *n, const char *path, long every, const loom_model_desc *d, uint64_t seed,
                                const loom_store *weights, const int32_t *ids, int64_t n_ids, int64_t resumed, loom_error *err);
/* At a step that is a multiple of every (0 included): the norms computed
 * and their rows written and flushed; at others nothing. */
loom_status loom_norms_log_step(loom_norms_log *n, int64_t step, loom_error *err);
void loom_norms_log_close(loom_norms_log *n);

/* One carried state's norms out of the grid's (loom_state_grad_norms):
 * out[(t · layers + l) · dirs + d] — the layout of loom_dot_opts.heat. */
void loom_state_select(const loom_state_grid *g, const float *norm, const double *norm64, int state, float *out, double *out64);

/* Node t's values on one batch (evaluation mode: dropout off) into out,
 * which holds exactly its n elements (float32 nodes): one run of a plan
 * that computes what t needs. Errors also go to the graph. */
loom_status loom_node_values(loom_graph *g, loom_tensor t, const loom_binding *binds, int n_binds, float *out, size_t n);

/* Every value the roots need, on one batch: stats[4·i …] = the minimum,
 * maximum, mean and L2 norm of node i's elements (float32 nodes; NaN for
 * integer ones and nodes the roots do not need). One run of a plan whose
 * outputs are all those nodes (evaluation mode: dropout off); a backward
 * node's norm is the norm of the gradient it holds. stats has
 * 4 · loom_graph_size(g) floats. Errors go to the graph. */
loom_status loom_value_stats(loom_graph *g, const loom_tensor *roots, int n_roots, const loom_binding *binds, int n_binds,
                             float *stats);

/* The lesson's numbers, from the top layer's forward direction: how much
 * of the gradient reaches the first step, and each step's Jacobian. */
typedef struct {
    double first, last;    /* ‖∂L/∂h_1‖, ‖∂L/∂h_T‖ (float64) */
    bool first_underflows; /* float32 rounds ‖∂L/∂h_1‖ to 0 */
    double ratio;          /* first / last (NaN when last is 0) */
    double factor;         /* ratio^(1/(T−1)): the shrinking per step (NaN where undefined) */
    int jacobians;         /* steps with a Jacobian (0: none given) */
    double sigma_min, sigma_max, sigma_mean, sigma_product; /* ‖J_t‖₂: range, geometric mean, product */
    double radius_mean;    /* the spectral radius of J_t, geometric mean: the rate */
} loom_gradient_summary;
/* norm, norm64 from loom_state_grad_norms; sigma, radius from
 * loom_state_jacobian_norms, or NULL. */
void loom_gradient_summarize(const loom_state_grid *g, const float *norm, const double *norm64, const double *sigma,
                             const double *radius, loom_gradient_summary *out);

#ifdef __cplusplus
}
#endif
#endif
