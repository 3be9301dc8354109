/* loom/rnn.h — recurrent cells and unrolling over time.
 *
 * A cell builds one time step: from the step input x_t (B, I) and the previous
 * states (each (B, H)) it builds the new states and the step output (B, H)
 * out of its parameter nodes. loom_rnn_apply unrolls a cell over T steps for
 * any number of layers, one or two directions, variable lengths and truncated
 * BPTT, tagging every node with its (step, layer, direction). The built-in
 * cells follow torch.nn.RNN / GRU / LSTM exactly: equations, gate order,
 * parameter names and shapes, so weights move both ways.
 */
#ifndef LOOM_RNN_H
#define LOOM_RNN_H

#include "loom/graph.h"
#include "loom/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_CELL_MAX_PARAMS 64
#define LOOM_CELL_MAX_STATES 4
#define LOOM_RNN_MAX_LAYERS 16
#define LOOM_NAME_MAX 64
#define LOOM_RNN_MAX_CUTS 512

/* One parameter of a cell: its name stem (the layer appends "_l{k}" and, for
 * the reverse direction, "_reverse"), shape and initialiser with its numbers
 * (loom_param_init2's a and b). */
typedef struct {
    char name[LOOM_NAME_MAX];
    loom_shape shape;
    loom_init init;
    float scale, b;
} loom_param_spec;

typedef struct loom_cell_def loom_cell_def;
struct loom_cell_def {
    const char *name;
    int n_states; /* state tensors carried between steps, each (B, hidden); state 0 is h */
    /* Returns how many parameters a layer with this input and hidden size
     * has and, when that is at most max (LOOM_CELL_MAX_PARAMS), fills
     * specs[0..count) with them; a count above max is refused by name
     * before any is used. */
    int (*params)(const loom_cell_def *def, int input_size, int hidden_size, loom_param_spec *specs, int max);
    /* Builds one step from the parameter nodes p (in spec order), the step
     * input x (B, input) and the states; writes the new states and returns the
     * step output (B, hidden). */
    loom_tensor (*step)(loom_graph *g, const loom_cell_def *def, const loom_tensor *p, loom_tensor x,
                        const loom_tensor *state, loom_tensor *new_state);
    const void *user; /* the cell's own data, for a step function several cells share */
};

/* torch.nn.RNN(nonlinearity='tanh'|'relu'), torch.nn.GRU, torch.nn.LSTM. */
extern const loom_cell_def loom_cell_rnn_tanh, loom_cell_rnn_relu, loom_cell_gru, loom_cell_lstm;

/* The cells loom knows by name: the built-ins, then the registered user
 * cells, in order (*n of them). */
const loom_cell_def *const *loom_cells(int *n);
/* A known cell by name ("rnn_tanh", "rnn_relu", "gru", "lstm", or a
 * registered one), or NULL. */
const loom_cell_def *loom_cell_by_name(const char *name);
/* Makes a user cell known by name (loom_cell_by_name, loom_cells, and so
 * the loom command's --cell). Registering the same cell twice is allowed;
 * LOOM_ERR_ARG for an incomplete cell or a name another cell has,
 * LOOM_ERR_STATE when LOOM_MAX_CELLS cells are known. Register before
 * building graphs on other threads. */
#define LOOM_MAX_CELLS 256
loom_status loom_cell_register(const loom_cell_def *cell);

/* A cell from its equations, in the cell language (README, "Cells from
 * equations"):
 *     cell mgu(x; h)
 *       f  = sigmoid(W_f @ x + U_f @ h + b_f)
 *       hc = tanh(W_h @ x + U_h @ (f * h) + b_h)
 *       h  = (1 - f) * h + f * hc
 * registered under its name as loom_cell_register does, and living as long
 * as the program. Parsing the same equations again returns the same cell;
 * another cell of that name is an error. NULL with err set, naming the
 * line and column ("ORIGIN:3:14: expected ')' after the arguments, ...";
 * origin, e.g. the file's name, may be NULL). */
const loom_cell_def *loom_cell_parse(const char *text, const char *origin, loom_error *err);
/* loom_cell_parse of a file's text (at most 64 KiB), errors naming the file. */
const loom_cell_def *loom_cell_load(const char *path, loom_error *err);
/* A cell by name: a file of equations when the name is a path or ends in
 * .cell (loom_cell_load); else a registered cell, else NAME.cell from the
 * folders of the environment variable LOOM_CELL_PATH (':'-separated), then
 * from the installed cells folder (share/loom/cells: the cells loom ships). */
