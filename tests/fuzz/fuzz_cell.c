/* libFuzzer target: the cell language (loom_cell_compile). A text either
 * fails with a message naming its line and column, or compiles to a cell
 * that builds a 2-layer bidirectional stack at the sizes the compiler
 * checked it with (H = 37, I = 23) without an error, and at small sizes
 * either builds or fails with a message. */
#include "frontends/cell_lang.h"
#include "loom/loom.h"

#include <stdlib.h>
#include <string.h>

static bool build(const loom_cell_def *c, int I, int H)
{
    loom_graph *g = loom_graph_new();
    if (!g) return true;
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = c, .input_size = I, .hidden_size = H, .layers = 2, .bidirectional = true});
    loom_rnn_apply(g, &rnn, loom_input(g, "x", loom_shape3(2, 1, I)), NULL);
    bool ok = !loom_graph_failed(g) || loom_graph_status(g) == LOOM_ERR_NOMEM;
    if (!ok && !*loom_graph_error(g)) abort(); /* a failure says why */
    loom_graph_free(g);
    return ok;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    loom_error err = {0};
    loom_cell_def *c = loom_cell_compile(s, "f.cell", &err);
    free(s);
    if (!c) {
        if (strncmp(err.msg, "f.cell", 6) && err.status != LOOM_ERR_NOMEM) abort();
        return 0;
    }
    if (!loom_cell_source(c) || c->n_states < 1 || c->n_states > LOOM_CELL_MAX_STATES) abort();
    loom_param_spec specs[LOOM_CELL_MAX_PARAMS];
    int n = c->params(c, 23, 37, specs, LOOM_CELL_MAX_PARAMS);
    if (n < 0 || n > LOOM_CELL_MAX_PARAMS) abort();
    if (!build(c, 23, 37)) abort();
    build(c, 2, 3);
    loom_cell_discard(c);
    return 0;
}
