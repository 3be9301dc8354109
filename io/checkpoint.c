/* Checkpoints: safetensors with an xxh3 checksum of the payload. */
#include "loom/checkpoint.h"
#include "graph/error.h"
#include "io/atomic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#define KEY "loom.checksum"

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void loom_checkpoint_checksum(const loom_st *f, char out[17])
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    const char **names = malloc(((size_t)f->n + (size_t)f->n_meta + 1) * sizeof *names);
    int n = 0;
    for (int i = 0; names && i < f->n; i++) names[n++] = f->tensors[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; names && i < n; i++) {
        const loom_st_tensor *t = loom_st_get(f, names[i]);
        int32_t head[2 + LOOM_MAX_RANK] = {t->dtype, t->shape.rank};
        for (int k = 0; k < t->shape.rank; k++) head[2 + k] = t->shape.d[k];
        XXH3_64bits_update(&st, t->name, strlen(t->name) + 1);
        XXH3_64bits_update(&st, head, sizeof head);
        XXH3_64bits_update(&st, t->data, (size_t)loom_shape_numel(t->shape) * 4);
    }
    n = 0;
    for (int i = 0; names && i < f->n_meta; i++)
        if (strcmp(f->meta_key[i], KEY)) names[n++] = f->meta_key[i];
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; names && i < n; i++) {
        const char *v = loom_st_meta(f, names[i]);
        XXH3_64bits_update(&st, names[i], strlen(names[i]) + 1);
        XXH3_64bits_update(&st, v, strlen(v) + 1);
    }
    free(names);
    snprintf(out, 17, "%016llx", (unsigned long long)XXH3_64bits_digest(&st));
}

loom_status loom_checkpoint_writable(const char *path, loom_error *err)
{
    loom_error e = {0};
    loom_status st = loom_atomic_check(path, &e);
    return st ? loom_error_set(err, st, "%s", e.msg) : LOOM_OK;
}

loom_status loom_checkpoint_write(loom_st *f, const char *path)
{
    if (!f) return LOOM_ERR_ARG;
    char sum[17];
    loom_checkpoint_checksum(f, sum);
    loom_status st = loom_st_set_meta(f, KEY, sum);
    return st ? st : loom_st_write(f, path);
}

loom_status loom_checkpoint_read(loom_st *f, const char *path)
{
    loom_status st = loom_st_read(f, path);
    if (st) return st;
    const char *want = loom_st_meta(f, KEY);
    char got[17];
    loom_checkpoint_checksum(f, got);
    if (!want) return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: not a loom checkpoint (no %s)", path, KEY);
    if (strcmp(want, got))
        return loom_error_set(&f->err, LOOM_ERR_FORMAT, "%s: checksum mismatch (stored %s, content %s): the file is corrupted",
                              path, want, got);
    return LOOM_OK;
}
