/* loom/graph.h — the IR: shapes, tensor handles, nodes, the graph arena.
 *
 * A graph is an append-only arena of nodes. Builders (loom/ops.h) return
 * handles; a handle is an index into the arena, valid for the graph's life.
 * The graph keeps a sticky first error: once a build call fails, every later
 * build call returns LOOM_INVALID and loom_graph_error() tells what failed
 * first. Nothing in loom aborts the process on user input.
 */
#ifndef LOOM_GRAPH_H
#define LOOM_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_MAX_RANK 4

typedef enum {
    LOOM_OK = 0,
    LOOM_ERR_SHAPE,   /* shapes do not agree */
    LOOM_ERR_ARG,     /* a bad argument: invalid handle, axis, flag */
    LOOM_ERR_STATE,   /* e.g. running a plan whose inputs are not bound */
    LOOM_ERR_VALUE,   /* bad data at run time (index out of range, ...) */
    LOOM_ERR_NOMEM,
    LOOM_ERR_IO,
    LOOM_ERR_FORMAT,  /* malformed file */
    LOOM_ERR_TYPE     /* the wrong dtype (an f32 buffer for an i32 input, I32 weights) */
} loom_status;

const char *loom_status_str(loom_status s);

/* Errors: every object that can fail (graph, plan, store, safetensors file)
 * keeps its first error — a status and a message naming what failed, where,
 * and the values involved — and tells it with loom_<object>_error(). A
 * graph's error is permanent (the graph is unusable after it); a plan,
 * store or file forgets its error when its next operation (bind, run,
 * load, save, read, write) begins. Functions return the status as well. */
typedef struct {
    loom_status status;
    char msg[1024];
} loom_error;
/* A call made without an object reports through a loom_error * argument
 * (which may be NULL). This records s and the message unless e already
 * holds an error, and returns s. */