const loom_cell_def *loom_cell_find(const char *name, loom_error *err);
/* Registers the cells a shared object exports as
 *     const loom_cell_def *const loom_cell_lib[] = {&my_cell, ..., NULL};
 * (cells written in C, for a program that did not link them: the loom
 * command's --cell-lib). The object stays loaded. Returns the number
 * registered, or -1 with err set. */
int loom_cell_lib_load(const char *path, loom_error *err);
/* The equations of a cell made by loom_cell_parse; NULL for a cell written in C. */
const char *loom_cell_source(const loom_cell_def *cell);
/* Its statements (0 for a cell written in C), and statement k as one line
 * ("f = sigmoid(W_f @ x + U_f @ h + b_f)"; comments dropped, blanks run
 * together) into buf, cut to n bytes; NULL when there is no statement k.
 * The nodes statement k builds carry k + 1 in their tags' eq (and their
 * gradients too). */
int loom_cell_equations(const loom_cell_def *cell);
const char *loom_cell_equation(const loom_cell_def *cell, int k, char *buf, size_t n);

/* How stacked layers connect (CS224n; TF's ResidualWrapper and
 * HighwayWrapper; densely connected RNNs). x_l is layer l's input at a
 * step, o_l its output there (dropout between layers applied to it), x_0
 * the stack's input and x_L its output:
 *   PLAIN:    x_{l+1} = o_l
 *   RESIDUAL: x_{l+1} = o_l + x_l
 *   HIGHWAY:  x_{l+1} = g ⊙ o_l + (1 − g) ⊙ x_l,  g = σ(W_g x_l + b_g): a gate
 *             per layer, highway_l{k}.weight (W, W) and .bias (W), the bias
 *             starting at −1 so that a layer first mostly carries its input
 *             (Srivastava et al. 2015)
 *   DENSE:    x_{l+1} = [x_l; o_l]: every layer reads the input and every
 *             layer below it (layer l's weight_ih has input_size + l·W
 *             columns); the stack's output is o_{L−1}
 * with W = dirs · out_size. Residual and highway connections join a layer
 * whose input is as wide as its output: every layer but the first, and the
 * first too when input_size = W. */
typedef enum { LOOM_STACK_PLAIN = 0, LOOM_STACK_RESIDUAL, LOOM_STACK_HIGHWAY, LOOM_STACK_DENSE } loom_stacking;

typedef struct {
    const loom_cell_def *cell;
    int input_size, hidden_size;
    int layers;            /* default 1 */
    loom_stacking stacking;
    bool bidirectional;
    float dropout;         /* between layers, training only (as torch.nn.RNN's dropout) */
    /* LSTM with projections (torch.nn.LSTM's proj_size, Sak et al. 2014):
     * h_t = W_hr (o_t ⊙ tanh(c_t)), so h, the outputs and the next layer's
     * input have proj_size features while c keeps hidden_size; the extra
     * parameter is weight_hr_l{k} (proj_size, hidden_size) and weight_hh
     * is (4·hidden, proj_size). 0: none; else 1 ≤ proj_size < hidden_size,
     * with loom_cell_lstm only. */
    int proj_size;
    /* Keras/TF's unit_forget_bias: the forget gate's bias starts at 1 (the
     * forget rows of bias_ih; bias_hh's at 0), so that the cell keeps its
     * state until it learns not to. loom_cell_lstm only. */
    bool unit_forget_bias;
    uint64_t seed;         /* dropout seed */
    const char *prefix;    /* parameter name prefix, e.g. "rnn." (default none) */
    /* Recurrent regularisation, in training plans (an evaluation plan sees
     * each mask's expectation), each p in [0, 1):
     * variational:   dropout between layers draws one mask per sequence,
     *                the same at every step (Gal & Ghahramani 2016), not a
     *                fresh one per step;
     * state_dropout: variational dropout of the hidden state h as it passes
     *                to the next step (one mask per sequence; TF's
     *                DropoutWrapper(variational_recurrent=True,
     *                state_keep_prob = 1 − p), which leaves an LSTM's c alone);
     * weight_drop:   DropConnect on the recurrent weights — the parameters
     *                that multiply a state (loom_cell_recurrent_params) —
     *                one mask per run, shared by every step and sequence
     *                (Merity et al. 2018, AWD-LSTM);
     * zoneout:       each unit of every carried state keeps its previous
     *                value with probability p at each step (Krueger et al.
     *                2017); evaluation: s_t = p s_{t−1} + (1 − p) s̃_t. */
    bool variational;
    float state_dropout, weight_drop, zoneout;
} loom_rnn_opts;

