/* rnn-run: CASE.safetensors → OUT.safetensors.
 *
 * CASE: __metadata__ cell, layers, bidirectional, input_size, hidden_size,
 * seq_len, batch; parameters under PyTorch names; input (T,B,I); h0 (and c0)
 * (layers·dirs, B, H); optional lengths (B) i32; grad_output (T, B, dirs·H).
 * Tensors named expected.* are ignored (golden files keep PyTorch's answers
 * there). OUT: output, h_n (c_n), grad.input, grad.h0 (grad.c0), grad.<param>
 * of L = Σ output ⊙ grad_output. */
#include "tool.h"

#include "loom/loom.h"
#include "loom/safetensors.h"
#include "loom/store.h"

#include <errno.h>
#include <stdio.h>
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

int loom_rnn_run(const char *case_path, const char *out_path, char *err, size_t n)
{
    char msg[512] = "";
    int rc = 2;
    loom_st *f = loom_st_new(), *out = NULL;
    loom_graph *g = NULL;
    loom_store *store = NULL;
    loom_plan *plan = NULL;
    loom_tensor *wrt = NULL, *grads = NULL, *outs = NULL;
    if (!f) {
        snprintf(err, n, "out of memory");
        return 1;
    }
    if (loom_st_read(f, case_path)) {
        snprintf(err, n, "%s", loom_st_error(f));
        loom_st_free(f);
        return 2;
    }

    long layers, input_size, hidden, T, B;
    const char *cell_name = loom_st_meta(f, "cell"), *bidir = loom_st_meta(f, "bidirectional");
    const loom_cell_def *cell = loom_cell_by_name(cell_name);
    if (!cell) {
        snprintf(msg, sizeof msg, "metadata 'cell' = '%s' is not one of rnn_tanh, rnn_relu, gru, lstm",
                 cell_name ? cell_name : "(missing)");
        goto fail;
    }
    if (!bidir || (strcmp(bidir, "true") && strcmp(bidir, "false"))) {
        snprintf(msg, sizeof msg, "metadata 'bidirectional' = '%s' is not true or false", bidir ? bidir : "(missing)");
        goto fail;
    }
    if (!meta_int(f, "layers", 1, LOOM_RNN_MAX_LAYERS, &layers, msg, sizeof msg) ||
        !meta_int(f, "input_size", 1, 1 << 20, &input_size, msg, sizeof msg) ||
        !meta_int(f, "hidden_size", 1, 1 << 20, &hidden, msg, sizeof msg) ||
        !meta_int(f, "seq_len", 1, 1 << 20, &T, msg, sizeof msg) || !meta_int(f, "batch", 1, 1 << 20, &B, msg, sizeof msg))
        goto fail;
    int D = strcmp(bidir, "true") ? 1 : 2, S = cell->n_states;

    g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = (int)input_size, .hidden_size = (int)hidden,
                                            .layers = (int)layers, .bidirectional = D == 2});
    loom_shape st_shape = loom_shape3((int)(layers * D), (int)B, (int)hidden);
    const char *state_names[2] = {"h0", "c0"};
    loom_tensor x = loom_input(g, "input", loom_shape3((int)T, (int)B, (int)input_size));
    loom_tensor init[2] = {LOOM_INVALID, LOOM_INVALID};
    for (int s = 0; s < S; s++) init[s] = loom_input(g, state_names[s], st_shape);
    loom_tensor go = loom_input(g, "grad_output", loom_shape3((int)T, (int)B, (int)(D * hidden)));
    bool has_len = loom_st_get(f, "lengths") != NULL;
    loom_tensor lengths = has_len ? loom_input_i32(g, "lengths", loom_shape1((int)B)) : LOOM_INVALID;

    /* every tensor of the file must be one we read */
    for (int k = 0; k < f->n; k++) {
        const char *name = f->tensors[k].name;
        if (!strncmp(name, "expected.", 9)) continue;
        if (!loom_valid(loom_graph_find(g, name))) {
            snprintf(msg, sizeof msg, "tensor '%s' is neither a parameter of this %s nor an input of rnn-run", name,
                     cell->name);
            goto fail;
        }
    }
    const loom_st_tensor *tx = want(f, "input", LOOM_F32, loom_tensor_shape(g, x), true, msg, sizeof msg);
    const loom_st_tensor *tgo = tx ? want(f, "grad_output", LOOM_F32, loom_tensor_shape(g, go), true, msg, sizeof msg) : NULL;
    const loom_st_tensor *tinit[2] = {NULL, NULL}, *tlen = NULL;
    for (int s = 0; tgo && s < S; s++)
        if (!(tinit[s] = want(f, state_names[s], LOOM_F32, st_shape, true, msg, sizeof msg))) tgo = NULL;
    if (tgo && has_len && !(tlen = want(f, "lengths", LOOM_I32, loom_shape1((int)B), true, msg, sizeof msg))) tgo = NULL;
    if (!tgo) goto fail;

    loom_rnn_args args = {.init = {init[0], init[1]}, .lengths = lengths};
    loom_rnn_out ro = loom_rnn_apply(g, &rnn, x, &args);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, ro.output, go));
    int n_p = rnn.n_params * (int)layers * D, n_wrt = 1 + S + n_p;
    wrt = malloc((size_t)n_wrt * sizeof *wrt);
    grads = malloc((size_t)n_wrt * sizeof *grads);
    outs = malloc((size_t)(n_wrt + 1 + S) * sizeof *outs);
    if (!wrt || !grads || !outs) {
        snprintf(msg, sizeof msg, "out of memory");
        rc = 1;
        goto fail;
    }
    wrt[0] = x;
    for (int s = 0; s < S; s++) wrt[1 + s] = init[s];
    for (int l = 0, k = 1 + S; l < layers; l++)
        for (int d = 0; d < D; d++)
            for (int i = 0; i < rnn.n_params; i++) wrt[k++] = rnn.param[l][d][i];
    if (loom_backward(g, loss, wrt, n_wrt, grads)) {
        snprintf(msg, sizeof msg, "%s", loom_graph_error(g));
        goto fail;
    }
    outs[0] = ro.output;
    for (int s = 0; s < S; s++) outs[1 + s] = ro.final[s];
    memcpy(outs + 1 + S, grads, (size_t)n_wrt * sizeof *grads);
    plan = loom_plan_new(g, outs, 1 + S + n_wrt, &(loom_plan_opts){.eval = true});
    store = plan ? loom_store_new(g) : NULL;
    if (!plan || loom_store_status(store)) {
        snprintf(msg, sizeof msg, "%s", plan ? loom_store_error(store) : loom_graph_error(g));
        rc = 1;
        goto fail;
    }
    if (loom_store_load(store, f, false)) {
        snprintf(msg, sizeof msg, "%s", loom_store_error(store));
        goto fail;
    }
    loom_store_bind(store, plan);
    loom_bind(plan, x, tx->data);
    loom_bind(plan, go, tgo->data);
    for (int s = 0; s < S; s++) loom_bind(plan, init[s], tinit[s]->data);
    if (has_len) loom_bind(plan, lengths, tlen->data);
    if (loom_run(plan)) {
        snprintf(msg, sizeof msg, "%s", loom_plan_error(plan));
        goto fail;
    }

    out = loom_st_new();
    const char *final_names[2] = {"h_n", "c_n"};
    loom_status st = loom_st_add(out, "output", LOOM_F32, loom_tensor_shape(g, ro.output), loom_plan_output(plan, ro.output));
    for (int s = 0; !st && s < S; s++)
        st = loom_st_add(out, final_names[s], LOOM_F32, st_shape, loom_plan_output(plan, ro.final[s]));
    for (int k = 0; !st && k < n_wrt; k++) {
        char name[200];
        snprintf(name, sizeof name, "grad.%s", loom_tensor_name(g, wrt[k]));
        st = loom_st_add(out, name, LOOM_F32, loom_tensor_shape(g, wrt[k]), loom_plan_output(plan, grads[k]));
    }
    if (!st) st = loom_st_set_meta(out, "cell", cell->name);
    if (st) {
        snprintf(msg, sizeof msg, "out of memory");
        rc = 1;
        goto fail;
    }
    if (loom_st_write(out, out_path)) {
        snprintf(err, n, "%s", loom_st_error(out));
        rc = 1;
        goto done;
    }
    rc = 0;
    goto done;
fail:
    snprintf(err, n, "%s: %s", case_path, msg);
done:
    free(wrt), free(grads), free(outs);
    loom_plan_free(plan);
    loom_store_free(store);
    loom_graph_free(g);
    loom_st_free(f);
    loom_st_free(out);
    return rc;
}

const char loom_rnn_run_help[] =
    "run the recurrent stack a case file describes forward and backward\n"
    "(L = sum(output * grad_output)); write outputs and gradients\n";

int loom_cmd_rnn_run(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: loom rnn-run CASE.safetensors OUT.safetensors\n");
        return 2;
    }
    char err[1024];
    int rc = loom_rnn_run(argv[0], argv[1], err, sizeof err);
    if (rc) fprintf(stderr, "loom rnn-run: %s\n", err);
    return rc;
}
