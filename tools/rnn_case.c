/* rnn-run's work (the command is tools/rnn_run.c): CASE.safetensors →
 * OUT.safetensors.
 *
 * CASE: __metadata__ cell, layers, bidirectional, input_size, hidden_size,
 * (proj_size: an LSTM with projections, optional), seq_len, batch;
 * parameters under PyTorch names; input (T,B,I); h0 (and c0)
 * (layers·dirs, B, H; h0 of a projection P); optional lengths (B) i32;
 * grad_output (T, B, dirs·H, or dirs·P).
 * Tensors named expected.* are ignored (golden files keep PyTorch's answers
 * there). OUT: output, h_n (c_n), grad.input, grad.h0 (grad.c0), grad.<param>
 * of L = Σ output ⊙ grad_output. */
#include "tool.h"

#include "loom/loom.h"
#include "loom/safetensors.h"
#include "loom/store.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static bool meta_int(const loom_st *f, const char *key, long lo, long hi, long *out, char *err, size_t n)
{
    const char *v = loom_st_meta(f, key);
    if (!v) {
        snprintf(err, n, "metadata key '%s' is missing", key);
        return false;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        snprintf(err, n, "metadata '%s' = '%s' is not an integer in [%ld, %ld]", key, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

/* The tensor `name` of f, checked against dtype and shape. */
static const loom_st_tensor *want(const loom_st *f, const char *name, loom_dtype dt, loom_shape s, bool required,
                                  char *err, size_t n)
{
    const loom_st_tensor *t = loom_st_get(f, name);
    char a[64], b[64];
    if (!t) {
        if (required) snprintf(err, n, "tensor '%s' %s is missing", name, loom_shape_str(s, a, sizeof a));
        return NULL;
    }
    if (t->dtype != dt || !loom_shape_eq(t->shape, s)) {
        snprintf(err, n, "tensor '%s' is %s %s, expected %s %s", name, t->dtype == LOOM_I32 ? "I32" : "F32",
                 loom_shape_str(t->shape, a, sizeof a), dt == LOOM_I32 ? "I32" : "F32", loom_shape_str(s, b, sizeof b));
        return NULL;
    }
    return t;
}

/* A case being run: the file, its sizes, the graph built from them. */
typedef struct {
    const loom_st *f;
    const loom_cell_def *cell;
    long layers, input, hidden, proj, T, B;
    int D, S;
    loom_graph *g;
    loom_rnn rnn;
    loom_tensor x, init[LOOM_CELL_MAX_STATES], go, lengths, loss;
    loom_rnn_out ro;
    int n_wrt;
    loom_tensor *wrt, *grads; /* input, initial states, parameters; their gradients */
    char msg[512];
} rcase;


/* The metadata: cell, direction and sizes. */
static bool read_meta(rcase *c)
{
    const loom_st *f = c->f;
    const char *cell_name = loom_st_meta(f, "cell"), *bidir = loom_st_meta(f, "bidirectional");
    c->cell = loom_cell_by_name(cell_name);
    if (!c->cell) {
        char names[256];
        snprintf(c->msg, sizeof c->msg, "metadata 'cell' = '%s' is not one of %s", cell_name ? cell_name : "(missing)",
                 tool_cell_names(names, sizeof names));
        return false;
    }
    if (!bidir || (strcmp(bidir, "true") && strcmp(bidir, "false"))) {
        snprintf(c->msg, sizeof c->msg, "metadata 'bidirectional' = '%s' is not true or false", bidir ? bidir : "(missing)");
        return false;
    }
    c->D = strcmp(bidir, "true") ? 1 : 2;
    c->S = c->cell->n_states;
    char *m = c->msg;
    size_t n = sizeof c->msg;
    c->proj = 0; /* proj_size: optional (an LSTM with projections) */
    return meta_int(f, "layers", 1, LOOM_RNN_MAX_LAYERS, &c->layers, m, n) &&
           meta_int(f, "input_size", 1, 1 << 20, &c->input, m, n) && meta_int(f, "hidden_size", 1, 1 << 20, &c->hidden, m, n) &&
           (!loom_st_meta(f, "proj_size") || meta_int(f, "proj_size", 1, c->hidden - 1, &c->proj, m, n)) &&
           meta_int(f, "seq_len", 1, 1 << 20, &c->T, m, n) && meta_int(f, "batch", 1, 1 << 20, &c->B, m, n);
}


/* The stack and its inputs; every tensor of the file must be one of them
 * (or an expected.* answer). */
static bool build(rcase *c)
{
    loom_graph *g = c->g = loom_graph_new();
    if (!g) {
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return false;
    }
    loom_rnn_init(g, &c->rnn, &(loom_rnn_opts){.cell = c->cell, .input_size = (int)c->input, .hidden_size = (int)c->hidden,
                                               .layers = (int)c->layers, .bidirectional = c->D == 2, .proj_size = (int)c->proj});
    if (loom_graph_failed(g)) {
        snprintf(c->msg, sizeof c->msg, "%s", loom_graph_error(g));
        return false;
    }
    c->x = loom_input(g, "input", loom_shape3((int)c->T, (int)c->B, (int)c->input));
    loom_rnn_args args = {.lengths = LOOM_INVALID};
    loom_rnn_init_inputs(g, &c->rnn, (int)c->B, args.init);
    memcpy(c->init, args.init, sizeof c->init);
    c->go = loom_input(g, "grad_output", loom_shape3((int)c->T, (int)c->B, (int)(c->D * c->rnn.out_size)));
    c->lengths = loom_st_get(c->f, "lengths") ? loom_input_i32(g, "lengths", loom_shape1((int)c->B)) : LOOM_INVALID;
    for (int k = 0; k < c->f->n; k++) {
        const char *name = c->f->tensors[k].name;
        if (strncmp(name, "expected.", 9) && !loom_valid(loom_graph_find(g, name))) {
            snprintf(c->msg, sizeof c->msg, "tensor '%s' is neither a parameter of this %s nor an input of rnn-run", name,
                     c->cell->name);
            return false;
        }
    }
    args.lengths = c->lengths;
    c->ro = loom_rnn_apply(g, &c->rnn, c->x, &args);
    c->loss = loom_sum_all(g, loom_mul(g, c->ro.output, c->go));
    return true;
}

/* Non-finite values of an F32 tensor: how many, and the first one's index. */
static int64_t non_finite(const loom_st_tensor *t, int64_t *first)
{
    int64_t n = 0, numel = loom_shape_numel(t->shape);
    const float *v = t->data;
    for (int64_t i = 0; t->dtype == LOOM_F32 && i < numel; i++)
        if (!isfinite(v[i]) && !n++) *first = i;
    return n;
}

/* NaN or infinite inputs give NaN results: said on stderr, or refused. */
static bool check_finite(rcase *c, const loom_st_tensor *t, bool refuse)
{
    int64_t first = 0, n = non_finite(t, &first);
    if (!n) return true;
    if (refuse) {
        snprintf(c->msg, sizeof c->msg, "tensor '%s' holds %lld non-finite values (the first at element %lld)", t->name,
                 (long long)n, (long long)first);
        return false;
    }
    fprintf(stderr, "loom rnn-run: warning: tensor '%s' holds %lld non-finite values (the first at element %lld); "
                    "the results will not be finite (--finite refuses such files)\n",
            t->name, (long long)n, (long long)first);
    return true;
}

/* Every tensor the run reads, checked before anything big is allocated:
 * the parameters (name, shape, F32) and the inputs; their values finite
 * (or a warning). */
static bool check_inputs(rcase *c, bool refuse_non_finite)
{
    for (int l = 0; l < c->layers; l++)
        for (int d = 0; d < c->D; d++)
            for (int i = 0; i < c->rnn.n_params; i++) {
                loom_tensor p = c->rnn.param[l][d][i];
                const loom_st_tensor *v = want(c->f, loom_tensor_name(c->g, p), LOOM_F32, loom_tensor_shape(c->g, p), true,
                                               c->msg, sizeof c->msg);
                if (!v || !check_finite(c, v, refuse_non_finite)) return false;
            }
    loom_tensor t[3 + LOOM_CELL_MAX_STATES] = {c->x, c->go};
    int n = 2;
    for (int s = 0; s < c->S; s++) t[n++] = c->init[s];
    if (loom_valid(c->lengths)) t[n++] = c->lengths;
    for (int i = 0; i < n; i++) {
        const loom_st_tensor *v = want(c->f, loom_tensor_name(c->g, t[i]), loom_tensor_dtype(c->g, t[i]),
                                       loom_tensor_shape(c->g, t[i]), true, c->msg, sizeof c->msg);
        if (!v || !check_finite(c, v, refuse_non_finite)) return false;
    }
    return true;
}

/* The non-parameter inputs (checked by check_inputs), bound. */
static void bind_inputs(rcase *c, loom_plan *p)
{
    loom_tensor t[3 + LOOM_CELL_MAX_STATES] = {c->x, c->go};
    int n = 2;
    for (int s = 0; s < c->S; s++) t[n++] = c->init[s];
    if (loom_valid(c->lengths)) t[n++] = c->lengths;
    for (int i = 0; i < n; i++) loom_bind(p, t[i], loom_st_get(c->f, loom_tensor_name(c->g, t[i]))->data);
}

/* Gradients of L = Σ output ⊙ grad_output w.r.t. the input, the initial
 * states and every parameter. */
static int differentiate(rcase *c)
{
    int n_p = c->rnn.n_params * (int)c->layers * c->D;
    c->n_wrt = 1 + c->S + n_p;
    c->wrt = malloc((size_t)c->n_wrt * sizeof *c->wrt);
    c->grads = malloc((size_t)c->n_wrt * sizeof *c->grads);
    if (!c->wrt || !c->grads) {
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return 1;
    }
    c->wrt[0] = c->x;
    for (int s = 0; s < c->S; s++) c->wrt[1 + s] = c->init[s];
    for (int l = 0, k = 1 + c->S; l < c->layers; l++)
        for (int d = 0; d < c->D; d++)
            for (int i = 0; i < c->rnn.n_params; i++) c->wrt[k++] = c->rnn.param[l][d][i];
    if (loom_backward(c->g, c->loss, c->wrt, c->n_wrt, c->grads)) {
        snprintf(c->msg, sizeof c->msg, "%s", loom_graph_error(c->g));
        return tool_exit(loom_graph_status(c->g));
    }
    return 0;
}

/* Plans output, final states and gradients, loads the parameters, runs. */
static int run(rcase *c, loom_plan **plan, loom_store **store)
{
    int n_out = 1 + c->S + c->n_wrt;
    loom_tensor *outs = malloc((size_t)n_out * sizeof *outs);
    if (!outs) {
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return 1;
    }
    outs[0] = c->ro.output;
    for (int s = 0; s < c->S; s++) outs[1 + s] = c->ro.final[s];
    memcpy(outs + 1 + c->S, c->grads, (size_t)c->n_wrt * sizeof *c->grads);
    *plan = loom_plan_new(c->g, outs, n_out, &(loom_plan_opts){.eval = true});
    free(outs);
    *store = *plan ? loom_store_new(c->g) : NULL;
    if (!*plan || loom_store_status(*store)) {
        snprintf(c->msg, sizeof c->msg, "%s", *plan ? loom_store_error(*store) : loom_graph_error(c->g));
        return 1;
    }
    if (loom_store_load(*store, c->f, false)) {
        snprintf(c->msg, sizeof c->msg, "%s", loom_store_error(*store));
        return 2;
    }
    loom_store_bind(*store, *plan);
    bind_inputs(c, *plan);
    loom_status st = loom_run(*plan);
    if (st) {
        snprintf(c->msg, sizeof c->msg, "%s", loom_plan_error(*plan));
        return tool_exit(st);
    }
    return 0;
}

/* output, h_n (c_n), grad.<each wrt>. */
static loom_st *results(const rcase *c, const loom_plan *p)
{
    loom_st *out = loom_st_new();
    loom_graph *g = c->g;
    static const char *const final_names[LOOM_CELL_MAX_STATES] = {"h_n", "c_n", "s2_n", "s3_n"};
    loom_status st = out ? loom_st_add(out, "output", LOOM_F32, loom_tensor_shape(g, c->ro.output),
                                       loom_plan_output(p, c->ro.output))
                         : LOOM_ERR_NOMEM;
    for (int s = 0; !st && s < c->S; s++)
        st = loom_st_add(out, final_names[s], LOOM_F32, loom_tensor_shape(g, c->init[s]), loom_plan_output(p, c->ro.final[s]));
    for (int k = 0; !st && k < c->n_wrt; k++) {
        char name[200];
        snprintf(name, sizeof name, "grad.%s", loom_tensor_name(g, c->wrt[k]));
        st = loom_st_add(out, name, LOOM_F32, loom_tensor_shape(g, c->wrt[k]), loom_plan_output(p, c->grads[k]));
    }
    if (!st) st = loom_st_set_meta(out, "cell", c->cell->name);
    if (st) {
        loom_st_free(out);
        return NULL;
    }
    return out;
}

int rnn_run(const char *case_path, const char *out_path, bool refuse_non_finite, char *err, size_t n)
{
    if (tool_same_file(case_path, out_path)) {
        snprintf(err, n, "%s: the output would replace the case file it is computed from", out_path);
        return 2;
    }
    loom_st *f = loom_st_new(), *out = NULL;
    if (!f) {
        snprintf(err, n, "out of memory");
        return 1;
    }
    if (loom_st_read(f, case_path)) {
        snprintf(err, n, "%s", loom_st_error(f));
        loom_st_free(f);
        return 2;
    }
    rcase c = {.f = f};
    loom_plan *plan = NULL;
    loom_store *store = NULL;
    int rc = 2;
    if (read_meta(&c) && build(&c) && check_inputs(&c, refuse_non_finite) && !(rc = differentiate(&c)) &&
        !(rc = run(&c, &plan, &store))) {
        if ((out = results(&c, plan)))
            for (int i = 0; i < out->n; i++) {
                int64_t first = 0, bad = non_finite(&out->tensors[i], &first);
                if (bad)
                    fprintf(stderr, "loom rnn-run: warning: result '%s' holds %lld non-finite values\n",
                            out->tensors[i].name, (long long)bad);
            }
        if (!out) {
            snprintf(c.msg, sizeof c.msg, "out of memory");
            rc = 1;
        } else if (loom_st_write(out, out_path)) {
            snprintf(err, n, "%s", loom_st_error(out));
            rc = 1;
        }
    }
    if (rc && c.msg[0]) snprintf(err, n, "%s: %s", case_path, c.msg);
    free(c.wrt), free(c.grads);
    loom_plan_free(plan);
    loom_store_free(store);
    loom_graph_free(c.g);
    loom_st_free(f);
    loom_st_free(out);
    return rc;
}

