/* libFuzzer target: the safetensors reader on any bytes. A file it accepts
 * must write back and read again to the same tensors and metadata, and
 * load into a parameter store by name. */
#include "loom/loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char in_path[64], out_path[64];

static void same(const loom_st *a, const loom_st *b)
{
    if (a->n != b->n || a->n_meta != b->n_meta) abort();
    for (int i = 0; i < a->n; i++) {
        const loom_st_tensor *x = &a->tensors[i], *y = loom_st_get(b, x->name);
        if (!y || x->dtype != y->dtype || !loom_shape_eq(x->shape, y->shape) ||
            memcmp(x->data, y->data, (size_t)loom_shape_numel(x->shape) * 4))
            abort();
    }
    for (int i = 0; i < a->n_meta; i++) {
        const char *v = loom_st_meta(b, a->meta_key[i]);
        if (!v || strcmp(v, a->meta_val[i])) abort();
    }
}

/* A graph with one parameter per F32 tensor of the file (ranks and sizes
 * loom can build): the store must load it strictly. */
static void load_into_store(const loom_st *f)
{
    loom_graph *g = loom_graph_new();
    int params = 0;
    for (int i = 0; i < f->n && params < 64; i++) {
        const loom_st_tensor *t = &f->tensors[i];
        if (t->dtype != LOOM_F32 || loom_shape_numel(t->shape) == 0) continue;
        loom_param(g, t->name, t->shape);
        params++;
    }
    loom_store *s = loom_store_new(g);
    if (!loom_store_status(s) && params == f->n) {
        if (loom_store_load(s, f, true)) abort(); /* every tensor is a parameter of its shape */
        for (int i = 0; i < loom_store_count(s); i++) {
            loom_tensor t = loom_store_tensor(s, i);
            if (memcmp(loom_store_data(s, t), loom_st_get(f, loom_tensor_name(g, t))->data,
                       (size_t)loom_tensor_numel(g, t) * 4))
                abort();
        }
    }
    loom_store_free(s);
    loom_graph_free(g);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!in_path[0]) {
        snprintf(in_path, sizeof in_path, "/dev/shm/loom-fuzz-st-%d.in", (int)getpid());
        snprintf(out_path, sizeof out_path, "/dev/shm/loom-fuzz-st-%d.out", (int)getpid());
    }
    FILE *fp = fopen(in_path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    loom_st *f = loom_st_new(), *back = loom_st_new();
    if (f && back && loom_st_read(f, in_path) == LOOM_OK) {
        if (loom_st_write(f, out_path)) abort();      /* what was read can be written */
        if (loom_st_read(back, out_path)) abort();    /* and read again */
        same(f, back);
        load_into_store(f);
    } else if (f && !*loom_st_error(f)) {
        abort(); /* a refusal always says why */
    }
    loom_st_free(f);
    loom_st_free(back);
    unlink(in_path);
    unlink(out_path);
    return 0;
}