/* A recurrent layer stack: its options and parameter nodes. */
typedef struct {
    loom_rnn_opts o;
    int dirs, n_params;
    int out_size; /* features of h and of each step's output: proj_size, or hidden_size */
    char param_name[LOOM_CELL_MAX_PARAMS][LOOM_NAME_MAX]; /* the cell's names (stems) */
    loom_tensor param[LOOM_RNN_MAX_LAYERS][2][LOOM_CELL_MAX_PARAMS];
    loom_tensor highway[LOOM_RNN_MAX_LAYERS][2]; /* HIGHWAY: layer l's gate weight and bias (invalid where it has none) */
} loom_rnn;

/* Creates the parameters (named like PyTorch's state_dict: weight_ih_l0,
 * weight_hh_l0_reverse, ...). Errors go to the graph. */
loom_status loom_rnn_init(loom_graph *g, loom_rnn *rnn, const loom_rnn_opts *opts);

typedef enum { LOOM_TRUNC_NONE = 0, LOOM_TRUNC_FIXED, LOOM_TRUNC_RANDOM } loom_trunc;

typedef struct {
    /* Initial states, one per cell state, each (layers·dirs, B, H) (h:
     * (layers·dirs, B, out_size)); LOOM_INVALID (the default) for zeros. */
    loom_tensor init[LOOM_CELL_MAX_STATES];
    /* Per-sequence lengths, i32 (B); LOOM_INVALID: all sequences have T steps. */
    loom_tensor lengths;
    /* Truncated BPTT (d2l 9.7). FIXED: the state passes through
     * stop_gradient every `truncate` steps. RANDOM: Tallec & Ollivier's
     * unbiased randomised truncation: at every step boundary the gradient
     * through the states is multiplied by ξ, 0 with probability 1/K (a
     * cut; segments are K = `truncate` steps long on average) and 1/π with
     * π = 1 − 1/K otherwise. E[ξ] = 1 and the boundaries' ξ are
     * independent (each direction has its own: a path crosses a boundary
     * at most once per direction), so the expected gradient is the full
     * one. With `trunc_xi`, an f32 input of dirs·T elements, the ξ are read
     * at run time — element d·T + t weighs the boundary into step t of
     * direction d — and loom_trunc_draw fills it before each run (the
     * trainer does). Without it, the draw of `trunc_seed` is built into the
     * graph (cuts and constant weights), as a diagram draws it. */
    loom_trunc trunc;
    int truncate;
    uint64_t trunc_seed;
    loom_tensor trunc_xi;
} loom_rnn_args;

typedef struct {
    loom_tensor output;                      /* (T, B, dirs·out_size): last layer, [forward; reverse] */
    loom_tensor final[LOOM_CELL_MAX_STATES]; /* (layers·dirs, B, H): state at each sequence's last step
                                                (h: out_size) */
    int n_cuts;                              /* the forward direction's cuts built into the graph */
    int cuts[LOOM_RNN_MAX_CUTS];             /* (at most LOOM_RNN_MAX_CUTS): one lies between steps cuts[i]-1 and cuts[i] */
} loom_rnn_out;

/* Inputs for the initial states of a batch of B: init[s] is an f32 input
 * named h0, c0, s2_0, s3_0 (state s) of shape (layers·dirs, B, width of
 * state s), for each of the cell's states; the rest LOOM_INVALID. */
void loom_rnn_init_inputs(loom_graph *g, const loom_rnn *rnn, int batch, loom_tensor init[LOOM_CELL_MAX_STATES]);

/* Unrolls the stack over x (T, B, input). args may be NULL. On error the
 * graph's error is set and the handles are invalid. */
loom_rnn_out loom_rnn_apply(loom_graph *g, const loom_rnn *rnn, loom_tensor x, const loom_rnn_args *args);

/* One time step t of a one-direction stack, for decoders that feed what a
 * step made into the next one (attention, sampled tokens): x (B, input);
 * state[s][l] (B, H), cell state s of layer l, is replaced by the new
 * state. Returns the top layer's output (B, H). Nodes are tagged with step
 * t; dropout between layers as loom_rnn_apply's. */
loom_tensor loom_rnn_step(loom_graph *g, const loom_rnn *rnn, int t, loom_tensor x, loom_tensor (*state)[LOOM_RNN_MAX_LAYERS]);

/* Randomised truncation's weights for one run: n independent draws of ξ
 * (0 with probability 1/mean, mean/(mean − 1) otherwise; every one 0 when
 * mean is 1), a function of (seed, run) alone. */
void loom_trunc_draw(uint64_t seed, int64_t run, int mean, float *xi, int64_t n);

/* Full name of parameter `i` of (layer, dir), as in the state_dict. */
const char *loom_rnn_param_name(const loom_rnn *rnn, int layer, int dir, int i, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