loom_status loom_error_set(loom_error *e, loom_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Row-major shape, rank 0..4. Rank 0 is a scalar (one element). */
typedef struct {
    int32_t rank;
    int32_t d[LOOM_MAX_RANK];
} loom_shape;

static inline loom_shape loom_shape0(void) { loom_shape s = {0, {0, 0, 0, 0}}; return s; }
static inline loom_shape loom_shape1(int32_t a) { loom_shape s = {1, {a, 0, 0, 0}}; return s; }
static inline loom_shape loom_shape2(int32_t a, int32_t b) { loom_shape s = {2, {a, b, 0, 0}}; return s; }
static inline loom_shape loom_shape3(int32_t a, int32_t b, int32_t c) { loom_shape s = {3, {a, b, c, 0}}; return s; }
static inline loom_shape loom_shape4(int32_t a, int32_t b, int32_t c, int32_t d)
{ loom_shape s = {4, {a, b, c, d}}; return s; }

int64_t loom_shape_numel(loom_shape s);
bool loom_shape_eq(loom_shape a, loom_shape b);
/* Writes "(2,3,4)" into buf; returns buf. */
char *loom_shape_str(loom_shape s, char *buf, size_t n);

typedef enum { LOOM_F32 = 0, LOOM_I32 = 1 } loom_dtype;

/* A node handle: id = node index + 1, so a zero-initialised handle (as in
 * `(loom_rnn_args){0}` or `{.lengths = len}`) is the invalid one. */
typedef struct { int32_t id; } loom_tensor;
#define LOOM_INVALID ((loom_tensor){0})
static inline bool loom_valid(loom_tensor t) { return t.id > 0; }
/* Node index of a handle, and the handle of node index i (0 .. size-1). */
static inline int32_t loom_index(loom_tensor t) { return t.id - 1; }
static inline loom_tensor loom_at(int32_t index) { return (loom_tensor){index + 1}; }

/* What a node is, for drawing, scheduling and autodiff. Tags never change
 * what is computed. */
typedef enum {
    LOOM_ROLE_FORWARD = 0,
    LOOM_ROLE_INPUT,
    LOOM_ROLE_PARAM,
    LOOM_ROLE_CONST,
    LOOM_ROLE_BACKWARD,
    LOOM_ROLE_RECOMPUTE /* a forward node computed again in the backward pass (loom_backward_opts.recompute) */
} loom_role;

/* Provenance: time step (-1: none), layer (-1: none; for a node of a time
 * step, -1 is the step's input row), direction (0 forward, 1 reverse, 2 both:
 * where the two directions' outputs meet), role, and for the state a recurrent cell carries to the next
 * step, which state (k + 1 for the cell's state k; 0: not a carried state);
 * on the gradient of a carried state, which state it is the gradient of.
 * `cell` names the cell that built the node (a label id, see
 * loom_graph_label; 0: none), `eq` the statement of an equation cell that
 * built it (k + 1 for statement k, see loom_cell_equation; 0: none).
 * Builders stamp the graph's current tags on new nodes. */
typedef struct {
    int32_t step;
    int16_t layer;
    int8_t dir;
    uint8_t role;
    uint8_t state;
    uint8_t cell;
    uint8_t eq;
} loom_tags;

/* Attribute block of a node. Its bytes are part of the hash-consing key, so
 * it has no padding and builders zero it before filling. */
typedef struct {
    int32_t i[4];
    float f[2];
    uint64_t u;
    loom_shape shape;
    int32_t reserved;
} loom_attrs;

typedef struct {
    uint16_t op;      /* op id, see loom_op_name() */
    uint8_t dtype;    /* loom_dtype */
    uint8_t pure;     /* merged by hash-consing */
    uint8_t invariant; /* depends on parameters and constants only (drawn beside the parameters
                          when it belongs to no step) */
    int32_t n_in;
    int32_t in_off;   /* first input in the graph's input pool */
    int32_t name;     /* offset into the graph's string pool, -1: none */
    loom_shape shape;
    loom_attrs attr;
    loom_tags tags;
} loom_node;

typedef struct loom_graph loom_graph;

loom_graph *loom_graph_new(void);
void loom_graph_free(loom_graph *g);

/* Sticky first error. */
bool loom_graph_failed(const loom_graph *g);
loom_status loom_graph_status(const loom_graph *g);
const char *loom_graph_error(const loom_graph *g);
/* Records an error (only the first one is kept); returns LOOM_INVALID so that
 * builders can `return loom_graph_fail(...)`. */
loom_tensor loom_graph_fail(loom_graph *g, loom_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Node access. */
int32_t loom_graph_size(const loom_graph *g);
const loom_node *loom_graph_node(const loom_graph *g, loom_tensor t); /* NULL if invalid */
loom_tensor loom_node_input(const loom_graph *g, loom_tensor t, int i);
bool loom_graph_has(const loom_graph *g, loom_tensor t);
loom_shape loom_tensor_shape(const loom_graph *g, loom_tensor t);
loom_dtype loom_tensor_dtype(const loom_graph *g, loom_tensor t);
int64_t loom_tensor_numel(const loom_graph *g, loom_tensor t);
/* Name of a node, or NULL. Returns t for chaining. */
const char *loom_tensor_name(const loom_graph *g, loom_tensor t);
loom_tensor loom_tensor_set_name(loom_graph *g, loom_tensor t, const char *name);
/* The first input or parameter named `name`, or LOOM_INVALID. */
loom_tensor loom_graph_find(const loom_graph *g, const char *name);
/* Describes a tensor for messages: "'name' (2,3)" or "#12 (2,3)". */
char *loom_tensor_str(const loom_graph *g, loom_tensor t, char *buf, size_t n);

/* Error context: while set, every error the graph records starts with it
 * (the unroller sets "cell mgu, step 3, layer 0, forward" around each step
 * it builds). NULL clears it. */
void loom_graph_set_context(loom_graph *g, const char *context);

/* Parameters in creation order: writes up to max handles into out (out may
 * be NULL to count) and returns how many the graph has. */
int loom_graph_params(const loom_graph *g, loom_tensor *out, int max);
/* The gradient loom_backward built for x (the last call that asked for x),
 * or LOOM_INVALID. With loom_graph_find, a parameter's gradient by name. */
loom_tensor loom_grad(const loom_graph *g, loom_tensor x);
/* Records gx as x's gradient (loom_backward does this for every wrt). */
void loom_graph_set_grad(loom_graph *g, loom_tensor x, loom_tensor gx);

/* Tags stamped on nodes built from now on (role is set by the builder for
 * inputs, parameters and constants). Returns the previous tags. */
loom_tags loom_graph_set_tags(loom_graph *g, loom_tags tags);
loom_tags loom_graph_tags(const loom_graph *g);
loom_tensor loom_tensor_set_tags(loom_graph *g, loom_tensor t, loom_tags tags);
#define LOOM_TAGS_NONE ((loom_tags){-1, -1, 0, LOOM_ROLE_FORWARD, 0, 0, 0})
/* A short label (a cell's name) as a small id for tags (1..255; the same id
 * for the same text; 0 when 255 labels exist or memory runs out). */
uint8_t loom_graph_label(loom_graph *g, const char *text);
const char *loom_graph_label_text(const loom_graph *g, int id); /* NULL for 0 or unknown */

/* xxh3 over the graph's structure (ops, inputs, attributes, shapes, dtypes,
 * names of inputs and parameters): identifies a model and a compiled plan. */
uint64_t loom_graph_fingerprint(const loom_graph *g);

/* ---- for op implementations (loom/ops.h builds on these) ---- */

/* Appends a node, or returns the existing one when `pure` and an identical
 * node (op, inputs, attributes) exists. Inputs must be valid handles. */
loom_tensor loom_graph_add_node(loom_graph *g, int op, const loom_tensor *in, int n_in,
                                const loom_attrs *attr, loom_shape shape, loom_dtype dt,
                                bool pure, loom_role role);
/* Copies `bytes` of data into graph-owned storage; returns its index or -1. */
int32_t loom_graph_store(loom_graph *g, const void *data, size_t bytes);
const void *loom_graph_stored(const loom_graph *g, int32_t index);

#ifdef __cplusplus
}
#endif
#endif
